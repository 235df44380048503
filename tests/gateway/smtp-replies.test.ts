import { strict as assert } from 'node:assert';
import { createEmployeeAccount, GATEWAY_DOMAIN, useGatewayWorld } from '../support/gateway';
import { plainMessage } from '../support/mail-auth';
import { sendMail, SmtpSession } from '../support/smtp';

/**
 * Replies to refused MAIL and RCPT commands (codes and RFC 3463 enhanced
 * codes), and the one info log line each refusal leaves, against the real
 * gateway.
 */
describe('SMTP gateway: refused commands, their replies and their log lines', function () {
  this.timeout(60000);
  const world = useGatewayWorld('gw_replies');
  let disabled: Awaited<ReturnType<typeof createEmployeeAccount>>;

  before(async () => {
    disabled = await createEmployeeAccount(world.store, 'erin@acme.test');
    await world.store.models.MailAccount.updateOne({ _id: disabled.accountId }, { $set: { enabled: false } });
  });

  /** Open a session, EHLO as `helo`, and return it with its EHLO reply. */
  async function session(helo = 'client.test') {
    const { session: opened } = await SmtpSession.open(world.gw.port);
    const ehlo = await opened.command(`EHLO ${helo}`);
    return { session: opened, ehlo };
  }

  /** The refusal lines logged so far for one address (sender or recipient). */
  const refusalsOf = (field: 'rcpt' | 'sender', address: string) => world.gw.logs().filter((l) => l.outcome !== undefined && l[field] === address && /refused$/.test(String(l.msg)));

  describe('RCPT TO', () => {
    const cases = [
      { name: 'a relay attempt', rcpt: () => 'victim@gmail.com', reply: /^550 5\.7\.1 Relaying denied/, enhancedCode: '5.7.1', reason: 'relaying denied' },
      { name: 'an unknown address at the gateway domain', rcpt: () => `bob-acme-test.zzzzzzzzzzzzzzzz@${GATEWAY_DOMAIN}`, reply: /^550 5\.1\.1 No such forwarding address$/, enhancedCode: '5.1.1', reason: 'unknown recipient' },
      { name: 'a disabled mailbox', rcpt: () => disabled.forwardingAddress, reply: /^550 5\.2\.1 Mailbox disabled: forwarding to this address is turned off$/, enhancedCode: '5.2.1', reason: 'account disabled' },
    ];
    for (const c of cases) {
      it(`${c.name}: refused, and logged once at info with the envelope, codes and reason`, async () => {
        const helo = `rcpt-${c.reason.replace(/\W/g, '-')}.test`;
        const { session: s } = await session(helo);
        assert.equal((await s.command('MAIL FROM:<alice@acme.test>')).code, 250);
        const reply = await s.command(`RCPT TO:<${c.rcpt()}>`);
        assert.equal(reply.code, 550);
        assert.match(reply.text, c.reply);
        await s.quit();

        const line = await world.gw.waitForLog((l) => l.msg === 'recipient refused' && l.helo === helo);
        assert.equal(line.level, 30, 'info');
        assert.equal(line.component, 'smtp');
        assert.match(String(line.queueId), /^[0-9A-F-]{36}\.\d+$/i);
        assert.equal(line.remoteIp, '127.0.0.1');
        assert.equal(line.sender, 'alice@acme.test');
        assert.equal(line.rcpt, c.rcpt());
        assert.equal(line.code, 550);
        assert.equal(line.enhancedCode, c.enhancedCode);
        assert.equal(line.outcome, 'rejected');
        assert.equal(line.reason, c.reason);
        assert.equal(world.gw.logs().filter((l) => l.helo === helo).length, 1, 'one line for one refused command');
      });
    }

    it('RCPT TO:<> is a syntax error (501 5.1.3), not a relay attempt, and is logged', async () => {
      const { session: s } = await session('null-rcpt.test');
      assert.equal((await s.command('MAIL FROM:<alice@acme.test>')).code, 250);
      const reply = await s.command('RCPT TO:<>');
      assert.equal(reply.code, 501);
      assert.match(reply.text, /^501 5\.1\.3 Bad destination mailbox address syntax/);
      // The transaction goes on.
      assert.equal((await s.command(`RCPT TO:<${world.bob.forwardingAddress}>`)).code, 250);
      await s.quit();
      const line = await world.gw.waitForLog((l) => l.msg === 'recipient refused' && l.helo === 'null-rcpt.test');
      assert.deepEqual([line.rcpt, line.code, line.enhancedCode, line.outcome, line.reason], ['', 501, '5.1.3', 'rejected', 'null recipient']);
    });

    it('a repeated refused recipient logs one line per try, and the accepted delivery still logs its transaction line', async () => {
      const { session: s } = await session('repeat.test');
      assert.equal((await s.command('MAIL FROM:<mallory@acme.test>')).code, 250);
      for (let i = 0; i < 3; i++) assert.equal((await s.command('RCPT TO:<victim@example.org>')).code, 550);
      assert.equal((await s.command(`RCPT TO:<${world.bob.forwardingAddress}>`)).code, 250);
      const reply = await s.data(plainMessage({ from: 'mallory@acme.test', to: 'bob@acme.test', subject: 'secret body marker-replies' }));
      assert.equal(reply.code, 250, reply.text);
      await s.quit();
      const queueId = /\(([0-9A-F-]+\.\d+)\)\s*$/i.exec(reply.text)?.[1];
      await world.gw.waitForLog((l) => l.msg === 'smtp transaction' && l.queueId === queueId);
      const refusals = refusalsOf('sender', 'mallory@acme.test');
      assert.equal(refusals.length, 3);
      assert.ok(refusals.every((l) => l.queueId === queueId), 'the refusals carry the queue id of the transaction that was stored');
      assert.ok(!JSON.stringify(world.gw.logs()).includes('marker-replies'), 'no message content in the log');
    });
  });

  describe('MAIL FROM', () => {
    it('a declared SIZE over the limit: 552 5.3.4, logged once with the sender', async () => {
      const { session: s } = await session('size.test');
      const reply = await s.command('MAIL FROM:<big@acme.test> SIZE=999999999');
      assert.match(reply.text, /^552 5\.3\.4 Message size exceeds fixed maximum message size/);
      await s.quit();
      const line = await world.gw.waitForLog((l) => l.msg === 'sender refused' && l.helo === 'size.test');
      assert.equal(line.level, 30);
      assert.equal(line.remoteIp, '127.0.0.1');
      assert.equal(typeof line.queueId, 'string', 'the session id: no transaction exists yet');
      assert.deepEqual([line.sender, line.code, line.enhancedCode, line.outcome, line.reason], ['big@acme.test', 552, '5.3.4', 'rejected', 'declared size over the limit']);
      assert.equal(refusalsOf('sender', 'big@acme.test').length, 1);
    });

    it('offers exactly the extensions whose parameters it accepts, and no ENHANCEDSTATUSCODES (Haraka\'s own replies carry no enhanced codes)', async () => {
      const { session: s, ehlo } = await session();
      await s.quit();
      const keywords = ehlo.text.split('\n').slice(1).map((line) => line.slice(4).split(' ')[0]);
      assert.deepEqual(keywords.sort(), ['8BITMIME', 'PIPELINING', 'SIZE', 'SMTPUTF8', 'STARTTLS']);
    });

    const params = [
      { line: 'MAIL FROM:<p1@acme.test> SIZE=abc', reply: /^501 5\.5\.4 Invalid SIZE parameter$/ },
      { line: 'MAIL FROM:<p2@acme.test> SIZE', reply: /^501 5\.5\.4 Invalid SIZE parameter$/ },
      { line: 'MAIL FROM:<p3@acme.test> SIZE=12abc', reply: /^501 5\.5\.4 Invalid SIZE parameter$/ },
      { line: 'MAIL FROM:<p4@acme.test> FOO=bar', reply: /^555 5\.5\.4 Unsupported parameter FOO$/ },
      { line: 'MAIL FROM:<p5@acme.test> BODY=BINARYMIME', reply: /^555 5\.5\.4 Unsupported parameter BODY=BINARYMIME$/ },
      { line: 'MAIL FROM:<p6@acme.test> BODY=9BIT', reply: /^501 5\.5\.4 Invalid BODY parameter$/ },
      { line: 'MAIL FROM:<p7@acme.test> SMTPUTF8=yes', reply: /^501 5\.5\.4 Invalid SMTPUTF8 parameter$/ },
      // AUTH (RFC 4954) and DSN (RFC 3461) are not offered, so their parameters are not either.
      { line: 'MAIL FROM:<p8@acme.test> AUTH=<>', reply: /^555 5\.5\.4 Unsupported parameter AUTH$/ },
      { line: 'MAIL FROM:<p9@acme.test> RET=HDRS ENVID=x1', reply: /^555 5\.5\.4 Unsupported parameter RET$/ },
      // RFC 6531 §3.5
      { line: 'MAIL FROM:<jöe@exämple.test>', reply: /^553 5\.6\.7 Non-ASCII sender address requires the SMTPUTF8 parameter$/ },
      { line: 'MAIL FROM:<p10@acme.test> SIZE=1000 BODY=8BITMIME', code: 250 },
      { line: 'MAIL FROM:<p11@acme.test> body=7bit size=0', code: 250 },
      { line: 'MAIL FROM:<jöe@exämple.test> SMTPUTF8', code: 250 },
      { line: 'MAIL FROM:<> SIZE=100', code: 250 },
    ];
    for (const p of params) {
      it(`${p.line} → ${p.code ?? p.reply}`, async () => {
        const { session: s } = await session();
        const reply = await s.command(p.line);
        if (p.code) {
          assert.equal(reply.code, p.code, reply.text);
        } else {
          assert.match(reply.text, p.reply!);
          // The session goes on: the next MAIL is answered on its own merits.
          assert.equal((await s.command('MAIL FROM:<alice@acme.test>')).code, 250);
          const sender = /^MAIL FROM:<([^>]*)>/.exec(p.line)![1];
          const line = await world.gw.waitForLog((l) => l.msg === 'sender refused' && l.sender === sender);
          assert.equal(line.code, reply.code);
          assert.equal(line.enhancedCode, /^\d{3} (\d\.\d\.\d)/.exec(reply.text)![1]);
          assert.equal(line.outcome, 'rejected');
          assert.match(String(line.queueId), /^[0-9A-F-]{36}\.\d+$/i);
        }
        await s.quit();
      });
    }

    it('a non-ASCII recipient needs SMTPUTF8 on MAIL FROM: 553 5.6.7 without it, looked up with it', async () => {
      const rcpt = `bób@${GATEWAY_DOMAIN}`;
      const { session: plain } = await session('utf8-rcpt-plain.test');
      assert.equal((await plain.command('MAIL FROM:<alice@acme.test>')).code, 250);
      const refused = await plain.command(`RCPT TO:<${rcpt}>`);
      assert.match(refused.text, /^553 5\.6\.7 Non-ASCII recipient address requires the SMTPUTF8 parameter on MAIL FROM$/);
      const line = await world.gw.waitForLog((l) => l.msg === 'recipient refused' && l.helo === 'utf8-rcpt-plain.test');
      assert.equal(line.enhancedCode, '5.6.7');
      await plain.quit();
      const { session: declared } = await session('utf8-rcpt-declared.test');
      assert.equal((await declared.command('MAIL FROM:<alice@acme.test> SMTPUTF8')).code, 250);
      // Past the syntax check, to the lookup: nobody has this address.
      assert.match((await declared.command(`RCPT TO:<${rcpt}>`)).text, /^550 5\.1\.1 /);
      await declared.quit();
    });

    it('a client sending the usual parameters (nodemailer: BODY, SIZE) still delivers', async () => {
      const sent = await sendMail(world.gw.port, { from: 'alice@acme.test', to: [world.bob.forwardingAddress] }, plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'with params' }), { size: 2000 });
      assert.equal(sent.ok, true, sent.response);
    });
  });
});
