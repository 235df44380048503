import { markReadInMailbox } from '../accounts/read-state';
import type { Logger } from '../core/log';
import type { ChosenFolder } from './folders';
import type { FolderSyncContext } from './sync-folder';

/** UIDs per store query when many messages were read at once ("Mark all as read" on a phone). */
const UIDS_PER_QUERY = 500;
/** Messages marked read per write, so the time budget is looked at between writes. */
const ROWS_PER_WRITE = 50;

export interface SeenCatchUp {
  /** Messages marked read by this pass. */
  marked: number;
  /** Every change was handled; false when the time budget ran out and the next pass goes on. */
  complete: boolean;
}

/**
 * Mail the owner has read in their mailbox since the last pass (another
 * mail program set \Seen) is read in Postroom too: one FETCH of the flags
 * of UIDs up to `upToUid` that changed since `since` (CHANGEDSINCE, RFC
 * 7162 §3.1.4.1), then the stored copies of those UIDs still unread here,
 * each found by the IMAP source the sync recorded for it (a forwarded copy
 * the sync found again has one too). Only \Seen that was set counts: mail
 * marked unread in the mailbox stays as Postroom has it, the owner's own
 * choice here. Newest first, for up to `options.seenCatchUpMs`: what is
 * left is found again by the next pass (the caller keeps `since` until
 * this is complete, and what is read here is no longer unread).
 */
export async function readSeenSince(ctx: FolderSyncContext, log: Logger, folder: ChosenFolder, uidValidity: string, since: bigint, upToUid: number): Promise<SeenCatchUp> {
  const started = Date.now();
  const seen: number[] = [];
  // Mail above the last pass's cursor was stored by this pass with its flags as they are.
  for await (const message of ctx.client.fetch(`1:${upToUid}`, { uid: true, flags: true }, { uid: true, changedSince: since })) {
    if (message.flags?.has('\\Seen')) seen.push(message.uid);
  }
  seen.sort((a, b) => b - a);
  let marked = 0;
  let complete = true;
  scan: for (let start = 0; start < seen.length; start += UIDS_PER_QUERY) {
    const uids = new Set(seen.slice(start, start + UIDS_PER_QUERY));
    // Dotted paths, not $elemMatch (FerretDB 1.24 takes only operators in it): the source of these UIDs in
    // this folder under this UIDVALIDITY is picked out of each document's few sources here. The owner and
    // the statuses lead to the {ownerId, status, unread, …} index on MongoDB: only the owner's unread mail is read.
    const found = await ctx.store.models.Message.find({
      ownerId: ctx.ownerId,
      status: { $in: ['inbox', 'quarantine'] },
      unread: true,
      accountId: ctx.accountId,
      'sources.uid': { $in: [...uids] },
      'sources.folder': folder.path,
    }).select({ ownerId: 1, dedupeKey: 1, sources: 1 }).lean();
    const uidOf = (row: (typeof found)[number]) => (row.sources ?? []).find((source) =>
      source.kind === 'imap' && source.folder === folder.path && source.uidValidity === uidValidity && uids.has(source.uid ?? 0))?.uid ?? 0;
    const rows = found.map((row) => ({ row, uid: uidOf(row) })).filter((entry) => entry.uid > 0).sort((a, b) => b.uid - a.uid).map((entry) => entry.row);
    for (let at = 0; at < rows.length; at += ROWS_PER_WRITE) {
      // At least one write per pass, so a slow store still makes progress.
      if ((marked > 0 && Date.now() - started > ctx.options.seenCatchUpMs) || ctx.signal.aborted) {
        complete = false;
        break scan;
      }
      const slice = rows.slice(at, at + ROWS_PER_WRITE);
      await markReadInMailbox(ctx.store, slice);
      marked += slice.length;
    }
  }
  if (marked > 0 || !complete) log.info({ marked, changed: seen.length, complete }, complete ? 'mail read in the mailbox is marked read' : 'mail read in the mailbox is being marked read; the next pass goes on');
  return { marked, complete };
}
