import mongoose from 'mongoose';
import type { Actor } from '../accounts/audit';
import { commitImport, type ImportResult } from './csv-import';
import type { ObjectServiceDeps } from './objects';

/**
 * One import per uploaded file. Pressing Import twice — a double click, or
 * a reload while a large file is written (10,000 rows take seconds on the
 * embedded store) — would run two commits side by side; both plan before
 * either writes, so rows matched by address rather than by external id were
 * created twice. The request that claims the upload imports it; another
 * one finds it claimed and shows the running import instead.
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

/** Uploads no request is importing: never imported, or claimed by one that was abandoned. */
export function idleUploadFilter(now: Date): Record<string, unknown> {
  return { $or: [{ status: 'uploaded' }, { status: 'committing', committingAt: { $lt: new Date(now.getTime() - ABANDONED_IMPORT_MS) } }] };
}

/**
 * Import the upload unless another request has (or is doing it). Resolves
 * once this request's import is written, or at once when another one holds
 * it; a failed import gives the upload back, so Import can be pressed again.
 */
export async function commitUploadOnce(deps: ObjectServiceDeps, uploadId: ObjectId, actor: Actor, now: Date): Promise<{ imported: false } | { imported: true; result: ImportResult }> {
  const { CsvImport } = deps.store.models;
  const claimed = await CsvImport.findOneAndUpdate(
    { _id: uploadId, ...idleUploadFilter(now) },
    { $set: { status: 'committing', committingAt: now } },
    { new: true },
  ).lean();
  if (!claimed) return { imported: false };
  let result;
  try {
    result = await commitImport(deps, claimed.csv, { defaultType: claimed.defaultType || undefined }, actor);
  } catch (err) {
    await CsvImport.updateOne({ _id: uploadId, status: 'committing', committingAt: now }, { $set: { status: 'uploaded', committingAt: null } });
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
  return { imported: true, result };
}
