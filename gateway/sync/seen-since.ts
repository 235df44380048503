import { markReadInMailbox } from '../accounts/read-state';
import type { Logger } from '../core/log';
import type { ChosenFolder } from './folders';
import type { FolderSyncContext } from './sync-folder';

/** UIDs per store query when many messages were read at once ("Mark all as read" on a phone). */
const UIDS_PER_QUERY = 500;

/**
 * Mail the owner has read in their mailbox since the last pass (another
 * mail program set \Seen) is read in Postroom too: one FETCH of the flags
 * of UIDs up to `upToUid` that changed since `since` (CHANGEDSINCE, RFC 7162 §3.1.4.1), then the
 * stored copies of those UIDs still unread here, each found by the IMAP
 * source the sync recorded for it (a forwarded copy the sync found again
 * has one too). Only \Seen that was set counts: mail marked unread in the
 * mailbox stays as Postroom has it, the owner's own choice here.
 * Returns how many messages were marked read.
 */
export async function readSeenSince(ctx: FolderSyncContext, log: Logger, folder: ChosenFolder, uidValidity: string, since: bigint, upToUid: number): Promise<number> {
  const seen: number[] = [];
  // Mail above the last pass's cursor was stored by this pass with its flags as they are.
  for await (const message of ctx.client.fetch(`1:${upToUid}`, { uid: true, flags: true }, { uid: true, changedSince: since })) {
    if (message.flags?.has('\\Seen')) seen.push(message.uid);
  }
  let marked = 0;
  for (let start = 0; start < seen.length; start += UIDS_PER_QUERY) {
    const uids = new Set(seen.slice(start, start + UIDS_PER_QUERY));
    // Dotted paths, not $elemMatch (FerretDB 1.24 takes only operators in it): the source of these UIDs in
    // this folder under this UIDVALIDITY is picked out of each document's few sources here.
    const found = await ctx.store.models.Message.find({
      accountId: ctx.accountId,
      unread: true,
      'sources.uid': { $in: [...uids] },
      'sources.folder': folder.path,
    }).select({ ownerId: 1, dedupeKey: 1, sources: 1 }).lean();
    const rows = found.filter((row) => (row.sources ?? []).some((source) =>
      source.kind === 'imap' && source.folder === folder.path && source.uidValidity === uidValidity && uids.has(source.uid ?? 0)));
    if (rows.length === 0) continue;
    await markReadInMailbox(ctx.store, rows);
    marked += rows.length;
  }
  if (marked > 0) log.info({ marked, changed: seen.length }, 'mail read in the mailbox is marked read');
  return marked;
}
