import type { Store } from '../store';
import type { ObjectId } from './ids';
import type { Viewer } from './mail-accounts';
import { messageScope } from './mailbox';

/** At most this many messages of a conversation are listed (the oldest ones first); the page says when there are more. */
export const CONVERSATION_LIMIT = 50;

export interface ConversationEntry {
  _id: ObjectId;
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
  mailboxKey: string;
  messageId?: string | null;
  inReplyTo?: string | null;
  references?: string[] | null;
}

const FIELDS = 'subject from date receivedAt status';

/**
 * The conversation a message belongs to in its mailbox, as mail clients
 * thread it (RFC 5322 §3.6.4): the messages it names in References and
 * In-Reply-To, and every message that names the conversation's first one
 * in its References, replies to the other replies included. Two look-ups,
 * each on an index that starts with the mailbox: {mailboxKey, messageId}
 * and the multikey {mailboxKey, references}. No subject matching: "Re:
 * Invoice" from two customers are not one conversation. Null when the
 * message is alone in it.
 */
export async function conversationOf(store: Store, viewer: Viewer, message: Threaded): Promise<Conversation | null> {
  const references = (message.references ?? []).filter(Boolean);
  const root = references[0] || message.inReplyTo || message.messageId;
  if (!root) return null;
  const named = [...new Set([...references, message.inReplyTo, message.messageId].filter((id): id is string => Boolean(id)))];
  const scope = { mailboxKey: message.mailboxKey, ...messageScope(viewer) };
  const byDate = { receivedAt: 1, _id: 1 } as const;
  const [ancestors, replies] = await Promise.all([
    store.models.Message.find({ ...scope, messageId: { $in: named } }).select(FIELDS).sort(byDate).limit(CONVERSATION_LIMIT + 1).lean<ConversationEntry[]>(),
    store.models.Message.find({ ...scope, references: root }).select(FIELDS).sort(byDate).limit(CONVERSATION_LIMIT + 1).lean<ConversationEntry[]>(),
  ]);
  const seen = new Map<string, ConversationEntry>();
  for (const entry of [...ancestors, ...replies]) seen.set(entry._id.toString(), entry);
  if (![...seen.keys()].some((id) => id !== message._id.toString())) return null;
  const all = [...seen.values()].sort((a, b) => a.receivedAt.getTime() - b.receivedAt.getTime() || a._id.toString().localeCompare(b._id.toString()));
  return { messages: all.slice(0, CONVERSATION_LIMIT), more: all.length > CONVERSATION_LIMIT || ancestors.length > CONVERSATION_LIMIT || replies.length > CONVERSATION_LIMIT };
}
