import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { createLogger } from '../../gateway/core/log';
import { ingest } from '../../gateway/mail/ingest';
import { INLINE_RAW_MAX, streamAndParse } from '../../gateway/mail/parse';
import { DEFAULT_ORPHAN_AGE_MS, startBlobSweeper, sweepOrphanBlobs } from '../../gateway/store';
import { openTestStore, storedAttachment, storedRaw } from '../support/store';

const log = createLogger({ level: 'silent' });

/** A message past INLINE_RAW_MAX (raw bytes in GridFS) with one attachment (read back from them). */
function largeMessage(id: string): Buffer {
  const filler = 'All work and no play makes Jack a dull boy. '.repeat(Math.ceil(INLINE_RAW_MAX / 44) + 10);
  return Buffer.from(
    [
      'From: Alice <alice@customer.test>',
      'To: bob@acme.test',
      `Subject: large ${id}`,
      `Message-ID: <${id}@customer.test>`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      '',
      filler.replace(/(.{76})/g, '$1\r\n'),
      '--b1',
      'Content-Type: application/pdf; name="quote.pdf"',
      'Content-Disposition: attachment; filename="quote.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from(`%PDF-1.4 quote ${id}`).toString('base64'),
      '--b1--',
      '',
    ].join('\r\n'),
  );
}

describe('orphan blob sweep', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  const accountId = new mongoose.Types.ObjectId();
  const base = () => ({ mailboxKey: accountId.toString(), accountId, ownerId: new mongoose.Types.ObjectId(), source: { kind: 'forward' as const } });
  const files = () => store.conn.db!.collection('raw.files');
  const later = () => new Date(Date.now() + DEFAULT_ORPHAN_AGE_MS + 60_000);

  before(async () => {
    store = await openTestStore('blob_sweep');
  });
  after(async () => store.drop());
  beforeEach(async () => {
    await store.models.Message.deleteMany({});
    await store.conn.db!.collection('raw.files').deleteMany({});
    await store.conn.db!.collection('raw.chunks').deleteMany({});
  });

  it('every blob an ingest writes names its message as owner', async () => {
    const result = await ingest({ store, log }, { ...base(), raw: largeMessage('owned') });
    assert.equal(result.outcome, 'stored');
    const doc = await store.models.Message.findById(result.id).lean();
    assert.ok(doc?.rawBlobId, 'the raw bytes are a GridFS file');
    assert.equal(doc.attachments.length, 1);
    const owners = await files().find({}, { projection: { 'metadata.owner': 1, 'metadata.kind': 1 } }).toArray();
    assert.deepEqual(owners.map((f) => [f.metadata.kind, f.metadata.owner.collection, String(f.metadata.owner.id)]), [['raw', 'messages', String(result.id)]], 'one file: the attachment is not copied');
  });

  it('removes the blobs of an ingest cut off before its document was written and of a half-finished delete, and nothing else', async () => {
    const kept = await ingest({ store, log }, { ...base(), raw: largeMessage('kept') });
    // A gateway killed between GridFS and the message insert: the blobs exist, the message never will.
    const cutOff = await streamAndParse(store.blobs, largeMessage('cut-off'), { owner: { collection: 'messages', id: new mongoose.Types.ObjectId() } });
    assert.ok(cutOff.rawBlobId);
    // A delete that crashed after removing the document, before its blobs.
    const deleted = await ingest({ store, log }, { ...base(), raw: largeMessage('deleted') });
    await store.models.Message.deleteOne({ _id: deleted.id });
    // A file written without an owner (older versions): nothing proves it orphaned.
    const legacy = await store.blobs.put(Buffer.from('legacy bytes'), { kind: 'raw' });
    const before = await files().countDocuments();
    assert.equal(before, 4, 'the raw bytes of three messages, and the legacy file');

    // Too young to judge: an ingest may still be writing its document.
    assert.deepEqual(await sweepOrphanBlobs(store), { examined: 0, removed: 0, bytesRemoved: 0 });
    assert.equal(await files().countDocuments(), before);

    const swept = await sweepOrphanBlobs(store, { now: later(), pageSize: 2 });
    assert.equal(swept.examined, 3, 'every owned file, over two pages');
    assert.equal(swept.removed, 2, 'the cut-off ingest\'s and the deleted message\'s raw bytes');
    assert.ok(swept.bytesRemoved > 2 * INLINE_RAW_MAX, `bytes removed reported (${swept.bytesRemoved})`);
    const left = await files().find({}, { projection: { _id: 1 } }).toArray();
    const keptDoc = await store.models.Message.findById(kept.id).lean();
    assert.deepEqual(left.map((f) => String(f._id)).sort(), [String(keptDoc!.rawBlobId), String(legacy)].sort());
    assert.equal(await store.conn.db!.collection('raw.chunks').countDocuments({ files_id: cutOff.rawBlobId }), 0, 'the chunks went with the file');
    assert.equal((await storedRaw(store, kept.id)).toString(), largeMessage('kept').toString(), 'the stored message is whole');
    assert.equal((await storedAttachment(store, kept.id)).toString(), '%PDF-1.4 quote kept');

    assert.equal((await sweepOrphanBlobs(store, { now: later() })).removed, 0, 'a second pass finds nothing more');
  });

  it('runs on its timer (as the admin process starts it) and logs what it removed', async () => {
    const orphan = await store.blobs.put(Buffer.from('left by a crash'), { kind: 'raw', owner: { collection: 'messages', id: new mongoose.Types.ObjectId() } });
    const lines: Array<Record<string, unknown>> = [];
    const sweepLog = createLogger({ level: 'info', destination: { write: (line: string) => lines.push(JSON.parse(line)) } as never, pretty: false });
    const sweeper = startBlobSweeper(store, sweepLog, { intervalMs: 50, olderThanMs: 0 });
    try {
      for (let i = 0; i < 100 && (await files().countDocuments({ _id: orphan })) > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(await files().countDocuments({ _id: orphan }), 0, 'removed by a timed pass');
    } finally {
      await sweeper.stop();
    }
    const line = lines.find((l) => l.component === 'blob-sweep' && l.removed === 1);
    assert.ok(line, `a log line with what was removed: ${JSON.stringify(lines)}`);
    assert.equal(line.bytesRemoved, 'left by a crash'.length);
  });

  it('keeps blobs whose owner is an outbox entry still waiting to be sent', async () => {
    const entryId = new mongoose.Types.ObjectId();
    const waiting = await store.blobs.put(Buffer.from('queued mail'), { kind: 'outbox', owner: { collection: 'outbox', id: entryId } });
    const abandoned = await store.blobs.put(Buffer.from('never queued'), { kind: 'outbox', owner: { collection: 'outbox', id: new mongoose.Types.ObjectId() } });
    await store.conn.collection('outbox').insertOne({ _id: entryId, status: 'queued' });
    try {
      const swept = await sweepOrphanBlobs(store, { now: later() });
      assert.equal(swept.removed, 1);
      assert.equal((await store.blobs.get(waiting)).toString(), 'queued mail');
      await assert.rejects(store.blobs.get(abandoned), /FileNotFound|not found/i);
    } finally {
      await store.conn.collection('outbox').deleteOne({ _id: entryId });
    }
  });
});
