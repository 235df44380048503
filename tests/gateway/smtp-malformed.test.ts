import { strict as assert } from 'node:assert';
import { useGatewayWorld } from '../support/gateway';
import { plainMessage } from '../support/mail-auth';
import { sendMail, SmtpSession } from '../support/smtp';
import { storedRaw } from '../support/store';

/**
 * Thirty malformed messages, generated here, sent byte for byte. Each is
 * either stored (raw bytes kept, fields as far as they parse, `parseError`
 * when parsing failed) or refused with a clear SMTP code — and the same
 * Haraka process keeps serving throughout.
 */

interface Fixture {
  name: string;
  raw: Buffer;
  /** Expected reply code; default 250. */
  code?: number;
  /** Text the reply must contain (for refusals). */
  reply?: RegExp;
  /** Send as is: no dot-stuffing, no CRLF repair (bare LF fixtures). */
  verbatim?: boolean;
  /** A string the stored raw copy must contain. */
  marker?: string;
}

const CRLF = '\r\n';
const lines = (...parts: string[]) => Buffer.from(parts.join(CRLF) + CRLF, 'latin1');
const head = (subject: string, extra: string[] = []) => [`From: alice@acme.test`, `To: bob@acme.test`, `Subject: ${subject}`, `Date: Thu, 05 Nov 2026 10:00:00 +0000`, ...extra];

function nested(depth: number, boundaryFor: (level: number) => string): string[] {
  const out: string[] = [];
  for (let level = 0; level < depth; level++) {
    out.push(`--${boundaryFor(level)}`, `Content-Type: multipart/mixed; boundary="${boundaryFor(level + 1)}"`, '');
  }
  out.push(`--${boundaryFor(depth)}`, 'Content-Type: text/plain', '', 'innermost marker-nested', `--${boundaryFor(depth)}--`);
  for (let level = depth - 1; level >= 0; level--) out.push(`--${boundaryFor(level)}--`);
  return out;
}

function fixtures(): Fixture[] {
  return [
    { name: 'boundary declared but parts use another', marker: 'marker-01', raw: lines(...head('m01', ['MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="AAA"']), '', '--BBB', 'Content-Type: text/plain', '', 'marker-01', '--BBB--') },
    { name: 'closing boundary missing', marker: 'marker-02', raw: lines(...head('m02', ['MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary="b"']), '', '--b', 'Content-Type: text/plain', '', 'marker-02', '--b', 'Content-Type: text/html', '', '<p>unterminated') },
    { name: 'multipart with no parts at all', marker: 'marker-03', raw: lines(...head('m03 marker-03', ['MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="empty"']), '', 'just a preamble') },
    { name: 'multipart without a boundary parameter', marker: 'marker-04', raw: lines(...head('m04', ['MIME-Version: 1.0', 'Content-Type: multipart/mixed']), '', '--x', '', 'marker-04') },
    { name: 'multiparts nested 120 deep', marker: 'marker-nested', raw: lines(...head('m05', ['MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="L0"']), '', ...nested(120, (l) => `L${l}`)) },
    { name: 'nested multiparts reusing one boundary', marker: 'marker-nested', raw: lines(...head('m06', ['MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="same"']), '', ...nested(20, () => 'same')) },
    { name: 'invalid base64', marker: 'marker-07', raw: lines(...head('m07 marker-07', ['MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: base64']), '', '!!!! not base64 $$$$ ####', 'SGVsbG8=====ZZZ') },
    { name: 'truncated base64 attachment', marker: 'marker-08', raw: lines(...head('m08 marker-08', ['MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="t"']), '', '--t', 'Content-Type: application/pdf; name="a.pdf"', 'Content-Transfer-Encoding: base64', '', 'JVBERi0xLjQKJ', '--t--') },
    { name: 'broken quoted-printable', marker: 'marker-09', raw: lines(...head('m09', ['MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable']), '', 'marker-09 =ZZ =4 =', 'soft break at end =') },
    { name: 'unknown charset', marker: 'marker-10', raw: lines(...head('m10', ['MIME-Version: 1.0', 'Content-Type: text/plain; charset=x-no-such-charset']), '', 'marker-10 caf\xe9') },
    { name: 'utf-8 declared, latin-1 bytes sent', marker: 'marker-11', raw: lines(...head('m11', ['MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit']), '', 'marker-11 na\xefve fa\xe7ade \xff\xfe') },
    { name: '8-bit UTF-8 header without encoded-words', marker: 'marker-12', raw: Buffer.concat([Buffer.from(`From: Zoë Ünïcödé <zoe@acme.test>\r\nTo: bob@acme.test\r\nSubject: Grüße aus Köln — ✓\r\n\r\nmarker-12\r\n`, 'utf8')]) },
    { name: '8-bit latin-1 header bytes (not UTF-8)', marker: 'marker-13', raw: lines('From: J\xfcrgen M\xfcller <j@acme.test>', 'To: bob@acme.test', 'Subject: \xc4nderung \xfcber \xdcbergabe', '', 'marker-13') },
    { name: 'broken encoded-words', marker: 'marker-14', raw: lines(...head('=?utf-8?B?!!!notbase64?= =?x-bad?Q?=ZZ?= =?utf-8?Q?unterminated'), '', 'marker-14') },
    { name: 'no From header', marker: 'marker-15', raw: lines('To: bob@acme.test', 'Subject: m15', '', 'marker-15') },
    { name: 'no Date and no Message-ID', marker: 'marker-16', raw: lines('From: alice@acme.test', 'Subject: m16', '', 'marker-16') },
    { name: 'no header section at all', marker: 'marker-17', raw: lines('', 'marker-17 a body without headers') },
    { name: 'headers only, no separator, no body', marker: 'marker-18', raw: lines('From: alice@acme.test', 'Subject: m18 marker-18') },
    { name: 'one huge folded Subject (200 KB)', marker: 'marker-19', raw: lines('From: alice@acme.test', `Subject: marker-19 ${Array.from({ length: 2600 }, (_, i) => `word${i} `.repeat(10)).join('\r\n ')}`, '', 'body') },
    { name: '2000 header lines', marker: 'marker-20', raw: lines(...head('m20'), ...Array.from({ length: 2000 }, (_, i) => `X-Filler-${i}: value ${i}`), '', 'marker-20') },
    { name: 'header line without a colon', marker: 'marker-21', raw: lines('From: alice@acme.test', 'This is not a header line', 'Subject: m21', '', 'marker-21') },
    { name: 'NUL bytes in headers and body', marker: 'marker-22', raw: lines('From: alice@acme.test', 'Subject: m22 \x00 nul', '', 'marker-22 \x00\x00 after nul') },
    { name: 'unparseable address lists', marker: 'marker-23', raw: lines('From: <<<@@@>>>, "unterminated <x@', 'To: ;;;, @, bob@, @acme.test', 'Cc: undisclosed-recipients:;', 'Subject: m23', '', 'marker-23') },
    { name: 'broken message/rfc822 attachment', marker: 'marker-24', raw: lines(...head('m24', ['MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="o"']), '', '--o', 'Content-Type: message/rfc822', '', 'From: <<<', 'Content-Type: multipart/mixed; boundary="i"', '', '--i', 'marker-24', '--o--') },
    { name: 'a 100 KB line', marker: 'marker-25', raw: lines(...head('m25'), '', `marker-25 ${'y'.repeat(100 * 1024)}`) },
    { name: 'unknown transfer encoding and RFC 2231 garbage', marker: 'marker-26', raw: lines(...head('m26', ['MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="u"']), '', '--u', "Content-Type: text/plain; name*0*=utf-8''%ZZ%; name*2=gap", 'Content-Disposition: attachment; filename*=x-bad\'\'%%%', 'Content-Transfer-Encoding: x-martian', '', 'marker-26', '--u--') },
    { name: 'date that is not a date', marker: 'marker-27', raw: lines('From: alice@acme.test', 'Date: yesterday around noon', 'Subject: m27', '', 'marker-27') },
    { name: 'empty message', raw: Buffer.alloc(0) },
    {
      // RFC 5321 §2.3.8; a permanent refusal, so the sender does not retry the same bytes forever.
      name: 'bare LF line ends (SMTP smuggling guard)',
      verbatim: true,
      code: 554,
      reply: /^554 5\.5\.2 Bare line feed in message data; lines must end with CRLF/,
      raw: Buffer.from('From: alice@acme.test\nSubject: m29\n\nbare lf body\r\n.\r\n'),
    },
    {
      name: 'bare LF throughout, ending with LF.LF',
      verbatim: true,
      code: 554,
      reply: /^554 5\.5\.2 Bare line feed/,
      raw: Buffer.from('From: alice@acme.test\nSubject: m32\n\nbare lf body\n.\n'),
    },
    {
      // Haraka counts MIME parts only when it parses bodies itself (Postroom leaves parsing to mailparser): stored.
      name: '1200 MIME parts',
      marker: 'part 1199',
      raw: lines(...head('m30', ['MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="p"']), '', ...Array.from({ length: 1200 }, (_, i) => [`--p`, 'Content-Type: text/plain', '', `part ${i}`]).flat(), '--p--'),
    },
    {
      // RFC 5321 §6.3 (threshold of at least 100), RFC 3463 X.4.6 routing loop; the gateway's own Received line counts too.
      name: 'a mail loop: 150 Received headers',
      code: 554,
      reply: /^554 5\.4\.6 Too many Received headers \(151, limit 100\): mail loop detected$/,
      raw: lines(...Array.from({ length: 150 }, (_, i) => `Received: from hop${i}.test by hop${i + 1}.test; Thu, 05 Nov 2026 10:00:00 +0000`), ...head('m31'), '', 'loop'),
    },
    {
      name: '99 Received headers (100 with ours: at the limit, not over it)',
      marker: 'marker-33',
      raw: lines(...Array.from({ length: 99 }, (_, i) => `Received: from hop${i}.test by hop${i + 1}.test; Thu, 05 Nov 2026 10:00:00 +0000`), ...head('m33'), '', 'marker-33'),
    },
  ];
}

describe('SMTP gateway: malformed messages', function () {
  this.timeout(180000);
  let pid: number | undefined;

  const world = useGatewayWorld('gw_malformed');
  before(() => {
    pid = world.gw.gateway.pid;
  });

  const all = fixtures();
  it('has thirty or more fixtures', () => assert.ok(all.length >= 30, String(all.length)));

  for (const fixture of all) {
    it(`${fixture.name} → ${fixture.code ?? 250}`, async () => {
      const { session } = await SmtpSession.open(world.gw.port);
      await session.command('EHLO client.test');
      assert.equal((await session.command('MAIL FROM:<alice@acme.test>')).code, 250);
      assert.equal((await session.command(`RCPT TO:<${world.bob.forwardingAddress}>`)).code, 250);
      let reply;
      if (fixture.verbatim) {
        assert.equal((await session.command('DATA')).code, 354);
        const pending = session.next();
        session.write(fixture.raw);
        reply = await pending;
      } else {
        reply = await session.data(fixture.raw);
      }
      await session.quit();

      assert.equal(reply.code, fixture.code ?? 250, reply.text);
      if (fixture.reply) assert.match(reply.text, fixture.reply);
      if ((fixture.code ?? 250) !== 250) return;

      const queueId = /\(([0-9A-F-]+\.\d+)\)\s*$/i.exec(reply.text)?.[1];
      assert.ok(queueId, `queue id in "${reply.text}"`);
      const doc = await world.store.models.Message.findOne({ 'sources.queueId': queueId }).lean();
      assert.ok(doc, 'stored');
      const stored = (await storedRaw(world.store, doc._id)).toString('latin1');
      assert.equal(doc.size, Buffer.byteLength(stored, 'latin1'));
      if (fixture.marker) assert.ok(stored.includes(fixture.marker), 'raw copy kept');
      assert.ok(doc.parseError === '' || doc.parseError.length > 0);
      assert.ok(['inbox', 'quarantine'].includes(doc.status));
    });
  }

  it('runs nothing pipelined after a bare-LF end of data (SMTP smuggling): 554, then the connection is closed', async () => {
    const { session } = await SmtpSession.open(world.gw.port);
    await session.command('EHLO client.test');
    assert.equal((await session.command('MAIL FROM:<alice@acme.test>')).code, 250);
    assert.equal((await session.command(`RCPT TO:<${world.bob.forwardingAddress}>`)).code, 250);
    assert.equal((await session.command('DATA')).code, 354);
    const reply = session.next();
    const afterwards = session.next();
    // <LF>.<CRLF> ends DATA for a server that splits lines at LF; a CRLF-only hop would pass the rest on as content.
    session.write(
      `From: alice@acme.test\r\nSubject: outer\r\n\r\nouter body\n.\r\nMAIL FROM:<ceo@acme.test>\r\nRCPT TO:<${world.bob.forwardingAddress}>\r\nDATA\r\nFrom: ceo@acme.test\r\nSubject: smuggled marker-smuggled\r\n\r\nsmuggled\r\n.\r\n`,
    );
    assert.match((await reply).text, /^554 5\.5\.2 Bare line feed/);
    assert.deepEqual(await afterwards, { code: 0, text: 'connection closed' }, 'no reply to the smuggled commands: the session is closed');
    await session.quit();
    const subjects = (await world.store.models.Message.find({ mailboxKey: world.bob.accountId.toString() }, { subject: 1 }).lean()).map((m) => m.subject);
    assert.ok(subjects.length > 0, 'the other fixtures are in the mailbox');
    assert.deepEqual(subjects.filter((subject) => /outer|marker-smuggled/.test(subject)), [], 'neither the refused message nor the smuggled one is stored');
  });

  it('kept serving with the same Haraka process throughout', async () => {
    const sent = await sendMail(world.gw.port, { from: 'alice@acme.test', to: [world.bob.forwardingAddress] }, plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'still here' }));
    assert.equal(sent.ok, true, sent.response);
    assert.equal(world.gw.gateway.pid, pid, 'no crash and restart');
    assert.equal(world.gw.logs().filter((l) => l.msg === 'Haraka exited unexpectedly; restarting').length, 0);
  });
});
