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

export type UploadState = 'uploaded' | 'committing' | 'committed';

/** What the console shows for an upload: a claim past ABANDONED_IMPORT_MS counts as not started. */
export function uploadState(upload: { status?: string | null; committingAt?: Date | null }, now: Date): UploadState {
  if (upload.status === 'committed') return 'committed';
  if (upload.status === 'committing' && upload.committingAt && now.getTime() - upload.committingAt.getTime() < ABANDONED_IMPORT_MS) return 'committing';
  return 'uploaded';
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
    const held = await CsvImportClaim.findById(uploadId).lean();
    if (held && now.getTime() - held.createdAt.getTime() < ABANDONED_IMPORT_MS) return false;
    // Abandoned (or just released): clear that claim and try once more; the unique _id still picks one winner.
    if (held) await CsvImportClaim.deleteOne({ _id: uploadId, createdAt: held.createdAt });
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
  await CsvImport.updateOne({ _id: uploadId }, { $set: { status: 'committing', committingAt: now } });
  let result;
  try {
    result = await commitImport(deps, upload.csv, { defaultType: upload.defaultType || undefined }, actor);
  } catch (err) {
    await CsvImport.updateOne({ _id: uploadId, status: 'committing' }, { $set: { status: 'uploaded', committingAt: null } });
    await release();
    throw err;
  }
  await CsvImport.updateOne(
    { _id: uploadId },
    {
      $set: {
        status: 'committed', committedAt: new Date(), committingAt: null, csv: '-',
        result: { total: result.total, creates: result.creates, updates: result.updates, invalid: result.invalid },
        jobIds: result.jobIds.map((id) => new mongoose.Types.ObjectId(id)),
      },
    },
  );
  await release();
  return { imported: true, result };
}

/** Discard an upload nobody is importing; false when an import holds it (or has written it). */
export async function discardUpload(deps: Pick<ObjectServiceDeps, 'store'>, uploadId: ObjectId, now: Date): Promise<boolean> {
  const { CsvImport, CsvImportClaim } = deps.store.models;
  const held = await CsvImportClaim.findById(uploadId).lean();
  if (held && now.getTime() - held.createdAt.getTime() < ABANDONED_IMPORT_MS) return false;
  const removed = await CsvImport.deleteOne({ _id: uploadId, status: { $ne: 'committed' } });
  if (held) await CsvImportClaim.deleteOne({ _id: uploadId, createdAt: held.createdAt });
  return removed.deletedCount === 1;
}
