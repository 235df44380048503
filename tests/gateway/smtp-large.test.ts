import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { useGatewayWorld } from '../support/gateway';
import { SmtpSession } from '../support/smtp';
import { storedAttachment } from '../support/store';

/** Peak resident memory (VmHWM) of a process, in bytes (Linux). */
function peakRss(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

/**
 * A message near the default 50 MB limit: spooled to disk by Haraka past
 * 1 MB, streamed through mailauth (headers buffered, bodies hashed on the
 * fly) and through ingest into GridFS. The Haraka process must not hold the
 * message several times over: its peak RSS stays far below a few copies of
 * the message. (A memory ceiling, not a speed figure.)
 */
describe('SMTP gateway: a 48 MB message', function () {
  this.timeout(600000);
  const world = useGatewayWorld('gw_large');

  it('stores it with the attachment intact while Haraka\'s peak RSS stays bounded', async () => {
    const attachment = crypto.randomBytes(35 * 1024 * 1024);
    const base64 = attachment.toString('base64').replace(/.{76}/g, '$&\r\n');
    const messageId = `${crypto.randomUUID()}@acme.test`;
    const raw = Buffer.from(
      [
        'From: alice@acme.test',
        'To: bob@acme.test',
        'Subject: big attachment',
        `Message-ID: <${messageId}>`,
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="big"',
        '',
        '--big',
        'Content-Type: text/plain',
        '',
        'See attached.',
        '--big',
        'Content-Type: application/octet-stream; name="data.bin"',
        'Content-Disposition: attachment; filename="data.bin"',
        'Content-Transfer-Encoding: base64',
        '',
        base64,
        '--big--',
        '',
      ].join('\r\n'),
    );
    assert.ok(raw.length > 47 * 1024 * 1024 && raw.length < 50 * 1024 * 1024, String(raw.length));
    const pid = world.gw.gateway.pid!;
    const baseline = peakRss(pid);

    const { session } = await SmtpSession.open(world.gw.port);
    await session.command('EHLO client.test');
    await session.command('MAIL FROM:<alice@acme.test>');
    await session.command(`RCPT TO:<${world.bob.forwardingAddress}>`);
    const reply = await session.data(raw);
    await session.quit();
    assert.equal(reply.code, 250, reply.text);

    const doc = await world.store.models.Message.findOne({ messageId }).lean();
    assert.ok(doc);
    assert.equal(doc.attachments.length, 1);
    assert.equal(doc.attachments[0].size, attachment.length);
    const stored = await storedAttachment(world.store, doc._id);
    assert.ok(stored.equals(attachment), 'attachment bytes intact, read back from the raw message');

    const peak = peakRss(pid);
    const grown = peak - baseline;
    console.log(`      Haraka peak RSS ${(peak / 2 ** 20).toFixed(0)} MB (baseline ${(baseline / 2 ** 20).toFixed(0)} MB, +${(grown / 2 ** 20).toFixed(0)} MB) for a ${(raw.length / 2 ** 20).toFixed(0)} MB message`);
    assert.ok(grown < 2 * raw.length, `peak RSS grew by ${grown} bytes for a ${raw.length}-byte message`);
  });
});
