import { CALENDAR_PART_MAX_BYTES, calendarPartIndex, describeInvite, type Invite } from '../mail/calendar';
import type { Store } from '../store';
import type { ObjectId } from './ids';
import { messageParts } from './mailbox';

export interface MessageInvite extends Invite {
  /** Position of the calendar part among the message's attachments (its download link). */
  partIndex: number;
}

/**
 * The calendar invitation a stored message carries (gateway/mail/calendar.ts), read from its calendar part
 * when the message page is shown; null for mail without one, or one that cannot be read.
 */
export async function messageInvite(
  store: Store,
  message: { _id: ObjectId; attachments?: Array<{ contentType?: string | null; size?: number | null; blobId?: ObjectId | null }> },
): Promise<MessageInvite | null> {
  const partIndex = calendarPartIndex(message.attachments ?? []);
  if (partIndex < 0) return null;
  const bytes = (await messageParts(store, message, new Set([partIndex]), CALENDAR_PART_MAX_BYTES)).get(partIndex);
  // iCalendar is UTF-8 (RFC 5545 §3.1.4).
  const invite = bytes ? describeInvite(bytes.toString('utf8')) : null;
  return invite ? { ...invite, partIndex } : null;
}
