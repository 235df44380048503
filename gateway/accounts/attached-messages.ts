import { ATTACHED_MESSAGE_MAX_BYTES, attachedMessageIndexes, describeAttachedMessage, type AttachedMessage } from '../mail/attached-message';
import { attachmentFilename } from '../mail/attachments';
import type { Store } from '../store';
import type { ObjectId } from './ids';
import { messageParts } from './mailbox';

export interface ShownAttachedMessage extends Omit<AttachedMessage, 'attachments' | 'innerMessages'> {
  /** Position among the message's attachments (its download link). */
  partIndex: number;
  /** File names of its own attachments, as a download would name them. */
  attachments: string[];
}

type WithAttachments = { _id: ObjectId; attachments?: Array<{ contentType?: string | null; size?: number | null; blobId?: ObjectId | null }> };

/** The bytes of a stored message's attached messages (those small enough to read), by attachment position. */
export async function attachedMessageBytes(store: Store, message: WithAttachments): Promise<Array<{ partIndex: number; bytes: Buffer }>> {
  const indexes = attachedMessageIndexes(message.attachments ?? []);
  if (indexes.length === 0) return [];
  const parts = await messageParts(store, message, new Set(indexes), ATTACHED_MESSAGE_MAX_BYTES);
  return indexes.flatMap((partIndex) => {
    const bytes = parts.get(partIndex);
    return bytes ? [{ partIndex, bytes }] : [];
  });
}

/**
 * The messages attached to a stored message (gateway/mail/attached-message.ts), read in one parse of it when
 * its page is shown; one that cannot be read is left out (it stays a download).
 */
export async function attachedMessages(store: Store, message: WithAttachments): Promise<ShownAttachedMessage[]> {
  const shown: ShownAttachedMessage[] = [];
  for (const { partIndex, bytes } of await attachedMessageBytes(store, message)) {
    const described = await describeAttachedMessage(bytes).catch(() => null);
    if (!described) continue;
    const { innerMessages: _inner, ...shownParts } = described;
    shown.push({ ...shownParts, partIndex, attachments: described.attachments.map((attachment, index) => attachmentFilename(attachment, index)) });
  }
  return shown;
}
