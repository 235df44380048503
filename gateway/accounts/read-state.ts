import type { Store } from '../store';
import { parseObjectId, type ObjectId } from './ids';
import { isAdmin, type Viewer } from './mail-accounts';

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
 * dedupeKey} index holds all it needs; FerretDB 1.24 reads the whole collection for it (as for any filter
 * but _id), which is why the console asks cachedUnreadCount().
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

/** How long the console reuses a count (cachedUnreadCount). */
export const UNREAD_COUNT_TTL_MS = 60_000;
/** Per store: the counts kept, and how many times each owner's read state changed (a count taken across a change is not kept). */
const counts = new WeakMap<Store, { entries: Map<string, { at: number; count: number }>; changes: Map<string, number> }>();
function countsOf(store: Store) {
  let kept = counts.get(store);
  if (!kept) counts.set(store, (kept = { entries: new Map(), changes: new Map() }));
  return kept;
}
const countKey = (ownerId: ObjectId | string, view: ReadStateView) => `${ownerId.toString()} ${view}`;

/**
 * unreadCount() for the console's inbox, reused for up to a minute: on FerretDB the count is a read of the
 * whole collection, as long again as the page's own read (measured: 1,500 messages, 1.2–2.9 s beside the
 * page's 3.2–4.5 s on two shared cores). It is counted again at once when it cannot be right: the owner's
 * read state changed, mail was released or deleted through this process (forgetUnreadCounts), or the page
 * shows mail that arrived after it was counted (`newestShown`). Mail filed below the top by an IMAP sync,
 * or read in the mailbox, is counted within the minute.
 */
export async function cachedUnreadCount(store: Store, viewer: Viewer, view: ReadStateView, options: { newestShown?: Date | null; now?: number } = {}): Promise<number> {
  const now = options.now ?? Date.now();
  const kept = countsOf(store);
  const key = countKey(viewer.id, view);
  const cached = kept.entries.get(key);
  if (cached && now - cached.at < UNREAD_COUNT_TTL_MS && (!options.newestShown || options.newestShown.getTime() <= cached.at)) return cached.count;
  const owner = viewer.id.toString();
  const changesBefore = kept.changes.get(owner);
  const count = await unreadCount(store, viewer, view);
  // The owner's read state changed while this count was taken: it may be from before the change, so it is not reused.
  if (kept.changes.get(owner) !== changesBefore) return count;
  kept.entries.set(key, { at: now, count });
  if (kept.entries.size > 1000) kept.entries.delete(kept.entries.keys().next().value as string);
  return count;
}

/**
 * Drop the cached counts of these owners once their mail was read, un-read, released or deleted: called
 * after the write (a count taken in between would otherwise be kept for a minute), also when it failed.
 */
export function forgetUnreadCounts(store: Store, ownerIds: ReadonlyArray<ObjectId | string>): void {
  const kept = countsOf(store);
  for (const ownerId of ownerIds) {
    kept.changes.set(ownerId.toString(), (kept.changes.get(ownerId.toString()) ?? 0) + 1);
    for (const view of ['inbox', 'quarantine', 'all'] as const) kept.entries.delete(countKey(ownerId, view));
  }
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
  // The viewer's scope, as everywhere (mailbox.ts messageScope): employees only ever reach their own mail.
  const scope = isAdmin(viewer) ? {} : { ownerId: viewer.id };
  const filter = objectIds.length === 1 ? { _id: objectIds[0], ...scope } : { _id: { $in: objectIds }, ...scope };
  const rows = await store.models.Message.find(filter).select({ ownerId: 1, dedupeKey: 1 }).lean();
  await writeReadState(store, rows, read);
  return rows.length;
}

/**
 * Mail its owner read in another mail program (\Seen in the mailbox, found by the IMAP sync) is read here too,
 * every copy of it. Only that way round: mail marked unread on a phone stays as Postroom has it.
 */
export async function markReadInMailbox(store: Store, rows: ReadonlyArray<{ _id: ObjectId; ownerId: ObjectId; dedupeKey?: string | null }>): Promise<void> {
  await writeReadState(store, rows, true);
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
  try {
    for (const { ownerId, keys, loose } of byOwner.values()) {
      const which = [...(keys.size ? [{ dedupeKey: { $in: [...keys] } }] : []), ...(loose.length ? [{ _id: { $in: loose } }] : [])];
      if (which.length === 0) continue;
      await store.models.Message.updateMany({ ownerId, ...change, ...(which.length === 1 ? which[0] : { $or: which }) }, { $set: { unread: !read } });
    }
  } finally {
    forgetUnreadCounts(store, [...byOwner.values()].map((owner) => owner.ownerId));
  }
}
