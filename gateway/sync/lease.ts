import os from 'node:os';
import { randomToken } from '../core/crypto';
import type { Store } from '../store';

/**
 * One syncer at a time per account, across processes and overlapping passes.
 *
 * A lease is a SyncLease document {_id: key, holder, expiresAt} taken with a
 * single conditional findOneAndUpdate: it matches only when the lease is ours
 * or has expired; when it is held by someone else the upsert collides with
 * the existing _id and the unique index refuses it (E11000) — no
 * transactions needed, which FerretDB does not have. A holder renews while it
 * syncs; a crashed holder stops renewing and its lease expires after the TTL.
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

function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: number }).code === 11000 || /E11000|duplicate key/i.test((err as Error).message ?? '');
}

/** Take the lease if it is free, expired or already ours. Resolves false when someone else holds it. */
export async function acquireLease(store: Store, key: string, holder: string, ttlMs: number, now = new Date()): Promise<boolean> {
  try {
    const lease = await store.models.SyncLease.findOneAndUpdate(
      { _id: key, $or: [{ holder }, { expiresAt: { $lte: now } }] },
      { $set: { holder, expiresAt: new Date(now.getTime() + ttlMs) } },
      { upsert: true, returnDocument: 'after' },
    ).lean();
    return lease?.holder === holder;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}

/** Extend our lease. Resolves false when it was lost (expired and taken by another holder). */
export async function renewLease(store: Store, key: string, holder: string, ttlMs: number, now = new Date()): Promise<boolean> {
  const result = await store.models.SyncLease.updateOne({ _id: key, holder }, { $set: { expiresAt: new Date(now.getTime() + ttlMs) } });
  return result.matchedCount === 1;
}

/** Give the lease back so the next pass (of any syncer) need not wait for the TTL. */
export async function releaseLease(store: Store, key: string, holder: string): Promise<void> {
  await store.models.SyncLease.deleteOne({ _id: key, holder });
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
