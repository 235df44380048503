import mongoose from 'mongoose';
import type { Actor } from '../accounts/audit';
import { isDuplicateKeyError } from '../core/errors';
import { commitImport, type ImportResult } from './csv-import';
import type { ObjectServiceDeps } from './objects';

/**
 * One import per uploaded file. Pressing Import twice — a double click, or
 * a reload while a large file is written (10,000 rows take seconds on the
 * embedded store) — would run two commits side by side; both plan before
 * either writes, so rows matched by address rather than by external id were
 * created twice. The request that inserts the upload's claim imports it;
 * another one finds it claimed and shows the running import instead.
 */

type ObjectId = mongoose.Types.ObjectId;

/**
 * A claim older than this belongs to a commit that never finished (the
 * admin was restarted mid-import): the upload can be imported again. A
 * re-run is safe: it matches what the first run wrote by address, name or
 * external id and updates it.
 */
export const ABANDONED_IMPORT_MS = 10 * 60 * 1000;

/** The claim of an import under way, or null; a claim past ABANDONED_IMPORT_MS counts as none. */
async function liveClaim(deps: Pick<ObjectServiceDeps, 'store'>, uploadId: ObjectId, now: Date): Promise<{ createdAt: Date } | null> {
  const held = await deps.store.models.CsvImportClaim.findById(uploadId).lean();
  return held && now.getTime() - held.createdAt.getTime() < ABANDONED_IMPORT_MS ? held : null;
}

/** Since when a request is importing the upload, or null when none is (the console shows the preview or the result). */
export async function importRunningSince(deps: Pick<ObjectServiceDeps, 'store'>, uploadId: ObjectId, now: Date): Promise<Date | null> {
  return (await liveClaim(deps, uploadId, now))?.createdAt ?? null;
}

/** Insert the upload's claim; an abandoned one is taken over. False when another request holds it. */
async function claim(deps: ObjectServiceDeps, uploadId: ObjectId, now: Date): Promise<boolean> {
  const { CsvImportClaim } = deps.store.models;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await CsvImportClaim.create({ _id: uploadId, createdAt: now });
      return true;
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
    }
    if (await liveClaim(deps, uploadId, now)) return false;
    // Abandoned (or just released): clear that claim and try once more; the unique _id still picks one winner.
    await CsvImportClaim.deleteOne({ _id: uploadId, createdAt: { $lt: new Date(now.getTime() - ABANDONED_IMPORT_MS) } });
  }
  return false;
}

/**
 * Import the upload unless another request has (or is doing it). Resolves
 * once this request's import is written, or at once when another one holds
 * it; a failed import gives the upload back, so Import can be pressed again.
 */
export async function commitUploadOnce(deps: ObjectServiceDeps, uploadId: ObjectId, actor: Actor, now: Date): Promise<{ imported: false } | { imported: true; result: ImportResult }> {
  const { CsvImport, CsvImportClaim } = deps.store.models;
  if (!(await claim(deps, uploadId, now))) return { imported: false };
  const release = () => CsvImportClaim.deleteOne({ _id: uploadId, createdAt: now });
  // Read after claiming: an import that finished meanwhile marked the upload before releasing its claim.
  const upload = await CsvImport.findById(uploadId).lean();
  if (!upload || upload.status === 'committed') {
    await release();
    return { imported: false };
  }
  try {
    const result = await commitImport(deps, upload.csv, { defaultType: upload.defaultType || undefined }, actor);
    await CsvImport.updateOne(
      { _id: uploadId },
      {
        $set: {
          status: 'committed', committedAt: new Date(), csv: '-',
          result: { total: result.total, creates: result.creates, updates: result.updates, invalid: result.invalid },
          jobIds: result.jobIds.map((id) => new mongoose.Types.ObjectId(id)),
        },
      },
    );
    return { imported: true, result };
  } finally {
    // Marked committed first (see above); after a failure the upload is free for another press.
    await release();
  }
}

/** Discard an upload nobody is importing; false when an import holds it (or has written it). */
export async function discardUpload(deps: Pick<ObjectServiceDeps, 'store'>, uploadId: ObjectId, now: Date): Promise<boolean> {
  if (await liveClaim(deps, uploadId, now)) return false;
  const removed = await deps.store.models.CsvImport.deleteOne({ _id: uploadId, status: { $ne: 'committed' } });
  await deps.store.models.CsvImportClaim.deleteOne({ _id: uploadId });
  return removed.deletedCount === 1;
}
