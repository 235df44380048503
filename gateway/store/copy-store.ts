import type { Collection, Document } from 'mongodb';
import type { Logger } from '../core/log';
import { isDuplicateKeyError } from '../core/errors';
import { openStore, type Store } from '.';

const BATCH = 500;

export interface CollectionCopy {
  name: string;
  /** Documents in the source. */
  source: number;
  /** Inserted by this run (documents already there by _id are left as they are). */
  copied: number;
}

/**
 * Copy every collection of `source` (documents, GridFS files and chunks,
 * settings, sealed secrets: all of it) into the store at `targetUri`, e.g.
 * from `npm start`'s embedded store to the MongoDB 7 a business outgrows it
 * into. The target's collections and indexes are created first, as a
 * process starting on it would. Documents are read with one cursor and written
 * unordered; one already in the target by _id is kept, so a copy cut short
 * is finished by running it again. Postroom must be stopped meanwhile: mail
 * stored during the copy could be missed. Progress goes to `progress`.
 */
export async function copyStore(source: Store, targetUri: string, log: Logger, progress: (line: string) => void = () => undefined): Promise<CollectionCopy[]> {
  const target = await openStore({ uri: targetUri, log, maxWaitMs: 20_000 });
  try {
    const from = source.conn.db!;
    const to = target.conn.db!;
    if (from.databaseName === to.databaseName && sameServer(source, target)) throw new Error('the target is the store being copied');
    const names = (await from.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).filter((name) => !name.startsWith('system.')).sort();
    const results: CollectionCopy[] = [];
    for (const name of names) {
      const count = await from.collection(name).countDocuments();
      let copied = 0;
      // One cursor, not pages by _id: a collection may hold ids of several BSON types, which $gt would split.
      let batch: Document[] = [];
      for await (const doc of from.collection(name).find({}, { batchSize: BATCH })) {
        batch.push(doc);
        if (batch.length < BATCH) continue;
        copied += await insertNew(to.collection(name), batch);
        batch = [];
      }
      if (batch.length > 0) copied += await insertNew(to.collection(name), batch);
      results.push({ name, source: count, copied });
      progress(`${name}: ${count} documents, ${copied} copied${count - copied > 0 ? `, ${count - copied} already there` : ''}`);
    }
    return results;
  } finally {
    await target.close();
  }
}

/** Insert what is not there yet; returns how many were inserted. */
async function insertNew(collection: Collection, docs: Document[]): Promise<number> {
  try {
    const result = await collection.insertMany(docs, { ordered: false });
    return result.insertedCount;
  } catch (err) {
    // Unordered: every document was tried; those refused as duplicates are already in the target.
    const writeErrors = (err as { writeErrors?: Array<{ code?: number }> | { code?: number } }).writeErrors;
    const errors = Array.isArray(writeErrors) ? writeErrors : writeErrors ? [writeErrors] : [];
    if (errors.length === 0 || !errors.every((e) => e.code === 11000 || isDuplicateKeyError(e))) throw err;
    return docs.length - errors.length;
  }
}

function sameServer(a: Store, b: Store): boolean {
  const hosts = (store: Store) => JSON.stringify((store.conn.getClient().options.hosts ?? []).map(String).sort());
  return hosts(a) === hosts(b);
}
