import type { Store } from '../store';
import type { ObjectId } from './ids';
import type { Viewer } from './mail-accounts';
import { messageScope } from './mailbox';

/** At most this many messages of a conversation are listed (the oldest ones first); the page says when there are more. */
export const CONVERSATION_LIMIT = 50;

export interface ConversationEntry {
  _id: ObjectId;
  messageId?: string | null;
  subject?: string | null;
  from?: { address?: string | null; name?: string | null } | null;
  date?: Date | null;
  receivedAt: Date;
  status?: string | null;
}

export interface Conversation {
  /** Oldest first, the message itself among them. */
  messages: ConversationEntry[];
  /** More were found than are listed. */
  more: boolean;
}

interface Threaded {
  _id: ObjectId;
  ownerId: ObjectId;
  dedupeKey?: string | null;
  messageId?: string | null;
  inReplyTo?: string | null;
  references?: string[] | null;
}

const FIELDS = 'messageId subject from date receivedAt status dedupeKey';

/** Copies of one mail in several of the owner's mailboxes are one entry; read this many to list CONVERSATION_LIMIT. */
const READ_LIMIT = CONVERSATION_LIMIT * 3 + 1;

/**
 * The conversation a message belongs to among its owner's mail, as mail
 * clients thread it (RFC 5322 §3.6.4): the messages it names in References
 * and In-Reply-To, and every message that names the conversation's first
 * one in its References, replies to the other replies included. All the
 * owner's mailboxes: a customer's mail forwarded from one and the owner's
 * answer Bcc'd to their dropbox are one conversation. A mail held in
 * several of them is listed once (the copy open, else the first).
 * One query: on MongoDB each branch of its $or has an index that starts
 * with the owner ({ownerId, messageId} and the multikey {ownerId,
 * references}); on the embedded FerretDB, which reads the whole collection
 * for any filter but _id, it is one read instead of one per branch (and the
 * message page takes "In reply to" from it too). No subject matching:
 * "Re: Invoice" from two customers are not one conversation. Null when the
 * message is alone.
 */
export async function conversationOf(store: Store, viewer: Viewer, message: Threaded): Promise<Conversation | null> {
  const references = (message.references ?? []).filter(Boolean);
  const root = references[0] || message.inReplyTo || message.messageId;
  if (!root) return null;
  const named = [...new Set([...references, message.inReplyTo, message.messageId].filter((id): id is string => Boolean(id)))];
  const found = await store.models.Message.find({
    ownerId: message.ownerId,
    ...messageScope(viewer),
    $or: [{ messageId: { $in: named } }, { references: root }],
  }).select(FIELDS).sort({ receivedAt: 1, _id: 1 }).limit(READ_LIMIT).lean<Array<ConversationEntry & { dedupeKey?: string | null }>>();
  const byMail = new Map<string, ConversationEntry>();
  for (const { dedupeKey, ...entry } of found) {
    const key = dedupeKey || entry._id.toString();
    const kept = byMail.get(key);
    if (!kept || (entry._id.equals(message._id) && !kept._id.equals(message._id))) byMail.set(key, entry);
  }
  const entries = [...byMail.values()].sort((a, b) => a.receivedAt.getTime() - b.receivedAt.getTime() || a._id.toString().localeCompare(b._id.toString()));
  if (!entries.some((entry) => !entry._id.equals(message._id))) return null;
  return { messages: entries.slice(0, CONVERSATION_LIMIT), more: entries.length > CONVERSATION_LIMIT || found.length === READ_LIMIT };
}
