import crypto from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { attachmentStream, rawStream } from '../../gateway/accounts/mailbox';
import { openStore, type Store } from '../../gateway/store';
import { createLogger } from '../../gateway/core/log';

/** The wire server of this test run (FerretDB started by tests/setup.ts, or MONGODB_URI). */
export function testMongoUri(): string {
  const uri = process.env.POSTROOM_TEST_MONGODB_URI;
  if (!uri) throw new Error('POSTROOM_TEST_MONGODB_URI is unset: run tests through `npm test` (tests/setup.ts starts the store)');
  return uri;
}

/** A fresh database for one test file, with indexes built. */
export async function openTestStore(label: string): Promise<Store & { dbName: string; drop(): Promise<void> }> {
  const dbName = `t_${label.replace(/[^a-z0-9]/gi, '_').slice(0, 30)}_${crypto.randomBytes(3).toString('hex')}`;
  const store = await openStore({ uri: testMongoUri(), dbName, log: createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), maxWaitMs: 10000 });
  return {
    ...store,
    dbName,
    drop: async () => {
      await store.conn.dropDatabase().catch(() => undefined);
      await store.close();
    },
  };
}

/** The raw bytes stored for a message, from its document (small messages) or GridFS, as the console serves them. */
export async function storedRaw(store: Store, messageId: unknown): Promise<Buffer> {
  const message = await store.models.Message.findById(messageId, { rawBlobId: 1, rawInline: 1 }).select('+rawInline').lean();
  if (!message) throw new Error(`no message ${String(messageId)}`);
  const chunks: Buffer[] = [];
  for await (const chunk of rawStream(store, message)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The bytes of a stored message's attachment, as the console serves them (read back from the raw message). */
export async function storedAttachment(store: Store, messageId: unknown, index = 0): Promise<Buffer> {
  const message = await store.models.Message.findById(messageId, { attachments: 1, rawBlobId: 1 }).select('+rawInline').lean();
  if (!message) throw new Error(`no message ${String(messageId)}`);
  const stream = await attachmentStream(store, message, index);
  if (!stream) throw new Error(`message ${String(messageId)} has no attachment ${index}`);
  return buffer(stream);
}
