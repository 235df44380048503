import os from 'node:os';
import { randomToken } from '../core/crypto';
import type { Store } from '../store';
import { isDuplicateKeyError } from '../core/errors';

/**
 * One syncer at a time per account, across processes and overlapping passes
 * (and, with the same primitive, one import per uploaded CSV file:
 * crm/import-once.ts).
 *
 * A lease is a SyncLease document {_id: key, holder, expiresAt}, won by
 * inserting it (the unique _id index picks one winner; see acquireLease) —
 * no transactions needed, which FerretDB does not have. A holder renews while
 * it syncs; a crashed holder stops renewing and its lease expires after the TTL.
 *
 * Expiry compares the clocks of different processes, so hosts running
 * syncers need roughly synchronised clocks (NTP): a skew well below the TTL
 * (2 minutes by default) is harmless.
 */

/** A holder id unique per syncer instance: host, pid and a random part (pids are reused). */
export function newHolderId(): string {
  return `${os.hostname()}:${process.pid}:${randomToken(6)}`;
}

export function accountLeaseKey(accountId: string): string {
  return `imap-sync:${accountId}`;
}


/**
 * Take the lease if it is free, expired or already ours. Resolves false when
 * someone else holds it.
 *
 * The only primitive relied on is the unique _id index. FerretDB 1.24 does
 * not apply conditional updates or deletes atomically (several racers can
 * match the same `{expiresAt <= now}` filter), but an insert with a taken _id
 * fails for all but one racer on FerretDB and MongoDB alike. So each
 * take-over inserts the next epoch, and a winner checks that its epoch is
 * still the newest (a slow racer may have inserted an epoch that was already
 * cleaned up).
 */
export async function acquireLease(store: Store, key: string, holder: string, ttlMs: number, now = new Date()): Promise<boolean> {
  const { SyncLease } = store.models;
  const current = await newestLease(store, key);
  if (current) {
    if (current.holder === holder) return renewLease(store, key, holder, ttlMs, now);
    if (current.expiresAt > now) return false;
  }
  const epoch = (current?.epoch ?? 0) + 1;
  const id = `${key}#${epoch}`;
  try {
    await SyncLease.create({ _id: id, key, epoch, holder, expiresAt: new Date(now.getTime() + ttlMs) });
  } catch (err) {
    if (isDuplicateKeyError(err)) return false;
    throw err;
  }
  const newest = await newestLease(store, key);
  if (newest?._id !== id) {
    await SyncLease.deleteOne({ _id: id, holder });
    return false;
  }
  await SyncLease.deleteMany({ key, epoch: { $lt: epoch } });
  return true;
}

async function newestLease(store: Store, key: string) {
  return store.models.SyncLease.findOne({ key }).sort({ epoch: -1 }).lean();
}

/** Whether some syncer holds the lease now (the console's "syncing now"). */
export async function leaseHeld(store: Store, key: string, now = new Date()): Promise<boolean> {
  const current = await newestLease(store, key);
  return Boolean(current && current.expiresAt > now);
}

/** Extend our lease. Resolves false when it was lost (expired and taken by another holder). */
export async function renewLease(store: Store, key: string, holder: string, ttlMs: number, now = new Date()): Promise<boolean> {
  const current = await newestLease(store, key);
  if (current?.holder !== holder) return false;
  const result = await store.models.SyncLease.updateOne({ _id: current._id, holder }, { $set: { expiresAt: new Date(now.getTime() + ttlMs) } });
  return result.matchedCount === 1;
}

/** Give the lease back so the next pass (of any syncer) need not wait for the TTL. */
export async function releaseLease(store: Store, key: string, holder: string): Promise<void> {
  const current = await newestLease(store, key);
  if (current?.holder === holder) await store.models.SyncLease.deleteOne({ _id: current._id, holder });
}

/**
 * Let one of several racing workers take a thing that is due (a queued job,
 * a webhook delivery): `claim` runs only while `holder` holds lease `key`,
 * which is given back right after. `claim` re-reads the thing with its "due"
 * filter and writes its own lock (e.g. lockedUntil), so a racer that gets
 * the lease next no longer finds it due. A conditional findAndModify alone
 * would not do: FerretDB 1.24 runs it as a read, then a write, and two
 * workers could both win. Resolves null when another holder has the lease.
 */
export async function claimUnderLease<T>(
  store: Store,
  key: string,
  holder: string,
  ttlMs: number,
  claim: () => Promise<T | null>,
  now = new Date(),
): Promise<T | null> {
  if (!(await acquireLease(store, key, holder, ttlMs, now))) return null;
  try {
    return await claim();
  } finally {
    // A lease that cannot be given back runs out after ttlMs; the claim's own lock is what counts.
    await releaseLease(store, key, holder).catch(() => undefined);
  }
}

/**
 * Run `work` while no other holder runs work under lease `key` (a change of one record that reads, checks
 * and writes: two at once each decided on what the other was about to change). Waits for the lease up to
 * `waitMs` (the work of others is a few store round trips), then throws `busy()`; a lease whose holder
 * died runs out after `ttlMs`.
 */
export async function runExclusive<T>(
  store: Store,
  key: string,
  options: { ttlMs: number; waitMs: number; busy: () => Error },
  work: () => Promise<T>,
): Promise<T> {
  const holder = newHolderId();
  const deadline = Date.now() + options.waitMs;
  while (!(await acquireLease(store, key, holder, options.ttlMs))) {
    if (Date.now() > deadline) throw options.busy();
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  try {
    return await work();
  } finally {
    // One that cannot be given back runs out after ttlMs.
    await releaseLease(store, key, holder).catch(() => undefined);
  }
}

export interface HeldLease {
  /** Aborted when a renewal finds the lease taken by someone else: stop after the current batch. */
  readonly lost: AbortSignal;
  release(): Promise<void>;
}

/**
 * Acquire and keep renewing (every third of the TTL) until released.
 * Resolves null when another holder has it. A renewal that fails because the
 * store is briefly unreachable is retried on the next tick; the lease only
 * counts as lost when the store says it belongs to someone else.
 */
export async function holdLease(
  store: Store,
  key: string,
  holder: string,
  options: { ttlMs: number; now?: () => Date; onError?: (err: unknown) => void },
): Promise<HeldLease | null> {
  const now = options.now ?? (() => new Date());
  if (!(await acquireLease(store, key, holder, options.ttlMs, now()))) return null;
  const lost = new AbortController();
  let renewing: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    renewing = renewLease(store, key, holder, options.ttlMs, now())
      .then((ok) => {
        if (!ok) {
          clearInterval(timer);
          lost.abort(new Error(`lease ${key} was taken over by another syncer`));
        }
      })
      .catch((err) => options.onError?.(err));
  }, Math.max(1000, Math.floor(options.ttlMs / 3)));
  timer.unref();
  return {
    lost: lost.signal,
    release: async () => {
      clearInterval(timer);
      await renewing;
      if (!lost.signal.aborted) await releaseLease(store, key, holder);
    },
  };
}
