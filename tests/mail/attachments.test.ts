import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import mongoose from 'mongoose';
import { attachmentStream, rawStream } from '../../gateway/accounts/mailbox';
import { createLogger } from '../../gateway/core/log';
import { allAttachmentsFromRaw, attachmentFromRaw } from '../../gateway/mail/attachments';
import { ingest } from '../../gateway/mail/ingest';
import { badInputCorpus } from '../fixtures/bad-input';
import { openTestStore, storedAttachment } from '../support/store';

const log = createLogger({ level: 'silent' });

const pdf = crypto.randomBytes(600_000);
const png = crypto.randomBytes(3_000);
const csv = 'name;amount\r\nAcme;1.000,00 €\r\nÜberseeträger;12,50 €\r\n';
const forwarded = 'From: carol@partner.test\r\nSubject: the inner mail\r\n\r\nInner body.\r\n';

/**
 * Every kind of part mailparser hands out as an attachment: an inline image
 * of a multipart/related HTML body, a base64 PDF, a quoted-printable CSV with
 * a UTF-8 file name, and a forwarded message/rfc822.
 */
function richMessage(id: string): Buffer {
  const b64 = (bytes: Buffer) => bytes.toString('base64').replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    [
      'From: Alice <alice@customer.test>',
      'To: bob@acme.test',
      `Subject: everything attached ${id}`,
      `Message-ID: <${id}@customer.test>`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="outer"',
      '',
      '--outer',
      'Content-Type: multipart/related; boundary="rel"',
      '',
      '--rel',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<p>Logo: <img src="cid:logo@x"></p>',
      '--rel',
      'Content-Type: image/png',
      'Content-ID: <logo@x>',
      'Content-Disposition: inline; filename="logo.png"',
      'Content-Transfer-Encoding: base64',
      '',
      b64(png),
      '--rel--',
      '--outer',
      'Content-Type: application/pdf; name="quote.pdf"',
      'Content-Disposition: attachment; filename="quote.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      b64(pdf),
      '--outer',
      'Content-Type: text/csv; charset=utf-8',
      "Content-Disposition: attachment; filename*=utf-8''Zahlungs%C3%BCbersicht.csv",
      'Content-Transfer-Encoding: quoted-printable',
      '',
      csv.replace(/€/g, '=E2=82=AC').replace(/Ü/g, '=C3=9C').replace(/ä/g, '=C3=A4').replace(/\r\n/g, '=0D=0A=\r\n'),
      '--outer',
      'Content-Type: message/rfc822',
      'Content-Disposition: attachment; filename="inner.eml"',
      '',
      forwarded,
      '--outer--',
      '',
    ].join('\r\n'),
  );
}

describe('attachments read back from the stored raw message', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  const accountId = new mongoose.Types.ObjectId();
  const base = () => ({ mailboxKey: accountId.toString(), accountId, ownerId: new mongoose.Types.ObjectId(), source: { kind: 'forward' as const } });

  before(async () => {
    store = await openTestStore('attachments');
  });
  after(async () => store.drop());

  it('gives back each attachment\'s exact bytes by its position in the stored description, and nothing past the last', async () => {
    const result = await ingest({ store, log }, { ...base(), raw: richMessage('rich') });
    const doc = (await store.models.Message.findById(result.id).lean())!;
    assert.deepEqual(
      doc.attachments.map((a) => [a.filename, a.contentType, a.disposition, a.blobId]),
      [
        ['logo.png', 'image/png', 'inline', null],
        ['quote.pdf', 'application/pdf', 'attachment', null],
        ['Zahlungsübersicht.csv', 'text/csv', 'attachment', null],
        ['inner.eml', 'message/rfc822', 'attachment', null],
      ],
    );
    const expected = [png, pdf, Buffer.from(csv), Buffer.from(forwarded)];
    for (const [index, bytes] of expected.entries()) {
      const got = await storedAttachment(store, result.id, index);
      assert.ok(got.equals(bytes), `attachment ${index} (${doc.attachments[index].filename}): ${got.length} bytes, expected ${bytes.length}`);
      assert.equal(doc.attachments[index].size, bytes.length, 'the stored size is the decoded size');
    }
    const message = (await store.models.Message.findById(result.id, { attachments: 1, rawBlobId: 1 }).select('+rawInline').lean())!;
    assert.equal(await attachmentStream(store, message, 4), null);
    assert.equal(await attachmentFromRaw(Readable.from([richMessage('rich')]), 7), null, 'a position the message does not have');
    assert.deepEqual((await allAttachmentsFromRaw(Readable.from([richMessage('rich')]))).map((b) => b.length), expected.map((b) => b.length));
  });

  it('reads back, for each of the 115 hostile messages of the bad-input corpus, the attachments ingest described (same count, same sizes)', async function () {
    this.timeout(120_000);
    const mismatched: string[] = [];
    let checked = 0;
    for (const sample of badInputCorpus()) {
      const result = await ingest({ store, log }, { ...base(), raw: sample.raw }).catch(() => null);
      if (!result?.id) continue;
      const message = (await store.models.Message.findById(result.id, { attachments: 1, rawBlobId: 1 }).select('+rawInline').lean())!;
      const contents = await allAttachmentsFromRaw(rawStream(store, message)).catch((err: Error) => err);
      const described = message.attachments.map((a) => a.size);
      const got = contents instanceof Error ? contents.message : contents.map((c) => c.length);
      if (JSON.stringify(got) !== JSON.stringify(described)) mismatched.push(`${sample.name}: described ${JSON.stringify(described)}, read back ${JSON.stringify(got)}`);
      checked += described.length;
    }
    assert.deepEqual(mismatched, []);
    assert.ok(checked > 20, `${checked} attachments checked`);
  });

  it('stops reading a large message from the store once the attachment is read', async () => {
    // Past the parser's and the GridFS stream's read-ahead (about 5 MB together), so stopping early shows.
    const big = crypto.randomBytes(12 * 1024 * 1024);
    const raw = Buffer.from(richMessage('early').toString('latin1').replace('--outer--', `--outer\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="big.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n${big.toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n--outer--`), 'latin1');
    const result = await ingest({ store, log }, { ...base(), raw });
    const doc = (await store.models.Message.findById(result.id).lean())!;
    assert.equal(doc.attachments[4]?.filename, 'big.bin');
    let consumed = 0;
    const counted = store.blobs.open(doc.rawBlobId!).pipe(
      new Transform({
        transform(chunk: Buffer, _encoding, done) {
          consumed += chunk.length;
          done(null, chunk);
        },
      }),
    );
    const logo = await attachmentFromRaw(counted, 0);
    assert.ok((await buffer(logo!)).equals(png));
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(consumed < doc.size / 2, `read ${consumed} of ${doc.size} bytes for the first attachment`);
    assert.ok((await storedAttachment(store, result.id, 4)).equals(big), 'the last one, after the whole message');
  });

  it('fails with the store\'s error when the raw bytes cannot be read, and reads a message stored with its own attachment copies', async () => {
    const missing = new mongoose.Types.ObjectId();
    await assert.rejects(attachmentStream(store, { rawBlobId: missing, attachments: [{ blobId: null }] }, 0), /FileNotFound|not found/i);

    // Stored by an earlier version: each attachment had a GridFS copy, which is still what is served.
    const copy = await store.blobs.put(Buffer.from('%PDF-legacy copy'), { kind: 'attachment' });
    const legacy = await attachmentStream(store, { rawInline: Buffer.from('Subject: x\r\n\r\nno parts\r\n'), attachments: [{ blobId: copy }] }, 0);
    assert.equal((await buffer(legacy!)).toString(), '%PDF-legacy copy');
  });
});
