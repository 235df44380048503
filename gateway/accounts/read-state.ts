import type { Store } from '../store';
import { parseObjectId, type ObjectId } from './ids';
import { messageScope } from './mailbox';
import type { Viewer } from './mail-accounts';

/**
 * Read state: whether the owner of a mail has opened it.
 *
 * One state per inbox entry. A mail that reached several of an owner's mailboxes is stored once per
 * mailbox with the same de-duplication key and listed once (mailbox.ts oneEntryPerMail); opening it,
 * or marking it read or unread, writes every one of the owner's copies (any status), with one command
 * on the {ownerId, dedupeKey} index. An entry is unread while any of its copies is: a copy that arrives
 * later from another mailbox is new mail there, and the unread count (unreadCount) counts exactly the
 * entries the list shows in bold.
 *
 * Stored as `unread: true`; a document without the field (stored before read state existed) is read.
 * The state is the owner's: an admin reading someone else's mail leaves it as it was (markOpened).
 */

/** The views the count is kept for (the inbox tabs). */
export type ReadStateView = 'inbox' | 'quarantine' | 'all';

/**
 * How many of the viewer's own entries in a view are unread: one per mail, however many mailboxes hold it.
 * For an admin too it counts their own mail (the list bolds what *they* have not opened; other people's
 * unread mail is marked "unread by its owner"). On MongoDB the {ownerId, status, unread, receivedAt, _id,
 * dedupeKey} index answers it without reading a document; FerretDB 1.24 reads the collection (as for any
 * filter but _id), so the console asks only on the first page of a view.
 */
export async function unreadCount(store: Store, viewer: Viewer, view: ReadStateView = 'inbox'): Promise<number> {
  const match: Record<string, unknown> = { ownerId: viewer.id, unread: true };
  if (view !== 'all') match.status = view;
  const [result] = await store.models.Message.aggregate<{ n: number }>([
    { $match: match },
    { $group: { _id: '$dedupeKey' } },
    { $count: 'n' },
  ]);
  return result?.n ?? 0;
}

/**
 * Opening a message in the console marks it read for its owner, and only for its owner: an admin looking
 * at an employee's mail does not change what the employee sees.
 * Nothing is written for a message already read. Returns whether it was unread and is read now.
 */
export async function markOpened(
  store: Store,
  viewer: Viewer,
  message: { _id: ObjectId; ownerId: ObjectId; dedupeKey?: string | null; unread?: boolean | null },
): Promise<boolean> {
  if (!message.unread || !message.ownerId.equals(viewer.id)) return false;
  await writeReadState(store, [{ ownerId: message.ownerId, dedupeKey: message.dedupeKey ?? null, _id: message._id }], true);
  return true;
}

/**
 * Mark the entries of these message ids read or unread (the console's buttons, POST /api/v1/messages/{id}/read
 * and /unread): an explicit act, allowed on every message the viewer may see. Ids the viewer may not see are
 * ignored. Returns how many of the ids were found.
 */
export async function setReadState(store: Store, viewer: Viewer, ids: readonly string[], read: boolean): Promise<number> {
  const objectIds = [...new Set(ids)].map((id) => parseObjectId(id)).filter((id): id is ObjectId => Boolean(id));
  if (objectIds.length === 0) return 0;
  const filter = objectIds.length === 1 ? { _id: objectIds[0], ...messageScope(viewer) } : { _id: { $in: objectIds }, ...messageScope(viewer) };
  const rows = await store.models.Message.find(filter).select({ ownerId: 1, dedupeKey: 1 }).lean();
  await writeReadState(store, rows, read);
  return rows.length;
}

/** One updateMany per owner, over all of that owner's copies of these mails. */
async function writeReadState(store: Store, rows: ReadonlyArray<{ _id: ObjectId; ownerId: ObjectId; dedupeKey?: string | null }>, read: boolean): Promise<void> {
  const byOwner = new Map<string, { ownerId: ObjectId; keys: Set<string>; loose: ObjectId[] }>();
  for (const row of rows) {
    const owner = byOwner.get(row.ownerId.toString()) ?? { ownerId: row.ownerId, keys: new Set<string>(), loose: [] };
    byOwner.set(row.ownerId.toString(), owner);
    if (row.dedupeKey) owner.keys.add(row.dedupeKey);
    else owner.loose.push(row._id);
  }
  // Only documents whose state changes: marking read mail read again writes nothing.
  const change = read ? { unread: true } : { unread: { $ne: true } };
  for (const { ownerId, keys, loose } of byOwner.values()) {
    const which = [...(keys.size ? [{ dedupeKey: { $in: [...keys] } }] : []), ...(loose.length ? [{ _id: { $in: loose } }] : [])];
    if (which.length === 0) continue;
    await store.models.Message.updateMany({ ownerId, ...change, ...(which.length === 1 ? which[0] : { $or: which }) }, { $set: { unread: !read } });
  }
}
