import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDns, type TestDns } from '../support/dns';
import { createEmployeeAccount, GATEWAY_DOMAIN, startTestGateway, type TestGateway } from '../support/gateway';
import { plainMessage } from '../support/mail-auth';
import { sendMail, SmtpSession, swaks } from '../support/smtp';
import { openTestStore, storedAttachment, storedRaw } from '../support/store';

/**
 * The gateway end to end: Haraka child process, compiled plugins, FerretDB,
 * local DNS; mail sent with nodemailer, swaks and a bare SMTP session.
 */
describe('SMTP gateway: recipients, limits and storing', function () {
  this.timeout(60000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let testDns: TestDns;
  let gw: TestGateway;
  let bob: Awaited<ReturnType<typeof createEmployeeAccount>>;
  let carol: Awaited<ReturnType<typeof createEmployeeAccount>>;

  before(async () => {
    store = await openTestStore('gw_delivery');
    testDns = await startDns();
    // acme.test's mail is sent from 127.0.0.1 (its provider, in these tests).
    testDns.setTxt('acme.test', 'v=spf1 ip4:127.0.0.1 -all');
    bob = await createEmployeeAccount(store, 'bob@acme.test');
    carol = await createEmployeeAccount(store, 'carol@acme.test');
    gw = await startTestGateway({
      dbName: store.dbName,
      dnsAddress: testDns.address,
      env: { SMTP_MAX_MESSAGE_SIZE: '300KB', SMTP_MAX_RECIPIENTS: '3', SMTP_MAX_CONNECTIONS: '4' },
    });
  });

  after(async () => {
    await gw?.close();
    await testDns?.stop();
    await store?.drop();
  });

  it('accepts mail for a forwarding address, answers 250 only once it is stored, and stores every field', async () => {
    const messageId = `${crypto.randomUUID()}@acme.test`;
    const raw = Buffer.from(
      [
        'From: Alice Example <alice@acme.test>',
        `To: Bob <bob@acme.test>`,
        'Cc: dave@customer.test',
        'Subject: Contract draft',
        'Date: Tue, 03 Nov 2026 10:00:00 +0000',
        `Message-ID: <${messageId}>`,
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b1"',
        '',
        '--b1',
        'Content-Type: text/html; charset=utf-8',
        '',
        '<p>Hello <b>Bob</b>, draft attached.</p>',
        '--b1',
        'Content-Type: application/pdf; name="draft.pdf"',
        'Content-Disposition: attachment; filename="draft.pdf"',
        'Content-Transfer-Encoding: base64',
        '',
        Buffer.from('%PDF-1.4 draft').toString('base64'),
        '--b1--',
        '',
      ].join('\r\n'),
    );
    const sent = await sendMail(gw.port, { from: 'alice@acme.test', to: [bob.forwardingAddress] }, raw);
    assert.equal(sent.ok, true, sent.response);
    assert.match(sent.response, /^250 .*Message stored/);

    const doc = await store.models.Message.findOne({ messageId }).lean();
    assert.ok(doc, 'the message is in the store when 250 arrives');
    assert.equal(doc.mailboxKey, bob.accountId.toString());
    assert.equal(doc.accountId?.toString(), bob.accountId.toString());
    assert.equal(doc.ownerId.toString(), bob.userId.toString());
    assert.equal(doc.subject, 'Contract draft');
    assert.deepEqual(doc.from, { address: 'alice@acme.test', name: 'Alice Example' });
    assert.deepEqual(doc.to.map((a) => a.address), ['bob@acme.test']);
    assert.deepEqual(doc.cc.map((a) => a.address), ['dave@customer.test']);
    assert.match(doc.html, /Hello <b>Bob<\/b>/);
    assert.equal(doc.attachments.length, 1);
    assert.equal(doc.attachments[0].filename, 'draft.pdf');
    assert.equal((await storedAttachment(store, doc._id)).toString(), '%PDF-1.4 draft');
    assert.equal(doc.status, 'inbox');
    assert.equal(doc.kind, 'message');
    assert.equal(doc.sources.length, 1);
    const [source] = doc.sources;
    assert.equal(source.kind, 'forward');
    assert.equal(source.remoteIp, '127.0.0.1');
    assert.equal(source.envelopeFrom, 'alice@acme.test');
    assert.deepEqual(source.envelopeTo, [bob.forwardingAddress]);
    assert.match(source.queueId, /^[0-9A-F-]{36}\.\d+$/i);
    assert.ok(doc.auth);
    assert.equal(doc.auth.verdict, 'pass');
    assert.equal(doc.auth.spf, 'pass');
    assert.match(doc.auth.reason, /SPF pass for envelope domain acme\.test/);
    assert.match(doc.auth.results, /^gw\.test;/);
    assert.match(doc.auth.results, /spf=pass/);

    // The stored copy: our trace headers (Received-SPF, Authentication-Results), Haraka's Received, then the message as sent.
    const stored = (await storedRaw(store, doc._id)).toString();
    assert.match(stored, /^Received-SPF: pass /);
    assert.match(stored, /\r\nAuthentication-Results: gw\.test;/);
    assert.match(stored, /\r\nReceived: from [\s\S]*?by gw\.test/);
    assert.ok(stored.endsWith(raw.toString()), 'the sent message follows the trace headers byte for byte');
    assert.equal(doc.size, Buffer.byteLength(stored));

    const line = await gw.waitForLog((l) => l.msg === 'smtp transaction' && l.queueId === source.queueId);
    assert.equal(line.verdict, 'pass');
    assert.equal(line.outcome, 'stored');
    assert.equal(line.code, 250);
    assert.equal(typeof line.durationMs, 'number');
    assert.ok((line.size as number) >= raw.length, 'size logged');
  });

  it('refuses an unknown forwarding address with 550 5.1.1', async () => {
    const sent = await sendMail(gw.port, { from: 'alice@acme.test', to: [`bob-acme-test.zzzzzzzzzzzzzzzz@${GATEWAY_DOMAIN}`] }, plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'x' }));
    assert.equal(sent.ok, false);
    assert.equal(sent.code, 550);
    assert.match(sent.rejectedResponses[0] ?? sent.response, /550 5\.1\.1 No such forwarding address/);
  });

  it('refuses a disabled account and a disabled owner with 550 5.2.1, within seconds of the change', async () => {
    const dana = await createEmployeeAccount(store, 'dana@acme.test');
    const message = () => plainMessage({ from: 'alice@acme.test', to: 'dana@acme.test', subject: 'hello dana' });
    assert.equal((await sendMail(gw.port, { from: 'alice@acme.test', to: [dana.forwardingAddress] }, message())).ok, true);

    await store.models.MailAccount.updateOne({ _id: dana.accountId }, { $set: { enabled: false } });
    const refused = await eventually(async () => {
      const sent = await sendMail(gw.port, { from: 'alice@acme.test', to: [dana.forwardingAddress] }, message());
      return sent.ok ? null : sent;
    });
    assert.match(refused.rejectedResponses[0] ?? refused.response, /550 5\.2\.1 Mailbox disabled: forwarding to this address is turned off/);

    await store.models.MailAccount.updateOne({ _id: dana.accountId }, { $set: { enabled: true } });
    await store.models.User.updateOne({ _id: dana.userId }, { $set: { disabled: true } });
    const ownerRefused = await eventually(async () => {
      const sent = await sendMail(gw.port, { from: 'alice@acme.test', to: [dana.forwardingAddress] }, message());
      return /its owner is disabled/.test(sent.rejectedResponses[0] ?? sent.response) ? sent : null;
    });
    assert.equal(ownerRefused.code, 550);
  });

  it('accepts a newly added account within seconds', async () => {
    const started = Date.now();
    const erin = await createEmployeeAccount(store, 'erin@acme.test');
    await eventually(async () => {
      const sent = await sendMail(gw.port, { from: 'alice@acme.test', to: [erin.forwardingAddress] }, plainMessage({ from: 'alice@acme.test', to: 'erin@acme.test', subject: 'welcome' }));
      return sent.ok ? sent : null;
    });
    assert.ok(Date.now() - started < 10000);
  });

  it('never relays: other domains get 550 5.7.1, with or without AUTH', async () => {
    const relay = await swaks(['--server', '127.0.0.1', '--port', String(gw.port), '--from', 'alice@acme.test', '--to', 'someone@example.com', '--tls-optional']);
    assert.notEqual(relay.exitCode, 0);
    assert.ok(relay.replies.some((r) => /^550 5\.7\.1 Relaying denied/.test(r)), relay.transcript);

    const { session, greeting } = await SmtpSession.open(gw.port);
    assert.equal(greeting.code, 220);
    const ehlo = await session.command('EHLO client.test');
    assert.doesNotMatch(ehlo.text, /AUTH/, 'no AUTH is offered');
    const auth = await session.command(`AUTH PLAIN ${Buffer.from('\u0000alice\u0000secret').toString('base64')}`);
    assert.ok(auth.code >= 500, `AUTH refused: ${auth.text}`);
    assert.equal((await session.command('MAIL FROM:<alice@acme.test>')).code, 250);
    const rcpt = await session.command('RCPT TO:<victim@example.org>');
    assert.equal(rcpt.code, 550);
    assert.match(rcpt.text, /5\.7\.1 Relaying denied/);
    // A look-alike of the gateway domain is still another domain.
    assert.match((await session.command(`RCPT TO:<x@${GATEWAY_DOMAIN}.evil.test>`)).text, /550 5\.7\.1/);
    // A bare local part (RFC 5321 §4.1.1.3 <Postmaster>) has no domain of ours either.
    assert.equal((await session.command('RCPT TO:<postmaster>')).code, 550);
    assert.equal((await session.command('NOOP')).code, 250, 'still serving');
    await session.quit();
  });

  it('refuses oversize mail with 552 5.3.4, at MAIL (SIZE=) and at end of DATA, and keeps serving', async () => {
    const { session } = await SmtpSession.open(gw.port);
    const ehlo = await session.command('EHLO client.test');
    assert.match(ehlo.text, /SIZE 307200/);
    const declared = await session.command('MAIL FROM:<alice@acme.test> SIZE=999999999');
    assert.equal(declared.code, 552);
    assert.match(declared.text, /552 5\.3\.4 Message size exceeds fixed maximum message size/);
    await session.quit();

    const big = plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'too big', body: 'x'.repeat(76).concat('\r\n').repeat(5000) });
    const sent = await sendMail(gw.port, { from: 'alice@acme.test', to: [bob.forwardingAddress] }, big);
    assert.equal(sent.ok, false);
    assert.equal(sent.code, 552);
    assert.match(sent.response, /5\.3\.4/);
    assert.equal(await store.models.Message.countDocuments({ subject: 'too big' }), 0);

    const after = await sendMail(gw.port, { from: 'alice@acme.test', to: [bob.forwardingAddress] }, plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'small after big' }));
    assert.equal(after.ok, true, after.response);
  });

  it('limits recipients per transaction (452 4.5.3) and stores one copy per mailbox', async () => {
    const { session } = await SmtpSession.open(gw.port);
    await session.command('EHLO client.test');
    assert.equal((await session.command('MAIL FROM:<alice@acme.test>')).code, 250);
    assert.equal((await session.command(`RCPT TO:<${bob.forwardingAddress}>`)).code, 250);
    // The same address twice is one recipient.
    assert.equal((await session.command(`RCPT TO:<${bob.forwardingAddress.toUpperCase()}>`)).code, 250);
    assert.equal((await session.command(`RCPT TO:<${carol.forwardingAddress}>`)).code, 250);
    assert.equal((await session.command(`RCPT TO:<${bob.dropboxAddress}>`)).code, 250);
    const fourth = await session.command(`RCPT TO:<${carol.dropboxAddress}>`);
    assert.equal(fourth.code, 452);
    assert.match(fourth.text, /452 4\.5\.3 Too many recipients/);
    const messageId = `${crypto.randomUUID()}@acme.test`;
    const reply = await session.data(plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test, carol@acme.test', subject: 'to several', messageId }));
    assert.equal(reply.code, 250, reply.text);
    await session.quit();

    const copies = await store.models.Message.find({ messageId }).lean();
    assert.deepEqual(copies.map((c) => c.mailboxKey).sort(), [bob.accountId.toString(), carol.accountId.toString(), `dropbox:${bob.userId.toString()}`].sort());
    const dropboxCopy = copies.find((c) => c.mailboxKey.startsWith('dropbox:'))!;
    assert.equal(dropboxCopy.accountId, null);
    assert.equal(dropboxCopy.sources[0].kind, 'mx');
    assert.equal(copies.find((c) => c.mailboxKey === carol.accountId.toString())!.ownerId.toString(), carol.userId.toString());
  });

  it('limits concurrent connections: one more than SMTP_MAX_CONNECTIONS gets 421 4.3.2', async () => {
    const open: SmtpSession[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const { session, greeting } = await SmtpSession.open(gw.port);
        open.push(session);
        assert.equal(greeting.code, 220, greeting.text);
      }
      const { session: extra, greeting } = await SmtpSession.open(gw.port);
      assert.equal(greeting.code, 421);
      assert.match(greeting.text, /421 4\.3\.2 Too many connections, try again later/);
      await extra.quit();
    } finally {
      for (const session of open) await session.quit();
    }
    // Closed sessions free their slots.
    const sent = await eventually(async () => {
      const attempt = await sendMail(gw.port, { from: 'alice@acme.test', to: [bob.forwardingAddress] }, plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'after the crowd' }));
      return attempt.ok ? attempt : null;
    });
    assert.equal(sent.code, 250);
  });

  it('stores a duplicate delivery once, recording the second source', async () => {
    const messageId = `${crypto.randomUUID()}@acme.test`;
    const raw = plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'sent twice', messageId, date: 'Wed, 04 Nov 2026 09:00:00 +0000' });
    const first = await sendMail(gw.port, { from: 'alice@acme.test', to: [bob.forwardingAddress] }, raw);
    // The retry arrives through another client: swaks sending the same bytes.
    const file = path.join(os.tmpdir(), `postroom-dup-${process.pid}.eml`);
    fs.writeFileSync(file, raw);
    const again = await swaks(['--server', '127.0.0.1', '--port', String(gw.port), '--from', 'alice@acme.test', '--to', bob.forwardingAddress, '--data', `@${file}`, '--tls-optional']);
    fs.rmSync(file, { force: true });
    assert.equal(first.ok, true);
    assert.equal(again.exitCode, 0, again.transcript);
    assert.ok(again.replies.some((r) => /^250 Message already stored/.test(r)), again.transcript);
    const copies = await store.models.Message.find({ messageId }).lean();
    assert.equal(copies.length, 1);
    assert.equal(copies[0].sources.length, 2);
    assert.notEqual(copies[0].sources[0].queueId, copies[0].sources[1].queueId);
  });
});

/** Retry `attempt` until it returns a value (the recipient cache lives for about a second). */
async function eventually<T>(attempt: () => Promise<T | null>, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await attempt();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}
