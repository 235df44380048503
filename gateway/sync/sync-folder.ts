import type { FetchMessageObject, ImapFlow, MailboxObject } from 'imapflow';
import type mongoose from 'mongoose';
import type { Logger } from '../core/log';
import { ingest, type Associator } from '../mail/ingest';
import type { Store } from '../store';
import type { ChosenFolder, FolderStatus } from './folders';
import type { SyncOptions } from './options';
import { isUnchanged, planBatches, seenSince, uidSet, uidSets, uidsReused, type SizedUid } from './plan';
import { readSeenSince } from './seen-since';

type ObjectId = mongoose.Types.ObjectId;

/**
 * Sync one folder, read-only: EXAMINE (RFC 3501 §6.3.2) and BODY.PEEK[]
 * (§6.4.5), so nothing on the user's server changes — no \Seen, no moves.
 *
 * Cursor = (UIDVALIDITY, lastUid) in FolderState (§2.3.1.1). A pass:
 *   0. unchanged (LIST-STATUS said so) → ledger touch only, no EXAMINE/FETCH;
 *   1. UIDVALIDITY new or changed → start over from the backfill window
 *      (de-duplication in ingest keeps it from storing anything twice);
 *   2. mail above lastUid, oldest first, in batches; lastUid advances after
 *      each whole batch is stored;
 *   3. the backfill (first sync): SEARCH SINCE the window, newest first, in
 *      batches, with its own cursor (belowUid) so a crash resumes without a
 *      gap and without starting over;
 *   4. flags changed since the last pass (HIGHESTMODSEQ grew, RFC 7162):
 *      mail the owner has read in the mailbox meanwhile is read here too
 *      (seen-since.ts).
 * Every message goes through the one ingest pipeline.
 */

export interface FolderSyncContext {
  client: ImapFlow;
  store: Store;
  log: Logger;
  accountId: ObjectId;
  ownerId: ObjectId;
  options: SyncOptions;
  /** Aborted on shutdown or a lost lease: finish the current batch, then stop. */
  signal: AbortSignal;
  /** Re-reads the account and aborts `signal` when the user deleted, disabled or re-configured it (account-check.ts). */
  checkAccount?: () => Promise<void>;
  associate?: Associator;
}

export interface FolderTally {
  stored: number;
  duplicates: number;
  tombstoned: number;
  /** Stored raw with parseError set by ingest. */
  parseErrors: number;
  /** Larger than maxMessageBytes: stored truncated, flagged. */
  truncated: number;
  /** Listed by the server but returned without a body (retried, then skipped; the ledger shows it). */
  unreadable: number;
}

export interface FolderResult extends FolderTally {
  folder: string;
  role: ChosenFolder['role'];
  unchanged: boolean;
  /** False when the pass stopped early (shutdown, lost lease); the cursor is still exact. */
  finished: boolean;
  lag: number;
  stalled: boolean;
}

export function emptyTally(): FolderTally {
  return { stored: 0, duplicates: 0, tombstoned: 0, parseErrors: 0, truncated: 0, unreadable: 0 };
}

/**
 * Passes in which the server returned a message without its content before
 * it is skipped. Until then the batch does not count as stored (the cursor
 * stays, nothing is lost to a passing hiccup); after that one message the
 * server cannot deliver no longer holds up every message behind it.
 */
export const UNREADABLE_ATTEMPTS = 3;

interface Cursor {
  lastUid: number;
  backfill: { since: Date; topUid: number; belowUid: number; total: number; done: number; completed: boolean };
}

/** imapflow reports INTERNALDATE as a Date (or a string from some servers). */
function toDate(value: Date | string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

export async function syncFolder(ctx: FolderSyncContext, folder: ChosenFolder): Promise<FolderResult> {
  const { client, store, options } = ctx;
  const log = ctx.log.child({ folder: folder.path });
  const tally = emptyTally();
  const filter = { accountId: ctx.accountId, folder: folder.path };
  const save = (fields: Record<string, unknown>) => store.models.FolderState.updateOne(filter, { $set: fields }, { upsert: true });
  const now = options.now();
  const state = await store.models.FolderState.findOne(filter).lean();
  const result = (fields: Pick<FolderResult, 'unchanged' | 'finished' | 'lag' | 'stalled'>): FolderResult => ({ ...tally, folder: folder.path, role: folder.role, ...fields });

  if (state && isUnchanged(state, folder.status) && seenSince(state, folder.status?.highestModseq) === undefined) {
    // One LIST-STATUS answer covered this folder: no EXAMINE, no FETCH.
    const status = folder.status!;
    await save({
      specialUse: folder.specialUse,
      uidNext: status.uidNext,
      messagesOnServer: status.messages ?? state.messagesOnServer,
      highestModSeq: status.highestModseq?.toString() ?? state.highestModSeq,
      lag: 0,
      lastPassAt: now,
      lastPassStored: 0,
      lastError: '',
    });
    return result({ unchanged: true, finished: true, lag: 0, stalled: state.stalled });
  }

  let pendingNew = 0;
  let pendingBackfill = 0;
  /** UIDs this pass found on the server to read (new mail and backfill). */
  let listed = 0;
  try {
    const mailbox = await client.mailboxOpen(folder.path, { readOnly: true });
    // HIGHESTMODSEQ as EXAMINE reported it (RFC 7162 §3.1.2.1). imapflow raises mailbox.highestModseq to every MODSEQ it
    // sees later in the session, also in the unsolicited FETCH telling that a message stored by this pass was read
    // meanwhile on a phone: saving that value would put the change behind the next pass's CHANGEDSINCE for good.
    const examinedModSeq = mailbox.highestModseq;
    const uidValidity = mailbox.uidValidity.toString();
    const sameValidity = state?.uidValidity === uidValidity;
    const uidNext = await uidNextOf(client, mailbox, folder.status, sameValidity ? (state?.lastUid ?? 0) : 0);
    const reused = sameValidity && uidsReused(state, uidNext);
    // The cursor holds under the same UIDVALIDITY, unless UIDs are being handed out again.
    const trusted = sameValidity && !reused;
    const previousUidNext = trusted ? state.uidNext : 0;

    // UIDs are void under another UIDVALIDITY, and so are their attempts.
    const unreadable = new Map<number, number>(trusted ? (state?.unreadable ?? []).map((entry) => [entry.uid, entry.attempts]) : []);
    const skipped = new Set([...unreadable].filter(([, attempts]) => attempts >= UNREADABLE_ATTEMPTS).map(([uid]) => uid));
    /** Count one more pass without the content of `uid`; true while the batch should wait for it. */
    const noteUnreadable = async (uid: number): Promise<boolean> => {
      const attempts = (unreadable.get(uid) ?? 0) + 1;
      unreadable.set(uid, attempts);
      await save({ unreadable: [...unreadable].map(([u, n]) => ({ uid: u, attempts: n })) });
      return attempts < UNREADABLE_ATTEMPTS;
    };
    const fetchable = (items: SizedUid[]) => (skipped.size > 0 ? items.filter((item) => !skipped.has(item.uid)) : items);

    let cursor: Cursor;
    if (state && trusted) {
      const backfill = state.backfill;
      cursor = {
        lastUid: state.lastUid,
        backfill: {
          since: backfill?.since ?? new Date(now.getTime() - options.backfillDays * 86_400_000),
          topUid: backfill?.topUid ?? 0,
          // A cursor saved without a backfill cursor: backfill everything below lastUid.
          belowUid: backfill?.belowUid || state.lastUid + 1,
          total: backfill?.total ?? 0,
          done: backfill?.done ?? 0,
          completed: backfill?.completed ?? false,
        },
      };
    } else {
      // First sync, or UIDVALIDITY changed (RFC 3501 §2.3.1.1: every old
      // UID is void). Mail up to UIDNEXT−1 is the backfill's; newer mail
      // is the incremental cursor's.
      if (reused) log.warn({ uidValidity, was: state?.uidNext, now: uidNext }, 'UIDNEXT went back (mailbox restored from a backup?): resyncing the folder from the backfill window');
      else if (state?.uidValidity) log.warn({ was: state.uidValidity, now: uidValidity }, 'UIDVALIDITY changed: resyncing the folder from the backfill window');
      const topUid = Math.max(0, uidNext - 1);
      cursor = {
        lastUid: topUid,
        backfill: { since: new Date(now.getTime() - options.backfillDays * 86_400_000), topUid, belowUid: topUid + 1, total: 0, done: 0, completed: false },
      };
      await save({
        uidValidity,
        // Shown while the (long) first sync runs; the rest of the ledger is written when the pass ends.
        specialUse: folder.specialUse,
        messagesOnServer: mailbox.exists,
        lastUid: cursor.lastUid,
        'backfill.since': cursor.backfill.since,
        'backfill.topUid': topUid,
        'backfill.belowUid': topUid + 1,
        'backfill.total': 0,
        'backfill.done': 0,
        'backfill.completed': false,
        unreadable: [],
        ...(reused || state?.uidValidity ? { resyncedAt: now, resyncReason: reused ? 'uids-reused' : 'uidvalidity-changed' } : {}),
      });
    }

    // The account's counters once per batch rather than once per message (each is a store write).
    const countStored = async (stored: number) => {
      if (stored === 0) return;
      await ctx.store.models.MailAccount.updateOne({ _id: ctx.accountId }, { $set: { lastMailAt: new Date() }, $inc: { messageCount: stored } })
        .catch((err: Error) => log.warn({ err }, 'could not update the mail account counters; the batch is stored'));
    };
    const storeBatches = (batches: SizedUid[][], saveCursor: (batch: SizedUid[], outcome: BatchOutcome) => Promise<void>) =>
      runBatches(ctx, batches, (batch, window) => storeBatch(ctx, log, folder, uidValidity, batch, tally, window, noteUnreadable), async (batch, outcome) => {
        // Also for the part of a batch stored before a failure: replayed, those come back as duplicates.
        await countStored(outcome.stored);
        if (outcome.error === undefined) await saveCursor(batch, outcome);
      });
    const limits = { maxCount: options.batchSize, maxBytes: options.batchBytes, messageCap: options.maxMessageBytes };

    // 2. New mail above the cursor, oldest first.
    if (uidNext > cursor.lastUid + 1) {
      const fresh = mailbox.exists > 0 ? fetchable(await newUids(client, cursor.lastUid)) : [];
      pendingNew = fresh.length;
      listed += fresh.length;
      await storeBatches(planBatches(fresh, limits), async (batch) => {
        cursor.lastUid = Math.max(...batch.map((item) => item.uid));
        pendingNew -= batch.length;
        await save({ lastUid: cursor.lastUid });
        log.info({ phase: 'new', batch: batch.length, lastUid: cursor.lastUid, pending: pendingNew, stored: tally.stored, duplicates: tally.duplicates }, 'batch stored, cursor saved');
      });
      if (!ctx.signal.aborted) {
        // Every UID below the UIDNEXT seen at EXAMINE was listed above (UIDs
        // are never reused), so the gap up to it holds nothing to fetch.
        cursor.lastUid = Math.max(cursor.lastUid, uidNext - 1);
        await save({ lastUid: cursor.lastUid });
      }
    }

    // 3. Backfill, newest first.
    if (!cursor.backfill.completed && !ctx.signal.aborted) {
      const backfill = cursor.backfill;
      let remaining: SizedUid[] = [];
      if (backfill.belowUid > 1 && mailbox.exists > 0) {
        const found = (await client.search({ since: backfill.since, uid: `1:${backfill.belowUid - 1}` }, { uid: true })) || [];
        const below = found.filter((uid) => uid < backfill.belowUid);
        remaining = below.length > 0 ? fetchable(await sizesOf(client, below)) : [];
        remaining.sort((a, b) => b.uid - a.uid);
      }
      pendingBackfill = remaining.length;
      listed += remaining.length;
      backfill.total = backfill.done + remaining.length;
      await save({ 'backfill.total': backfill.total });
      await storeBatches(planBatches(remaining, limits), async (batch, outcome) => {
        backfill.belowUid = Math.min(...batch.map((item) => item.uid));
        // Messages expunged before they could be read are no longer owed: "n messages read" counts what was.
        backfill.done += batch.length - (outcome.gone ?? 0);
        pendingBackfill -= batch.length;
        await save({ 'backfill.belowUid': backfill.belowUid, 'backfill.done': backfill.done });
        // Progress of a long first sync, one line per batch (the console shows the same from the ledger).
        log.info({ phase: 'backfill', batch: batch.length, done: backfill.done, total: backfill.total, stored: tally.stored, duplicates: tally.duplicates }, 'batch stored, cursor saved');
      });
      if (!ctx.signal.aborted) {
        backfill.completed = true;
        // Messages expunged while the backfill ran are no longer owed: n of n.
        await save({ 'backfill.completed': true, 'backfill.total': backfill.done });
      }
    }

    // 4. Mail read in the mailbox since the last pass. The mod-sequence is saved once this is done (a stopped
    // pass, or one whose time for it ran out, keeps the old one, so the next goes on); a session without
    // CONDSTORE cannot ask, and moves on.
    let highestModSeq = examinedModSeq?.toString() ?? '';
    const flagsSince = trusted ? seenSince(state, examinedModSeq) : undefined;
    if (flagsSince !== undefined && client.enabled.has('CONDSTORE') && !mailbox.noModseq) {
      const caughtUp = ctx.signal.aborted ? false
        : mailbox.exists === 0 || (state?.lastUid ?? 0) === 0 || (await readSeenSince(ctx, log, folder, uidValidity, flagsSince, state!.lastUid)).complete;
      if (!caughtUp) highestModSeq = state?.highestModSeq ?? '';
    }

    // Ledger. A pass that saw UIDNEXT move and found mail to read, yet took
    // in none of it, is a stall: shown, not hidden (mail may be arriving that
    // the sync cannot read). UIDNEXT moving over messages already expunged
    // (deleted on a phone, moved away by a client's rule: sparse UIDs) left
    // nothing to read; calling that a stall told the user, at every such
    // pass, that new mail could not be stored.
    const finished = !ctx.signal.aborted;
    const processed = tally.stored + tally.duplicates + tally.tombstoned;
    const stalled = finished && previousUidNext > 0 && uidNext > previousUidNext && listed > 0 && processed === 0;
    if (stalled) log.warn({ uidNext, previousUidNext }, 'UIDNEXT moved but nothing was stored: sync stalled');
    const lag = pendingNew + pendingBackfill;
    await save({
      specialUse: folder.specialUse,
      uidNext,
      messagesOnServer: mailbox.exists,
      highestModSeq,
      lag,
      lastPassAt: now,
      lastPassStored: tally.stored,
      lastError: '',
      ...(finished ? { stalled } : {}),
    });
    return result({ unchanged: false, finished, lag, stalled });
  } catch (err) {
    const message = describeError(err);
    // specialUse too: a Sent folder refused at its first EXAMINE has no other record of its role, and the ledger lists it by it.
    await save({ specialUse: folder.specialUse, lastPassAt: now, lastPassStored: tally.stored, lastError: message, lag: pendingNew + pendingBackfill }).catch(() => undefined);
    if (err && typeof err === 'object' && Object.isExtensible(err)) Object.assign(err, { folder: folder.path, tally });
    throw err;
  }
}

/** A UID as the protocol has them: a whole number from 1 (RFC 3501 §9 nz-number). */
function isUid(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

/**
 * UIDNEXT of the folder just opened. RFC 3501 §6.3.1 makes it a REQUIRED
 * part of the EXAMINE answer, but some servers leave it out (Winmail Pro;
 * mail.163.com also from STATUS). Without it the cursor never saw new mail:
 * the folder stayed "synced" with nothing read, for good. Next best: the
 * STATUS (or LIST-STATUS) value read just before; else the highest UID in
 * the folder, the UID of message `*` (§6.4.8), plus one. UIDs only grow, so
 * never below the cursor.
 */
async function uidNextOf(client: ImapFlow, mailbox: MailboxObject, status: FolderStatus | undefined, lastUid: number): Promise<number> {
  if (isUid(mailbox.uidNext)) return mailbox.uidNext;
  if (isUid(status?.uidNext)) return Math.max(status.uidNext, lastUid + 1);
  let highest = 0;
  if (mailbox.exists > 0) {
    for await (const message of client.fetch('*', { uid: true })) highest = Math.max(highest, message.uid);
  }
  return Math.max(highest, lastUid) + 1;
}

/** UIDs above the cursor with their sizes. `n:*` also names the highest UID when it is below n (RFC 3501 §6.4.8), hence the filter. */
async function newUids(client: ImapFlow, lastUid: number): Promise<SizedUid[]> {
  const items: SizedUid[] = [];
  for await (const message of client.fetch(`${lastUid + 1}:*`, { uid: true, size: true }, { uid: true })) {
    if (message.uid > lastUid) items.push({ uid: message.uid, size: message.size ?? 0 });
  }
  return items.sort((a, b) => a.uid - b.uid);
}

/** RFC822.SIZE of each UID (a round trip per command-line's worth of UIDs), so batches can be cut by bytes. */
async function sizesOf(client: ImapFlow, uids: number[]): Promise<SizedUid[]> {
  const wanted = new Set(uids);
  const items: SizedUid[] = [];
  for (const set of uidSets(uids)) {
    for await (const message of client.fetch(set, { uid: true, size: true }, { uid: true })) {
      if (wanted.has(message.uid)) items.push({ uid: message.uid, size: message.size ?? 0 });
    }
  }
  return items;
}

/** Ingests in flight across the batches of a folder, at most ingestConcurrency. */
type IngestWindow = Set<Promise<unknown>>;

interface BatchOutcome {
  /** Messages of the batch newly stored (also when the batch failed part-way). */
  stored: number;
  /** Messages of the batch expunged before they could be read (set when the batch completed). */
  gone?: number;
  /** The first failure; the batch is then not complete and its cursor must not move. */
  error?: unknown;
}

/**
 * Batches in order, pipelined: the FETCH of the next batch starts as soon
 * as the previous FETCH has been read, while the previous batch's last
 * messages are still being stored; the ingest window spans both. Each
 * batch's `finish` (counters, cursor) runs strictly in batch order and only
 * after every message of the batch settled, so a cursor never passes a
 * message that is not stored. Without the overlap every batch boundary
 * idled the store and the syncer for a round trip each (measured: about a
 * tenth of a first sync). At most one batch runs ahead of the last
 * finished one; after a failure nothing new starts, everything in flight
 * settles, and the first error is thrown.
 */
async function runBatches(
  ctx: FolderSyncContext,
  batches: SizedUid[][],
  fetchBatch: (batch: SizedUid[], window: IngestWindow) => Promise<{ settled: Promise<BatchOutcome> }>,
  finish: (batch: SizedUid[], outcome: BatchOutcome) => Promise<void>,
): Promise<void> {
  const window: IngestWindow = new Set();
  const finished: Array<Promise<unknown>> = [];
  let chain: Promise<unknown> = Promise.resolve(undefined);
  let failure: unknown;
  const fail = (err: unknown) => {
    failure ??= err;
  };
  try {
    for (const batch of batches) {
      if (ctx.signal.aborted || failure !== undefined) break;
      // Stay at most one batch ahead of the cursor.
      if (finished.length >= 2) await finished[finished.length - 2];
      if (failure !== undefined) break;
      await ctx.checkAccount?.();
      if (ctx.signal.aborted) break;
      const { settled } = await fetchBatch(batch, window);
      chain = chain.then(async () => {
        const outcome = await settled;
        // A batch after a failed one is not complete either: its cursor would skip the failed one's messages.
        if (outcome.error === undefined && failure !== undefined) outcome.error = failure;
        await finish(batch, outcome);
        if (outcome.error !== undefined) fail(outcome.error);
      }).catch(fail);
      finished.push(chain);
    }
  } catch (err) {
    fail(err);
  } finally {
    // Also when the connection dropped mid-FETCH: nothing keeps writing
    // behind the caller's back once it gave up.
    await Promise.allSettled(window);
    await chain;
  }
  if (failure !== undefined) throw failure;
}

/**
 * FETCH one batch (UID, INTERNALDATE, RFC822.SIZE, FLAGS, BODY.PEEK[]<0.cap>) and
 * ingest each message as it arrives, within the folder's ingest window.
 * Resolves when the FETCH has been read, with a promise (never rejected)
 * of the batch's outcome once every one of its messages settled. A failure
 * (a store error, or the connection dropping mid-FETCH) stops ingesting the
 * rest of the batch and is the outcome's error.
 */
async function storeBatch(
  ctx: FolderSyncContext,
  log: Logger,
  folder: ChosenFolder,
  uidValidity: string,
  batch: SizedUid[],
  tally: FolderTally,
  window: IngestWindow,
  noteUnreadable: (uid: number) => Promise<boolean>,
): Promise<{ settled: Promise<BatchOutcome> }> {
  const wanted = new Set(batch.map((item) => item.uid));
  const cap = ctx.options.maxMessageBytes;
  const tasks: Array<Promise<void>> = [];
  const outcome: BatchOutcome = { stored: 0 };
  // FLAGS too (the same FETCH, no extra round trip): mail already \Seen in the mailbox arrives read.
  const query = { uid: true, internalDate: true, size: true, flags: true, source: { maxLength: cap } };
  /** UIDs the server answered without their content. */
  const contentless: number[] = [];
  try {
    for await (const message of ctx.client.fetch(uidSet([...wanted]), query, { uid: true })) {
      if (!wanted.has(message.uid) || outcome.error !== undefined) continue;
      wanted.delete(message.uid);
      if (!message.source) {
        contentless.push(message.uid);
        continue;
      }
      const task: Promise<void> = storeMessage(ctx, log, folder, uidValidity, message, tally)
        .then((stored) => {
          if (stored) outcome.stored += 1;
        })
        .catch((err) => {
          outcome.error ??= err;
        })
        .finally(() => window.delete(task));
      tasks.push(task);
      window.add(task);
      if (window.size >= ctx.options.ingestConcurrency) await Promise.race(window);
    }
  } catch (err) {
    outcome.error ??= err;
  }
  let unreadable = contentless;
  if (contentless.length > 0 && outcome.error === undefined) {
    // A message another session expunged a moment ago, before this session was told, comes back with its UID
    // but without its content (Dovecot, RFC 2180): it is gone, not unreadable. A UID SEARCH lets the server
    // report the expunge (RFC 3501 §7.4.1) and names the ones still there.
    try {
      const present = new Set((await ctx.client.search({ uid: uidSet(contentless) }, { uid: true })) || []);
      unreadable = contentless.filter((uid) => present.has(uid));
      if (unreadable.length < contentless.length) log.debug({ uids: contentless.filter((uid) => !present.has(uid)) }, 'messages expunged while they were being fetched');
    } catch (err) {
      outcome.error ??= err;
    }
  }
  for (const uid of unreadable) {
    tally.unreadable += 1;
    const wait = await noteUnreadable(uid);
    if (wait) {
      log.warn({ uid }, 'server returned no body for this message; the batch is fetched again at the next pass');
      outcome.error ??= new Error(`the server returned message UID ${uid} without its content (its log may say why); it is asked for again at the next pass`);
    } else {
      log.warn({ uid, attempts: UNREADABLE_ATTEMPTS }, 'server returned no body for this message again; it is skipped');
    }
  }
  // UIDs listed moments ago and gone now were expunged meanwhile: nothing to store.
  if (wanted.size > 0 && outcome.error === undefined) log.debug({ uids: [...wanted] }, 'messages expunged before they could be fetched');
  if (outcome.error === undefined) outcome.gone = wanted.size + contentless.length - unreadable.length;
  return { settled: Promise.allSettled(tasks).then(() => outcome) };
}

/** Ingest one fetched message; true when it was newly stored. */
async function storeMessage(ctx: FolderSyncContext, log: Logger, folder: ChosenFolder, uidValidity: string, message: FetchMessageObject, tally: FolderTally): Promise<boolean> {
  const receivedAt = toDate(message.internalDate);
  const result = await ingest(
    { store: ctx.store, log: ctx.log, associate: ctx.associate },
    {
      raw: message.source!,
      mailboxKey: ctx.accountId.toHexString(),
      accountId: ctx.accountId,
      ownerId: ctx.ownerId,
      // `at` = INTERNALDATE, not "now": a batch replayed after a crash then
      // records the very same source, which $addToSet folds into one.
      source: { kind: 'imap', at: receivedAt, folder: folder.path, uidValidity, uid: message.uid },
      receivedAt,
      // BODY.PEEK[] leaves \Seen as it was (RFC 9051 §6.4.5), so this is whether the owner had read it there.
      // What the owner sent is not news to them, flagged or not.
      read: folder.role === 'sent' || (message.flags?.has('\\Seen') ?? false),
      countedByCaller: true,
    },
  );
  if (result.outcome === 'stored') tally.stored += 1;
  else if (result.outcome === 'duplicate') tally.duplicates += 1;
  else tally.tombstoned += 1;
  if (result.parsed.parseError) tally.parseErrors += 1;

  const size = message.size ?? message.source!.length;
  if (size > ctx.options.maxMessageBytes && result.id) {
    // Never skipped: the first maxMessageBytes are stored and the message
    // is flagged like an unparseable one, so the console can say so.
    tally.truncated += 1;
    const cap = ctx.options.maxMessageBytes;
    // Shown on the message page: the stored copy ends mid-way, so its last attachments are cut off.
    const note = `This message is ${megabytes(size)} (${size} bytes), over the ${cap}-byte limit (SMTP_MAX_MESSAGE_SIZE): only its first ${megabytes(cap)} were stored, so its end, often the last attachments, is cut off. The whole message is still in the mailbox on the server.`;
    // First, also when the cut-off end made the parser fail: the cut is what explains it.
    const parseError = [note, result.parsed.parseError].filter(Boolean).join(' ').slice(0, 2000);
    await ctx.store.models.Message.updateOne({ _id: result.id }, { $set: { parseError } });
    log.warn({ uid: message.uid, size, id: result.id }, 'message over the size limit stored truncated');
  }
  return result.outcome === 'stored';
}

function megabytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Server text when there is one (it is what the user can act on), else the error message. */
export function describeError(err: unknown): string {
  const e = err as { responseText?: string; message?: string; code?: string };
  const text = (e.responseText ?? '').trim() || e.message || String(e.code ?? err);
  return text.slice(0, 500);
}
