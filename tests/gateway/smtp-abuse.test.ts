import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import path from 'node:path';
import { startDns, type TestDns } from '../support/dns';
import { createEmployeeAccount, GATEWAY_DOMAIN, startTestGateway, type TestGateway } from '../support/gateway';
import { plainMessage } from '../support/mail-auth';
import { sendMail, SmtpSession } from '../support/smtp';
import { openTestStore } from '../support/store';

/**
 * Hostile SMTP clients against the real gateway: one must not be able to
 * guess forwarding addresses at full speed, fill the log without end, or
 * keep a session busy forever, while ordinary senders keep being served.
 */
describe('SMTP gateway: abusive sessions', function () {
  this.timeout(60000);
  const ERROR_DELAY_MS = 200;
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let dns: TestDns;
  let gw: TestGateway;
  let bob: Awaited<ReturnType<typeof createEmployeeAccount>>;
  let carol: Awaited<ReturnType<typeof createEmployeeAccount>>;
  let dave: Awaited<ReturnType<typeof createEmployeeAccount>>;

  before(async () => {
    store = await openTestStore('gw_abuse');
    dns = await startDns();
    dns.setTxt('acme.test', 'v=spf1 ip4:127.0.0.1 -all');
    bob = await createEmployeeAccount(store, 'bob@acme.test');
    carol = await createEmployeeAccount(store, 'carol@acme.test');
    dave = await createEmployeeAccount(store, 'dave@acme.test');
    gw = await startTestGateway({ dbName: store.dbName, dnsAddress: dns.address, errorDelayMs: ERROR_DELAY_MS, env: { SMTP_MAX_RECIPIENTS: '2', SMTP_MAX_CONNECTIONS_PER_CLIENT: '3' } });
  });
  after(async () => {
    await gw?.close();
    await dns?.stop();
    await store?.drop();
  });

  async function mailSession(helo: string) {
    const { session } = await SmtpSession.open(gw.port);
    assert.equal((await session.command(`EHLO ${helo}`)).code, 250);
    assert.equal((await session.command('MAIL FROM:<alice@acme.test>')).code, 250);
    return session;
  }

  it('a dictionary attack on forwarding addresses is slowed after 10 guesses and cut off after 20 with 421 4.7.0', async () => {
    const helo = 'guesser.test';
    const session = await mailSession(helo);
    const replies: Array<{ code: number; text: string; ms: number }> = [];
    for (let i = 0; i < 40; i++) {
      const started = Date.now();
      const reply = await session.command(`RCPT TO:<bob-acme-test.guess${i}@${GATEWAY_DOMAIN}>`);
      replies.push({ ...reply, ms: Date.now() - started });
      if (reply.code !== 550) break;
    }
    const refused = replies.filter((r) => r.code === 550);
    assert.equal(refused.length, 20, replies.map((r) => r.code).join(' '));
    assert.ok(refused.every((r) => /^550 5\.1\.1 /.test(r.text)));
    assert.match(replies[20].text, /^421 4\.7\.0 Too many errors, closing connection$/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(session.closed, true, 'the gateway closed the connection');
    // The tarpit: each refusal past the tenth waited for the delay.
    const slowed = replies.slice(10, 20).reduce((sum, r) => sum + r.ms, 0);
    assert.ok(slowed >= 10 * ERROR_DELAY_MS, `refusals 11-20 took ${slowed} ms`);

    // One line per refusal, one for the disconnect: the log grows with what the client got, no more.
    const lines = gw.logs().filter((l) => l.helo === helo);
    assert.equal(lines.filter((l) => l.msg === 'recipient refused').length, 20);
    const closing = lines.filter((l) => l.msg === 'too many errors; closing connection');
    assert.equal(closing.length, 1);
    assert.equal(closing[0].code, 421);
    assert.equal(closing[0].enhancedCode, '4.7.0');
    assert.equal(closing[0].remoteIp, '127.0.0.1');

    const delivered = await sendMail(gw.port, { from: 'alice@acme.test', to: [bob.forwardingAddress] }, plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'after the guesser' }));
    assert.equal(delivered.code, 250, delivered.response);
  });

  it('one client holding idle connections cannot take every slot: past SMTP_MAX_CONNECTIONS_PER_CLIENT it gets 421 4.7.0, others are served', async () => {
    const idle: SmtpSession[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const { session, greeting } = await SmtpSession.open(gw.port);
        assert.equal(greeting.code, 220, greeting.text);
        idle.push(session);
      }
      for (let i = 0; i < 5; i++) {
        const { session, greeting } = await SmtpSession.open(gw.port);
        assert.equal(greeting.text, '421 4.7.0 Too many connections from your address, try again later');
        await session.quit();
      }
      // Another address (127.0.0.2 is loopback too) is another client: served while the first one holds its three.
      const { session: other, greeting } = await SmtpSession.open(gw.port, { localAddress: '127.0.0.2' });
      assert.equal(greeting.code, 220, greeting.text);
      assert.equal((await other.command('EHLO other.test')).code, 250);
      assert.equal((await other.command('MAIL FROM:<alice@acme.test>')).code, 250);
      assert.equal((await other.command(`RCPT TO:<${bob.forwardingAddress}>`)).code, 250);
      const stored = await other.data(plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'from another client' }));
      assert.equal(stored.code, 250, stored.text);
      await other.quit();
    } finally {
      for (const session of idle) await session.quit();
    }
    // Five refusals in a row, one log line (the next would come a minute later, with the count).
    const lines = gw.logs().filter((l) => l.msg === 'connection limit of one client reached; answering 421');
    assert.equal(lines.length, 1);
    assert.equal(lines[0].client, '127.0.0.1');
    assert.equal(lines[0].limit, 3);
    // Closed sessions free the client's slots.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const delivered = await sendMail(gw.port, { from: 'alice@acme.test', to: [bob.forwardingAddress] }, plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'after the idle ones' }));
    assert.equal(delivered.code, 250, delivered.response);
  });

  it('a client hanging up again and again while a large message is spooled leaves no spool file and no fatal log line', async () => {
    for (let i = 0; i < 10; i++) {
      const session = await mailSession(`hang-up-${i}.test`);
      assert.equal((await session.command(`RCPT TO:<${bob.forwardingAddress}>`)).code, 250);
      assert.equal((await session.command('DATA')).code, 354);
      // Past spool_after (1 MB): Haraka writes it to its spool directory; then the client is gone.
      session.write(Buffer.alloc(3 * 1024 * 1024, 'a\r\n'));
      await new Promise((resolve) => setTimeout(resolve, 300));
      session.destroy();
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // Before, haraka-message-stream reopened a destroyed spool file (EEXIST), logged at crit (level 60) each time.
    const alarms = gw.logs().filter((l) => Number(l.level) >= 50);
    assert.deepEqual(alarms.map((l) => l.msg), []);
    assert.deepEqual(fs.readdirSync(path.join(gw.dataDir, 'haraka', 'spool')), []);
    const delivered = await sendMail(gw.port, { from: 'alice@acme.test', to: [bob.forwardingAddress] }, plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'after the hang-ups' }));
    assert.equal(delivered.code, 250, delivered.response);
  });

  it('unknown commands count as errors too', async () => {
    const { session } = await SmtpSession.open(gw.port);
    await session.command('EHLO junk.test');
    const codes: number[] = [];
    for (let i = 0; i < 30 && codes.at(-1) !== 421; i++) codes.push((await session.command(`XJUNK ${i}`)).code);
    assert.deepEqual(codes, [...Array(20).fill(500), 421]);
  });

  it('a NOOP flood is cut off after 100 junk commands and 20 more (421 4.7.0); a delivery starts the count again', async () => {
    const { session } = await SmtpSession.open(gw.port);
    assert.equal((await session.command('EHLO noop.test')).code, 250);
    const codes: number[] = [];
    for (let i = 0; i < 200 && codes.at(-1) !== 421; i++) codes.push((await session.command('NOOP')).code);
    assert.deepEqual(codes, [...Array(119).fill(250), 421]);

    // A sender reusing its session with an RSET between messages: 90 RSETs, a delivery, 90 more, a delivery.
    const reused = await mailSession('reused.test');
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 90; i++) assert.equal((await reused.command('RSET')).code, 250);
      assert.equal((await reused.command('MAIL FROM:<alice@acme.test>')).code, 250);
      assert.equal((await reused.command(`RCPT TO:<${bob.forwardingAddress}>`)).code, 250);
      const stored = await reused.data(plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: `reused session ${round}` }));
      assert.equal(stored.code, 250, stored.text);
    }
    await reused.quit();
  });

  it('452 too many recipients is not counted: a client that sends more recipients than the limit still delivers', async () => {
    const session = await mailSession('many-recipients.test');
    const codes = [(await session.command(`RCPT TO:<${bob.forwardingAddress}>`)).code, (await session.command(`RCPT TO:<${carol.forwardingAddress}>`)).code];
    for (let i = 0; i < 25; i++) codes.push((await session.command(`RCPT TO:<${dave.forwardingAddress}>`)).code);
    assert.deepEqual(codes, [250, 250, ...Array(25).fill(452)]);
    const reply = await session.data(plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'many recipients' }));
    assert.equal(reply.code, 250, reply.text);
    await session.quit();
  });

  it('a client sending thousands of recipients past the limit is cut off 1,000 recipients after the limit and 20 more', async () => {
    const session = await mailSession('recipient-flood.test');
    const codes: number[] = [];
    for (let i = 0; i < 1100 && codes.at(-1) !== 421; i++) codes.push((await session.command(`RCPT TO:<${i < 2 ? [bob, carol][i].forwardingAddress : dave.forwardingAddress}>`)).code);
    assert.deepEqual(codes, [250, 250, ...Array(1020).fill(452), 421]);
  });
});

describe('SMTP gateway: slow clients', function () {
  this.timeout(60000);
  const LINE_TIMEOUT_MS = 1000;
  const DATA_TIMEOUT_MS = 3000;
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let dns: TestDns;
  let gw: TestGateway;
  let bob: Awaited<ReturnType<typeof createEmployeeAccount>>;

  before(async () => {
    store = await openTestStore('gw_slow');
    dns = await startDns();
    dns.setTxt('acme.test', 'v=spf1 ip4:127.0.0.1 -all');
    bob = await createEmployeeAccount(store, 'bob@acme.test');
    gw = await startTestGateway({ dbName: store.dbName, dnsAddress: dns.address, lineTimeoutMs: LINE_TIMEOUT_MS, dataTimeoutMs: DATA_TIMEOUT_MS });
  });
  after(async () => {
    await gw?.close();
    await dns?.stop();
    await store?.drop();
  });

  /** Write `chunk` every `everyMs` until the gateway answers (or 10 s pass); the reply, and whether the connection was closed. */
  async function trickle(session: SmtpSession, chunk: string, everyMs: number) {
    const reply = session.next(10_000);
    const timer = setInterval(() => session.write(chunk), everyMs);
    try {
      return await reply;
    } finally {
      clearInterval(timer);
    }
  }

  it('a command sent a byte at a time, never finished, gets 421 4.4.2 once a line has taken too long', async () => {
    const { session } = await SmtpSession.open(gw.port, { localAddress: '127.0.0.3' });
    assert.equal((await session.command('EHLO trickle.test')).code, 250);
    // Each byte restarts Haraka's inactivity timer (5 minutes): before, this held the session for ever.
    const reply = await trickle(session, 'M', 100);
    assert.match(reply.text, /^421 4\.4\.2 Timeout: no complete line in 1 s, closing connection$/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(session.closed, true);
    const line = await gw.waitForLog((l) => l.msg === 'slow client; closing connection' && l.helo === 'trickle.test');
    assert.equal(line.reason, 'line timeout');
    assert.equal(line.remoteIp, '127.0.0.3');
  });

  it('a message sent one short line at a time gets 421 4.4.2 once DATA has taken too long, and nothing is stored', async () => {
    const { session } = await SmtpSession.open(gw.port);
    assert.equal((await session.command('EHLO slow-data.test')).code, 250);
    assert.equal((await session.command('MAIL FROM:<alice@acme.test>')).code, 250);
    assert.equal((await session.command(`RCPT TO:<${bob.forwardingAddress}>`)).code, 250);
    assert.equal((await session.command('DATA')).code, 354);
    session.write('Subject: slow\r\n\r\n');
    const reply = await trickle(session, 'x\r\n', 200);
    assert.match(reply.text, /^421 4\.4\.2 Timeout: message not received within 3 s, closing connection$/);
    const line = await gw.waitForLog((l) => l.msg === 'slow client; closing connection' && l.helo === 'slow-data.test');
    assert.equal(line.reason, 'data timeout');
    assert.equal(await store.models.Message.countDocuments({ subject: 'slow' }), 0);
  });

  it('an ordinary sender pausing between commands, but under the deadline, is served', async () => {
    const { session } = await SmtpSession.open(gw.port);
    assert.equal((await session.command('EHLO patient.test')).code, 250);
    await new Promise((resolve) => setTimeout(resolve, LINE_TIMEOUT_MS / 2));
    assert.equal((await session.command('MAIL FROM:<alice@acme.test>')).code, 250);
    await new Promise((resolve) => setTimeout(resolve, LINE_TIMEOUT_MS / 2));
    assert.equal((await session.command(`RCPT TO:<${bob.forwardingAddress}>`)).code, 250);
    const stored = await session.data(plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'patient' }));
    assert.equal(stored.code, 250, stored.text);
    await session.quit();
  });
});
