import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import mongoose, { type Connection } from 'mongoose';

type ObjectId = mongoose.Types.ObjectId;

/**
 * The document a blob belongs to, kept in the file's metadata. A blob is
 * written before its document (the document carries the blob's id), so a
 * crash or a store outage between the two leaves a blob nothing points at;
 * the owner lets the orphan sweep (blob-sweep.ts) prove that with an `_id`
 * lookup instead of searching every message for the blob's id.
 */
export interface BlobOwner {
  collection: 'messages' | 'outbox';
  id: ObjectId;
}

/**
 * Raw message bytes and attachment contents live in GridFS (bucket `raw`):
 * 255 KB chunks, so a 50 MB message never sits in one document and never in
 * memory whole. Checked to work on FerretDB 1.24 as well as MongoDB 7.
 */
export class BlobStore {
  private readonly bucket: mongoose.mongo.GridFSBucket;

  constructor(conn: Connection, bucketName = 'raw') {
    if (!conn.db) throw new Error('BlobStore needs an open connection');
    this.bucket = new mongoose.mongo.GridFSBucket(conn.db, {
      bucketName,
      writeConcern: { w: 'majority', journal: true },
    });
  }

  /** Stream bytes in; resolves with the file id once every chunk is acknowledged. */
  async put(source: Readable | Buffer, metadata: Record<string, unknown> & { owner?: BlobOwner } = {}, filename = 'message.eml'): Promise<ObjectId> {
    const upload = this.bucket.openUploadStream(filename, { metadata });
    const input = Buffer.isBuffer(source) ? Readable.from([source]) : source;
    try {
      await pipeline(input, upload);
    } catch (err) {
      // Remove the chunks written so far so a failed write leaves nothing half-stored.
      await upload.abort().catch(() => undefined);
      throw err;
    }
    return upload.id as ObjectId;
  }

  open(id: ObjectId): Readable {
    return this.bucket.openDownloadStream(id);
  }

  async get(id: ObjectId): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.open(id)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /**
   * Files uploaded before `before` that name an owner, in id order after
   * `afterId`: one page of the orphan sweep's candidates.
   */
  async ownedBefore(before: Date, afterId: ObjectId | null, limit: number): Promise<Array<{ id: ObjectId; owner: BlobOwner; length: number }>> {
    const filter: Record<string, unknown> = { uploadDate: { $lt: before }, 'metadata.owner.id': { $exists: true } };
    if (afterId) filter._id = { $gt: afterId };
    const files = await this.bucket.find(filter, { sort: { _id: 1 }, limit }).toArray();
    return files.map((file) => ({ id: file._id as ObjectId, owner: file.metadata!.owner as BlobOwner, length: file.length }));
  }

  /** Remove a file; a missing file is not an error (cleanup is idempotent). */
  async delete(id: ObjectId): Promise<void> {
    try {
      await this.bucket.delete(id);
    } catch (err) {
      if (!/not found|FileNotFound/i.test((err as Error).message)) throw err;
    }
  }
}
