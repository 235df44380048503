import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { simpleParser } from 'mailparser';
import mongoose from 'mongoose';
import type { Store } from '../../gateway/store';
import { openNamedStore } from '../lib/env';

const { MongoClient, GridFSBucket, ObjectId } = mongoose.mongo;

/**
 * Tier (d): the store alone — the same documents Postroom stored, written by
 * a bare driver loop (native MongoDB driver, no mongoose, no parsing): the
 * raw message into GridFS unless Postroom kept it in the document
 * (rawInline, small messages), each attachment Postroom gave a GridFS copy
 * (none since attachments are read back from the raw message), then one
 * insertOne of the message document, with the write concern Postroom uses. 20
 * workers, like the 20 SMTP clients. This is the store's ceiling for
 * Postroom's write pattern.
 */

export interface CeilingItem {
  raw: Buffer;
  attachments: Buffer[];
  /** The stored message document (without _id and blob ids; they are new per insert). */
  document: Record<string, unknown>;
}

/** Read back what the pipeline stored for these messages (documents and attachment bytes), before any timing. */
export async function itemsFromPipeline(store: Store, messages: Array<{ messageId: string; raw: Buffer }>): Promise<CeilingItem[]> {
  // One scan of the collection rather than a query per message: FerretDB answers each of those with a scan.
  const wanted = new Set(messages.map((m) => m.messageId));
  const byMessageId = new Map<string, Record<string, unknown>>();
  for await (const row of store.conn.db!.collection('messages').find({})) {
    if (wanted.has(String(row.messageId))) byMessageId.set(String(row.messageId), row);
  }
  const items: CeilingItem[] = [];
  for (const message of messages) {
    const found = byMessageId.get(message.messageId);
    if (!found) throw new Error(`the pipeline did not store ${message.messageId}`);
    const { _id: _ignored, ...document } = found;
    // Attachment contents decoded from the message itself (mailparser, the parser the pipeline uses, in the
    // same order), for those the pipeline stored a copy of: reading them back from GridFS makes FerretDB
    // scan every chunk once per attachment.
    const copied = (found.attachments as Array<{ blobId?: unknown }> | undefined)?.some((a) => a.blobId);
    const attachments = copied ? (await simpleParser(message.raw)).attachments.map((a) => a.content) : [];
    items.push({ raw: message.raw, attachments, document });
  }
  return items;
}

export interface CeilingResult {
  stored: number;
  wallMs: number;
  rate: number;
  latencies: number[];
}

export async function runStoreCeiling(options: { uri: string; dbName: string; items: CeilingItem[]; workers?: number }): Promise<CeilingResult> {
  // Same collections and indexes as Postroom (declared in the schemas), built before timing.
  const setup: Store = await openNamedStore(options.uri, options.dbName);
  await setup.close();

  const client = new MongoClient(options.uri, { maxPoolSize: 20, writeConcern: { w: 'majority', journal: true } });
  await client.connect();
  try {
    const db = client.db(options.dbName);
    const bucket = new GridFSBucket(db, { bucketName: 'raw', writeConcern: { w: 'majority', journal: true } });
    const messages = db.collection('messages');
    const put = async (bytes: Buffer, kind: string) => {
      const upload = bucket.openUploadStream('message.eml', { metadata: { kind } });
      await pipeline(Readable.from([bytes]), upload);
      return upload.id;
    };
    const latencies: number[] = [];
    let next = 0;
    const started = performance.now();
    const worker = async () => {
      while (next < options.items.length) {
        const item = options.items[next++];
        const t0 = performance.now();
        const rawBlobId = item.document.rawInline ? null : await put(item.raw, 'raw');
        const blobIds: unknown[] = [];
        for (const bytes of item.attachments) blobIds.push(await put(bytes, 'attachment'));
        const attachments = ((item.document.attachments ?? []) as Array<Record<string, unknown>>).map((a, i) => ({ ...a, blobId: blobIds[i] ?? null }));
        await messages.insertOne({ ...item.document, _id: new ObjectId(), rawBlobId, attachments });
        latencies.push(performance.now() - t0);
      }
    };
    await Promise.all(Array.from({ length: options.workers ?? 20 }, worker));
    const wallMs = performance.now() - started;
    return { stored: latencies.length, wallMs, rate: latencies.length / (wallMs / 1000), latencies };
  } finally {
    await client.close();
  }
}
