import mongoose from 'mongoose';
import type { Actor } from '../accounts/audit';
import { holdLease, leaseHeld, newHolderId } from '../sync/lease';
import { commitImport, type ImportResult } from './csv-import';
import type { ObjectServiceDeps } from './objects';

/**
 * One import per uploaded file. Pressing Import twice — a double click, or
 * a reload while a large file is written (10,000 rows take seconds on the
 * embedded store) — would run two commits side by side; both plan before
 * either writes, so rows matched by address rather than by external id were
 * created twice. The request that takes the upload's lease (sync/lease.ts:
 * a unique insert, which decides on FerretDB too, where findAndModify reads
 * and then writes) imports it; another one shows the running import instead.
 */

type ObjectId = mongoose.Types.ObjectId;

/**
 * The lease is renewed while the import runs; one left by an admin
 * restarted mid-import expires after this, and the upload can be imported
 * again. A re-run is safe: it matches what the first run wrote by address,
 * name or external id and updates it.
 */
export const IMPORT_LEASE_TTL_MS = 60_000;

const leaseKey = (uploadId: ObjectId) => `csv-import:${uploadId.toString()}`;

/** Whether a request is importing the upload now (the console shows the running import). */
export function importRunning(deps: Pick<ObjectServiceDeps, 'store'>, uploadId: ObjectId, now: Date): Promise<boolean> {
  return leaseHeld(deps.store, leaseKey(uploadId), now);
}

/**
 * Import the upload unless another request has (or is doing it). Resolves
 * once this request's import is written, or at once when another one holds
 * it; a failed import gives the upload back, so Import can be pressed again.
 */
export async function commitUploadOnce(deps: ObjectServiceDeps, uploadId: ObjectId, actor: Actor, clock: () => Date): Promise<{ imported: false } | { imported: true; result: ImportResult }> {
  const { CsvImport } = deps.store.models;
  const lease = await holdLease(deps.store, leaseKey(uploadId), newHolderId(), { ttlMs: IMPORT_LEASE_TTL_MS, now: clock });
  if (!lease) return { imported: false };
  try {
    // Read under the lease: an import that finished meanwhile marked the upload before giving the lease back.
    const upload = await CsvImport.findById(uploadId).lean();
    if (!upload || upload.status === 'committed') return { imported: false };
    const result = await commitImport(deps, upload.csv, { defaultType: upload.defaultType || undefined }, actor);
    await CsvImport.updateOne(
      { _id: uploadId },
      {
        $set: {
          status: 'committed', committedAt: clock(), csv: '-',
          result: { total: result.total, creates: result.creates, updates: result.updates, invalid: result.invalid },
          jobIds: result.jobIds.map((id) => new mongoose.Types.ObjectId(id)),
        },
      },
    );
    return { imported: true, result };
  } finally {
    await lease.release();
  }
}

/** Discard an upload nobody is importing; false when an import holds it (or has written it). */
export async function discardUpload(deps: Pick<ObjectServiceDeps, 'store'>, uploadId: ObjectId, now: Date): Promise<boolean> {
  if (await importRunning(deps, uploadId, now)) return false;
  const removed = await deps.store.models.CsvImport.deleteOne({ _id: uploadId, status: { $ne: 'committed' } });
  return removed.deletedCount === 1;
}
