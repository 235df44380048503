import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { heldWholeBytes, readOnce, WHOLE_READ_BUDGET, WHOLE_READ_MAX, WHOLE_READ_SLICE, type RawSource } from '../../gateway/mail/read-once';

/** A message source like Haraka's: a fresh stream each call, in line-sized chunks; counts the reads. */
function smtpSource(bytes: Buffer, options: { failAt?: number } = {}) {
  const source = {
    reads: 0,
    open: () => {
      source.reads++;
      const lines: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += 78) lines.push(bytes.subarray(at, at + 78));
      return Readable.from(
        (function* () {
          let sent = 0;
          for (const line of lines) {
            if (options.failAt !== undefined && sent >= options.failAt) throw new Error('connection reset');
            sent += line.length;
            yield line;
          }
        })(),
      );
    },
  };
  return source;
}

async function chunksOf(raw: Readable | Buffer): Promise<Buffer[]> {
  if (Buffer.isBuffer(raw)) return [raw];
  const out: Buffer[] = [];
  for await (const chunk of raw) out.push(chunk as Buffer);
  return out;
}

describe('reading a received message once', () => {
  afterEach(() => assert.equal(heldWholeBytes(), 0, 'every test gives back what it held'));

  it('reads mail up to WHOLE_READ_MAX from the server once and gives every use the same bytes, in slices of at most 64 KB', async () => {
    const bytes = crypto.randomBytes(Math.floor(WHOLE_READ_MAX * 0.7));
    const smtp = smtpSource(bytes);
    const raw = await readOnce(smtp.open, bytes.length);
    try {
      assert.equal(raw.whole, true);
      assert.equal(heldWholeBytes(), bytes.length);
      for (let use = 0; use < 3; use++) {
        const chunks = await chunksOf(raw.open());
        assert.ok(chunks.every((c) => c.length <= WHOLE_READ_SLICE), 'no chunk larger than a slice');
        assert.ok(Buffer.concat(chunks).equals(bytes), `use ${use + 1} sees the message exactly`);
      }
      assert.equal(smtp.reads, 1, 'one read from the SMTP server for all uses');
    } finally {
      raw.release();
      raw.release();
    }
  });

  it('gives a small message as one buffer', async () => {
    const bytes = Buffer.from('Subject: hi\r\n\r\nhello\r\n');
    const raw = await readOnce(smtpSource(bytes).open, bytes.length);
    assert.ok(Buffer.isBuffer(raw.open()) && (raw.open() as Buffer).equals(bytes));
    raw.release();
  });

  it('streams larger mail, and mail of unknown size, from the server on every use', async () => {
    const bytes = crypto.randomBytes(WHOLE_READ_MAX + 1);
    for (const size of [bytes.length, undefined]) {
      const smtp = smtpSource(bytes);
      const raw = await readOnce(smtp.open, size);
      assert.equal(raw.whole, false);
      assert.equal(heldWholeBytes(), 0);
      assert.ok((await buffer(raw.open() as Readable)).equals(bytes));
      assert.ok((await buffer(raw.open() as Readable)).equals(bytes));
      assert.equal(smtp.reads, 2);
      raw.release();
    }
  });

  it('holds at most WHOLE_READ_BUDGET at once: past it mail streams, and the budget is free again once released', async () => {
    const bytes = crypto.randomBytes(WHOLE_READ_MAX);
    const held: RawSource[] = [];
    try {
      for (let i = 0; i < WHOLE_READ_BUDGET / WHOLE_READ_MAX; i++) held.push(await readOnce(smtpSource(bytes).open, bytes.length));
      assert.ok(held.every((r) => r.whole));
      assert.equal(heldWholeBytes(), WHOLE_READ_BUDGET);
      const over = await readOnce(smtpSource(bytes).open, bytes.length);
      assert.equal(over.whole, false, 'the next message streams');
      assert.ok((await buffer(over.open() as Readable)).equals(bytes), 'and is read in full');
      held.pop()!.release();
      const again = await readOnce(smtpSource(bytes).open, bytes.length);
      assert.equal(again.whole, true, 'released bytes can be held again');
      held.push(again);
    } finally {
      for (const r of held) r.release();
    }
  });

  it('falls back to streaming when the whole read fails, so each use reports the error itself', async () => {
    const bytes = crypto.randomBytes(200_000);
    const smtp = smtpSource(bytes, { failAt: 100_000 });
    const raw = await readOnce(smtp.open, bytes.length);
    assert.equal(raw.whole, false);
    assert.equal(heldWholeBytes(), 0, 'nothing kept from the failed read');
    await assert.rejects(buffer(raw.open() as Readable), /connection reset/);
  });
});
