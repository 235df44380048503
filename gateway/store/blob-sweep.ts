import type mongoose from 'mongoose';
import type { Logger } from '../core/log';
import { startSerialLoop, type SerialLoop } from '../core/serial-loop';
import type { BlobOwner } from './blobs';
import type { Store } from './index';

type ObjectId = mongoose.Types.ObjectId;

/**
 * Removes blobs whose owner document does not exist. Blobs are written
 * first and their document second, so a gateway killed between the two, a
 * store outage during an ingest's cleanup, or a crash while a message is
 * deleted each leave raw bytes that nothing points at and nothing would
 * ever remove.
 *
 * Only blobs older than `olderThanMs` are judged: a younger one may belong
 * to an ingest still in flight whose document is not written yet. Blobs
 * without an owner in their metadata (written before owners were recorded)
 * are never touched: nothing proves them orphaned.
 */

/** Owners the sweep may check; anything else in a file's metadata is left alone. */
const OWNER_COLLECTIONS: ReadonlySet<BlobOwner['collection']> = new Set(['messages', 'outbox']);

/** An ingest or a send writes its document seconds after its blobs; a day leaves a wide margin. */
export const DEFAULT_ORPHAN_AGE_MS = 24 * 60 * 60 * 1000;
const DEFAULT_INTERVAL_MS = 60 * 60 * 1000;
const PAGE = 500;

export interface BlobSweepResult {
  examined: number;
  removed: number;
  bytesRemoved: number;
}

export async function sweepOrphanBlobs(store: Pick<Store, 'conn' | 'blobs'>, options: { olderThanMs?: number; now?: Date; pageSize?: number } = {}): Promise<BlobSweepResult> {
  const cutoff = new Date((options.now ?? new Date()).getTime() - (options.olderThanMs ?? DEFAULT_ORPHAN_AGE_MS));
  const result: BlobSweepResult = { examined: 0, removed: 0, bytesRemoved: 0 };
  let after: ObjectId | null = null;
  for (;;) {
    const page = await store.blobs.ownedBefore(cutoff, after, options.pageSize ?? PAGE);
    if (page.length === 0) return result;
    after = page[page.length - 1].id;
    result.examined += page.length;

    const existing = new Set<string>();
    for (const collection of OWNER_COLLECTIONS) {
      const ids = page.filter((blob) => blob.owner.collection === collection).map((blob) => blob.owner.id);
      if (ids.length === 0) continue;
      const found = await store.conn.collection(collection).find({ _id: { $in: ids } }, { projection: { _id: 1 } }).toArray();
      for (const doc of found) existing.add(`${collection}:${String(doc._id)}`);
    }
    for (const blob of page) {
      if (!OWNER_COLLECTIONS.has(blob.owner.collection) || existing.has(`${blob.owner.collection}:${String(blob.owner.id)}`)) continue;
      await store.blobs.delete(blob.id);
      result.removed++;
      result.bytesRemoved += blob.length;
    }
  }
}

/** The sweep on a timer (the admin process runs it), first an interval after start; passes never overlap. */
export function startBlobSweeper(store: Store, log: Logger, options: { intervalMs?: number; olderThanMs?: number } = {}): SerialLoop {
  const sweepLog = log.child({ component: 'blob-sweep' });
  const loop = startSerialLoop(
    async () => {
      const result = await sweepOrphanBlobs(store, { olderThanMs: options.olderThanMs });
      if (result.removed > 0) sweepLog.info(result, 'removed blobs whose message or outbox entry no longer exists');
      else sweepLog.debug(result, 'no orphan blobs');
    },
    options.intervalMs ?? DEFAULT_INTERVAL_MS,
    (err) => sweepLog.error({ err }, 'orphan blob sweep failed; it runs again at the next interval'),
  );
  // No pass at start: orphans wait a day anyway, and a restart should not add a scan of every file
  // (`npm run cli -- sweep-blobs` runs one now).
  return loop;
}
