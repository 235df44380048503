import { strict as assert } from 'node:assert';
import { Readable } from 'node:stream';
import mongoose from 'mongoose';
import { createLogger } from '../../gateway/core/log';
import { AppError } from '../../gateway/core/errors';
import { ingest } from '../../gateway/mail/ingest';
import { INLINE_RAW_MAX, MAX_ADDRESSES_PER_FIELD } from '../../gateway/mail/parse';
import { openStore } from '../../gateway/store';
import { freePort, startEmbeddedStore } from '../../gateway/store/embedded-ferretdb';
import { openTestStore, storedAttachment, storedRaw } from '../support/store';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const log = createLogger({ level: 'silent' });

function message(opts: { id?: string; subject?: string; body?: string; extraHeaders?: string } = {}): string {
  return [
    'From: Alice Customer <alice@customer.test>',
    'To: bob@acme.test',
    'Cc: Carol <carol@partner.test>',
    `Subject: ${opts.subject ?? 'Quarterly contract'}`,
    'Date: Tue, 03 Nov 2026 10:00:00 +0000',
    `Message-ID: <${opts.id ?? 'm1@customer.test'}>`,
    opts.extraHeaders ?? '',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    opts.body ?? 'Hello Bob,\r\nplease find the contract attached.',
    '--b1',
    'Content-Type: application/pdf; name="contract.pdf"',
    'Content-Disposition: attachment; filename="contract.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.from('%PDF-1.4 pretend').toString('base64'),
    '--b1--',
    '',
  ].filter((line, i) => !(line === '' && i === 6)).join('\r\n');
}

describe('ingest pipeline', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  const ownerId = new mongoose.Types.ObjectId();
  const accountId = new mongoose.Types.ObjectId();
  const base = () => ({ mailboxKey: accountId.toString(), accountId, ownerId });

  before(async () => {
    store = await openTestStore('ingest');
  });
  after(async () => store.drop());

  it('stores the raw bytes, the parsed fields and the attachment, and acknowledges', async () => {
    const raw = message();
    const result = await ingest({ store, log }, { ...base(), raw: Readable.from([Buffer.from(raw)]), source: { kind: 'forward', queueId: 'Q1', remoteIp: '127.0.0.1' } });
    assert.equal(result.outcome, 'stored');
    const doc = await store.models.Message.findById(result.id).lean();
    assert.ok(doc);
    assert.equal(doc.subject, 'Quarterly contract');
    assert.equal(doc.from?.address, 'alice@customer.test');
    assert.equal(doc.from?.name, 'Alice Customer');
    assert.deepEqual(doc.addresses.sort(), ['alice@customer.test', 'bob@acme.test', 'carol@partner.test']);
    assert.equal(doc.messageId, 'm1@customer.test');
    assert.match(doc.text, /contract attached/);
    assert.equal(doc.attachments.length, 1);
    assert.equal(doc.attachments[0].filename, 'contract.pdf');
    assert.equal(doc.attachments[0].blobId, null, 'no second copy of the attachment');
    assert.equal((await storedAttachment(store, doc._id)).toString(), '%PDF-1.4 pretend', 'read back from the raw message');
    assert.equal((await storedRaw(store, doc._id)).toString(), raw, 'raw bytes kept exactly');
    assert.ok(doc.headers.some((h) => h.name === 'Subject' && h.value === 'Quarterly contract'));
    assert.equal(doc.sources[0].kind, 'forward');
    assert.equal(doc.sources[0].queueId, 'Q1');
  });

  it('keeps a small message\'s raw bytes in its document and streams a larger one into GridFS, byte-exact both ways', async () => {
    const small = message({ id: 'small@x' });
    // Several stream chunks, the threshold falling inside one of them: the bytes read before GridFS starts must not be lost.
    const big = `${message({ id: 'big@x' })}${'0123456789abcdef'.repeat(6000)}\r\n`;
    const chunks = (text: string) => Readable.from(Array.from({ length: Math.ceil(text.length / 7000) }, (_, i) => Buffer.from(text.slice(i * 7000, (i + 1) * 7000))));
    const a = await ingest({ store, log }, { ...base(), raw: chunks(small), source: { kind: 'forward' } });
    const b = await ingest({ store, log }, { ...base(), raw: chunks(big), source: { kind: 'forward' } });
    const docA = await store.models.Message.findById(a.id).lean();
    const docB = await store.models.Message.findById(b.id).lean();
    assert.equal(docA!.rawBlobId, null, 'small: no GridFS file');
    assert.ok(docB!.rawBlobId, 'large: a GridFS file');
    assert.ok(big.length > INLINE_RAW_MAX && small.length < INLINE_RAW_MAX);
    assert.equal((await storedRaw(store, a.id)).toString(), small);
    assert.equal((await storedRaw(store, b.id)).toString(), big);
    assert.equal(docB!.size, big.length);
    assert.equal((docA as Record<string, unknown>).rawInline, undefined, 'the raw bytes are not loaded with the document unless asked for');
  });

  it('keeps at most MAX_ADDRESSES_PER_FIELD addresses of a header in the document, and all of them in the raw message', async () => {
    const list = Array.from({ length: 1500 }, (_, i) => `r${i}@customer.test`).join(', ');
    const raw = message({ id: 'many-rcpts@x', extraHeaders: `Bcc: ${list}` });
    const result = await ingest({ store, log }, { ...base(), raw: Buffer.from(raw), source: { kind: 'forward' } });
    const doc = await store.models.Message.findById(result.id).lean();
    assert.equal(doc!.bcc.length, MAX_ADDRESSES_PER_FIELD);
    assert.equal(doc!.bcc[0].address, 'r0@customer.test');
    assert.ok((await storedRaw(store, result.id)).toString().includes('r1499@customer.test'));
  });

  it('stores the same mail arriving twice (forwarded, then by IMAP) once, with both sources', async () => {
    const first = await ingest({ store, log }, { ...base(), raw: Buffer.from(message({ id: 'dup@x' })), source: { kind: 'forward' } });
    // A forwarder adds trace headers; the content hash ignores them.
    const forwarded = `Received: from mx.google.com\r\nX-Forwarded-To: somewhere\r\n${message({ id: 'dup@x' })}`;
    const second = await ingest({ store, log }, { ...base(), raw: Buffer.from(forwarded), source: { kind: 'imap', folder: 'INBOX', uidValidity: '7', uid: 42 } });
    assert.equal(second.outcome, 'duplicate');
    assert.equal(String(second.id), String(first.id));
    const docs = await store.models.Message.find({ messageId: 'dup@x' }).lean();
    assert.equal(docs.length, 1);
    assert.deepEqual(docs[0].sources.map((s) => s.kind), ['forward', 'imap']);
    // Every GridFS raw file belongs to a stored message (small ones keep their bytes in the document).
    const rawFiles = await store.conn.db!.collection('raw.files').countDocuments({ 'metadata.kind': 'raw' });
    const withRawFile = await store.models.Message.countDocuments({ rawBlobId: { $ne: null } });
    assert.equal(rawFiles, withRawFile, 'the duplicate left no orphan blob');
    assert.equal((await storedRaw(store, first.id)).toString(), message({ id: 'dup@x' }), 'the first copy\'s bytes are kept');
  });

  it('stores a mail whose Date cannot be read without a date, and once however often it arrives', async () => {
    // mailparser turns an unreadable Date into the time of parsing: the page showed that as the sent date,
    // and each delivery hashed to a new de-duplication key (a retried SMTP delivery was stored twice).
    const raw = message({ id: 'bad-date@x' }).replace('Date: Tue, 03 Nov 2026 10:00:00 +0000', 'Date: Tomorrow at noon');
    const first = await ingest({ store, log }, { ...base(), raw: Buffer.from(raw), source: { kind: 'forward' } });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const again = await ingest({ store, log }, { ...base(), raw: Buffer.from(raw), source: { kind: 'imap', folder: 'INBOX', uidValidity: '7', uid: 43 } });
    assert.equal(first.outcome, 'stored');
    assert.equal(first.parsed.date, null);
    assert.equal((await store.models.Message.findById(first.id).lean())!.date, null);
    assert.equal(again.outcome, 'duplicate');
    assert.equal(await store.models.Message.countDocuments({ messageId: 'bad-date@x' }), 1);
    // A readable Date is kept as it was.
    const good = await ingest({ store, log }, { ...base(), raw: Buffer.from(message({ id: 'good-date@x' })), source: { kind: 'forward' } });
    assert.equal(good.parsed.date?.toISOString(), '2026-11-03T10:00:00.000Z');
  });

  it('does not swallow a different message that reuses a Message-ID', async () => {
    const a = await ingest({ store, log }, { ...base(), raw: Buffer.from(message({ id: 'reused@x', body: 'first text' })), source: { kind: 'forward' } });
    const b = await ingest({ store, log }, { ...base(), raw: Buffer.from(message({ id: 'reused@x', body: 'other text' })), source: { kind: 'forward' } });
    assert.equal(a.outcome, 'stored');
    assert.equal(b.outcome, 'stored');
    assert.notEqual(String(a.id), String(b.id));
  });

  it('keeps unparseable or odd input as raw with what could be read', async () => {
    const nul = 'From: x@y.test\r\nSubject: has \u0000 nul\r\n\r\nbody\u0000with nul\r\n';
    const result = await ingest({ store, log }, { ...base(), raw: Buffer.from(nul), source: { kind: 'imap' } });
    assert.equal(result.outcome, 'stored');
    const doc = await store.models.Message.findById(result.id).lean();
    assert.doesNotMatch(doc!.subject + doc!.text, /\u0000/);
    assert.equal((await storedRaw(store, doc!._id)).toString(), nul);
  });

  it('keeps two different messages that have nothing comparable (no Message-ID, headers or text) apart', async () => {
    const empty = await ingest({ store, log }, { ...base(), raw: Buffer.alloc(0), source: { kind: 'forward' } });
    const nuls = await ingest({ store, log }, { ...base(), raw: Buffer.from('\u0000\u0000\u0000\r\n'), source: { kind: 'forward' } });
    assert.equal(empty.outcome, 'stored');
    assert.equal(nuls.outcome, 'stored', 'not swallowed as a duplicate of the empty message');
    const again = await ingest({ store, log }, { ...base(), raw: Buffer.alloc(0), source: { kind: 'forward' } });
    assert.equal(again.outcome, 'duplicate', 'the same bytes again are still one message');
  });

  it('refuses a message over the size limit with MESSAGE_TOO_LARGE and stores nothing', async () => {
    const before = await store.conn.db!.collection('raw.files').countDocuments();
    const big = Buffer.alloc(300 * 1024, 'a');
    await assert.rejects(
      ingest({ store, log }, { ...base(), raw: Readable.from([Buffer.from('Subject: big\r\n\r\n'), big]), source: { kind: 'forward' }, maxBytes: 100 * 1024 }),
      (err: AppError) => err.code === 'MESSAGE_TOO_LARGE' && err.smtpCode === 552,
    );
    assert.equal(await store.conn.db!.collection('raw.files').countDocuments(), before);
  });

  it('never re-imports a message its owner deleted (tombstone)', async () => {
    const stored = await ingest({ store, log }, { ...base(), raw: Buffer.from(message({ id: 'gone@x' })), source: { kind: 'imap' } });
    await store.models.Tombstone.create({ mailboxKey: accountId.toString(), dedupeKey: stored.dedupeKey, deletedAt: new Date() });
    await store.models.Message.deleteOne({ _id: stored.id });
    const again = await ingest({ store, log }, { ...base(), raw: Buffer.from(message({ id: 'gone@x' })), source: { kind: 'imap' } });
    assert.equal(again.outcome, 'tombstoned');
    assert.equal(await store.models.Message.countDocuments({ messageId: 'gone@x' }), 0);
  });

  it('flags bulk mail and lets the caller classify (e.g. quarantine)', async () => {
    const result = await ingest({ store, log }, {
      ...base(),
      raw: Buffer.from(message({ id: 'news@x', extraHeaders: 'List-Id: <news.customer.test>' })),
      source: { kind: 'forward' },
      classify: () => ({ status: 'quarantine', quarantineReason: 'test' }),
    });
    const doc = await store.models.Message.findById(result.id).lean();
    assert.equal(doc!.bulk, true);
    assert.equal(doc!.status, 'quarantine');
  });

  it('answers STORE_UNAVAILABLE (451) when the store is down, and works again once it is back', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-down-'));
    const port = await freePort();
    let embedded = await startEmbeddedStore({ dataDir: dir, port });
    const own = await openStore({ uri: embedded.uri, dbName: 'down', log, maxWaitMs: 5000 });
    try {
      await embedded.stop();
      await assert.rejects(
        ingest({ store: own, log }, { ...base(), mailboxKey: 'down', raw: Buffer.from(message({ id: 'down@x' })), source: { kind: 'forward' } }),
        (err: AppError) => err.code === 'STORE_UNAVAILABLE' && err.smtpCode === 451 && err.enhancedCode === '4.3.0',
      );
      embedded = await startEmbeddedStore({ dataDir: dir, port });
      const result = await ingest({ store: own, log }, { ...base(), mailboxKey: 'down', raw: Buffer.from(message({ id: 'down@x' })), source: { kind: 'forward' } });
      assert.equal(result.outcome, 'stored');
      assert.equal(await own.models.Message.countDocuments({ messageId: 'down@x' }), 1);
      assert.equal(await own.conn.db!.collection('raw.files').countDocuments(), 0, 'no GridFS file: the small raw message is in its document, the attachment read back from it');
    } finally {
      await own.close();
      await embedded.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
