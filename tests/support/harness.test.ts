/**
 * Proves the real-service harness itself: test CA, Dovecot and DNS. Needs
 * NODE_EXTRA_CA_CERTS and POSTROOM_TEST_CERT_DIR from prepareTestEnvironment()
 * (set before the process starts), root, and dovecot-imapd + openssl.
 */
import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import dns from 'node:dns';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { ImapFlow } from 'imapflow';
import { ensureTestCertificates, generateTestCertificates } from './certs';
import { startDns, type TestDns } from './dns';
import { startDovecot, type DovecotServer } from './dovecot';

const BOB = 'bob@acme.test';
const BOB_PW = 'b0b "pass": word'; // quotes, colon and space: exercises passwd-file and IMAP quoting

function message(subject: string): string {
  return `From: alice@example.test\r\nTo: ${BOB}\r\nSubject: ${subject}\r\n` +
    `Message-ID: <${crypto.randomUUID()}@example.test>\r\n\r\nHello ${subject}\r\n`;
}

async function connect(server: DovecotServer, email = BOB, password = BOB_PW, extra: Partial<ConstructorParameters<typeof ImapFlow>[0]> = {}): Promise<ImapFlow> {
  const client = new ImapFlow({ ...server.clientOptions(email, password), logger: false, ...extra });
  client.on('error', () => undefined); // failures surface through the awaited calls
  await client.connect();
  return client;
}

async function loginError(server: DovecotServer, email: string, password: string): Promise<Error & Record<string, unknown>> {
  const client = new ImapFlow({ ...server.clientOptions(email, password), logger: false });
  client.on('error', () => undefined);
  let failure: unknown;
  try {
    await client.connect();
  } catch (err) {
    failure = err;
  } finally {
    client.close();
  }
  if (!failure) throw new Error(`login as ${email} unexpectedly succeeded`);
  return failure as Error & Record<string, unknown>;
}

function tcpConnect(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(); });
    s.once('error', reject);
  });
}

describe('test harness: certificates', () => {
  it('signs a server certificate for 127.0.0.1 and localhost with the test CA', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-certs-test-'));
    try {
      const files = generateTestCertificates(dir);
      const ca = new crypto.X509Certificate(fs.readFileSync(files.caFile));
      const cert = new crypto.X509Certificate(fs.readFileSync(files.certFile));
      assert.ok(ca.ca, 'CA certificate has CA:TRUE');
      assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'server cert is signed by the CA');
      assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
      assert.equal(cert.checkHost('localhost'), 'localhost');
      assert.equal(cert.checkHost('example.com'), undefined);
      const key = crypto.createPrivateKey(fs.readFileSync(files.keyFile));
      assert.ok(cert.checkPrivateKey(key), 'key matches certificate');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ensureTestCertificates() explains a missing POSTROOM_TEST_CERT_DIR', () => {
    const saved = process.env.POSTROOM_TEST_CERT_DIR;
    delete process.env.POSTROOM_TEST_CERT_DIR;
    try {
      assert.throws(() => ensureTestCertificates(), /POSTROOM_TEST_CERT_DIR is not set/);
    } finally {
      process.env.POSTROOM_TEST_CERT_DIR = saved;
    }
    assert.equal(ensureTestCertificates().caFile, process.env.NODE_EXTRA_CA_CERTS,
      'the process trusts the harness CA through NODE_EXTRA_CA_CERTS');
  });
});

describe('test harness: Dovecot', () => {
  let server: DovecotServer;

  before(async () => {
    server = await startDovecot({ users: { [BOB]: BOB_PW } });
  });

  after(async () => {
    await server?.stop();
  });

  it('accepts an imapflow login over implicit TLS with verification on, offering CONDSTORE', async () => {
    const client = await connect(server);
    try {
      assert.equal(client.secureConnection, true);
      assert.ok(client.capabilities.has('CONDSTORE'), 'CONDSTORE advertised');
      assert.ok(client.enabled.has('CONDSTORE'), 'imapflow enabled CONDSTORE');
      const mailbox = await client.mailboxOpen('INBOX');
      assert.equal(typeof mailbox.highestModseq, 'bigint');
    } finally {
      await client.logout();
    }
  });

  it('presents a certificate that Node verifies (and would reject for another name)', async () => {
    const handshake = (servername?: string) => new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ host: server.host, port: server.tlsPort, servername });
      s.once('secureConnect', () => resolve(s));
      s.once('error', reject);
    });
    const ok = await handshake();
    assert.equal(ok.authorized, true);
    ok.destroy();
    await assert.rejects(handshake('wrong.example'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('offers STARTTLS on the plain port and imapflow upgrades', async () => {
    const client = await connect(server, BOB, BOB_PW, { port: server.port, secure: false });
    try {
      assert.ok(client.capabilities.size > 0);
      assert.equal(client.secureConnection, true, 'connection was upgraded with STARTTLS');
    } finally {
      await client.logout();
    }
  });

  it('rejects a wrong password with authenticationFailed', async () => {
    const err = await loginError(server, BOB, 'not-the-password');
    assert.equal(err.authenticationFailed, true);
    assert.equal(err.serverResponseCode, 'AUTHENTICATIONFAILED');
  });

  it('addUser takes effect at once and setPassword replaces the password', async () => {
    const carol = `carol-${Date.now()}@acme.test`;
    await server.addUser(carol, 'first');
    await (await connect(server, carol, 'first')).logout();
    await server.setPassword(carol, 'second');
    assert.equal((await loginError(server, carol, 'first')).authenticationFailed, true);
    await (await connect(server, carol, 'second')).logout();
  });

  it('append → fetch round-trips bytes, INTERNALDATE and flags', async () => {
    const raw = message('roundtrip');
    const date = new Date('2021-03-04T05:06:07Z');
    const uid = await server.append(BOB, 'INBOX', raw, { date, flags: ['\\Seen', '\\Flagged'] });
    const client = await connect(server);
    try {
      await client.mailboxOpen('INBOX');
      const msg = await client.fetchOne(String(uid), { source: true, internalDate: true, flags: true }, { uid: true });
      assert.ok(msg, `UID ${uid} exists`);
      assert.equal(msg.source?.toString(), raw);
      assert.equal(new Date(msg.internalDate as Date | string).toISOString(), date.toISOString());
      assert.deepEqual([...(msg.flags ?? [])].filter((f) => f !== '\\Recent').sort(), ['\\Flagged', '\\Seen']);
    } finally {
      await client.logout();
    }
  });

  it('appendMany stores a large batch on one connection, creating the folder', async () => {
    const count = 1500;
    const base = Date.UTC(2020, 0, 1);
    const started = Date.now();
    await server.appendMany(BOB, 'Bulk', Array.from({ length: count }, (_, i) => ({
      raw: message(`bulk ${i}`), date: new Date(base + i * 60_000),
    })));
    const elapsed = Date.now() - started;
    const client = await connect(server);
    try {
      const status = await client.status('Bulk', { messages: true });
      assert.ok(status);
      assert.equal(status.messages, count);
      await client.mailboxOpen('Bulk');
      const last = await client.fetchOne('*', { internalDate: true, envelope: true });
      assert.ok(last);
      assert.equal(last.envelope?.subject, `bulk ${count - 1}`);
      assert.equal(new Date(last.internalDate as Date | string).getTime(), base + (count - 1) * 60_000);
    } finally {
      await client.logout();
    }
    assert.ok(elapsed < 5000, `appendMany of ${count} took ${elapsed} ms`);
  });

  const statusOf = async (client: ImapFlow, folder: string) => {
    const st = await client.status(folder, { uidValidity: true, messages: true, uidNext: true });
    assert.ok(st, `STATUS ${folder} failed`);
    return st;
  };

  it('recreateMailbox(folder) empties it under a new UIDVALIDITY, UIDs restarting at 1', async () => {
    await server.append(BOB, 'Projects', message('before'));
    const client = await connect(server);
    try {
      const before = await statusOf(client, 'Projects');
      assert.ok((before.messages ?? 0) > 0);
      await server.recreateMailbox(BOB, 'Projects');
      // An open session carries on, as with a delete + create by another client.
      const after = await statusOf(client, 'Projects');
      assert.notEqual(after.uidValidity, before.uidValidity);
      assert.equal(after.messages, 0);
      assert.equal(await server.append(BOB, 'Projects', message('after')), 1);
    } finally {
      await client.logout();
    }
  });

  it('recreateMailbox(INBOX) rebuilds INBOX the same way, disconnecting open sessions', async () => {
    await server.append(BOB, 'INBOX', message('before'));
    const old = await connect(server);
    await old.mailboxOpen('INBOX');
    const before = await statusOf(old, 'INBOX');
    const closed = new Promise<void>((resolve) => old.once('close', () => resolve()));
    await server.recreateMailbox(BOB, 'INBOX');
    await closed;
    const client = await connect(server);
    try {
      const after = await statusOf(client, 'INBOX');
      assert.notEqual(after.uidValidity, before.uidValidity);
      assert.equal(after.messages, 0);
      assert.equal(after.uidNext, 1);
      assert.equal(await server.append(BOB, 'INBOX', message('after')), 1);
    } finally {
      await client.logout();
    }
  });

  it('auto-creates Sent with the \\Sent special-use flag from the server', async () => {
    const client = await connect(server);
    try {
      const sent = (await client.list()).find((m) => m.path === 'Sent');
      assert.ok(sent, 'Sent exists');
      assert.equal(sent.specialUse, '\\Sent');
      assert.equal(sent.specialUseSource, 'extension', 'flag came from the server, not from the name');
    } finally {
      await client.logout();
    }
  });

  it('loginAttempts counts client logins, successful or not, but not harness appends', async () => {
    const dave = `dave-${Date.now()}@acme.test`;
    await server.addUser(dave, 'pw');
    assert.equal(await server.loginAttempts(dave), 0);
    await (await connect(server, dave, 'pw')).logout();
    await loginError(server, dave, 'wrong');
    await loginError(server, dave, 'wrong again');
    await server.append(dave, 'INBOX', message('not a login'));
    assert.equal(await server.loginAttempts(dave), 3);
    assert.equal(await server.loginAttempts(BOB.toUpperCase()) > 0, true, 'names are case-insensitive');
  });

  it('stop() refuses connections and leaves no processes; start() brings back the same data', async () => {
    const uid = await server.append(BOB, 'INBOX', message('survives restart'));
    await server.stop();
    await server.stop(); // idempotent
    await assert.rejects(tcpConnect(server.tlsPort), { code: 'ECONNREFUSED' });
    await assert.rejects(tcpConnect(server.port), { code: 'ECONNREFUSED' });
    const tag = path.basename(server.dir); // in every Dovecot process title / argv
    const leftovers = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try { return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(tag); } catch { return false; }
    });
    assert.deepEqual(leftovers, [], 'no Dovecot process survives stop()');

    await server.start();
    const client = await connect(server);
    try {
      await client.mailboxOpen('INBOX');
      const msg = await client.fetchOne(String(uid), { envelope: true }, { uid: true });
      assert.ok(msg);
      assert.equal(msg.envelope?.subject, 'survives restart');
    } finally {
      await client.logout();
    }
  });
});

describe('test harness: DNS', () => {
  let server: TestDns;
  let resolver: dns.promises.Resolver;

  before(async () => {
    server = await startDns();
    resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([server.address]);
  });

  after(async () => {
    await server?.stop();
  });

  const dkimRecord = (bits: number) => {
    const { publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: bits });
    return `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
  };

  it('serves a 2048-bit DKIM key as <=255-byte strings that join back intact', async () => {
    const record = dkimRecord(2048);
    server.setTxt('sel1._domainkey.acme.test', record);
    const answers = await resolver.resolveTxt('sel1._domainkey.acme.test');
    assert.equal(answers.length, 1);
    assert.ok(answers[0].length > 1, 'split into several character-strings');
    assert.ok(answers[0].every((chunk) => Buffer.byteLength(chunk) <= 255));
    assert.equal(answers[0].join(''), record);
  });

  it('serves a 4096-bit key too (too big for UDP: needs the TCP fallback)', async () => {
    const record = dkimRecord(4096);
    server.setTxt('big._domainkey.acme.test', record);
    assert.equal((await resolver.resolveTxt('big._domainkey.acme.test'))[0].join(''), record);
  });

  it('answers unknown names with NXDOMAIN (ENOTFOUND) promptly', async () => {
    const started = Date.now();
    await assert.rejects(resolver.resolveTxt('missing.acme.test'), { code: 'ENOTFOUND' });
    assert.ok(Date.now() - started < 1000, 'no timeout involved');
  });

  it('matches names case-insensitively and serves A, MX and multiple TXT records', async () => {
    server.setTxt('Acme.TEST', ['v=spf1 ip4:127.0.0.1 -all', 'other=1']);
    server.setA('MX.acme.test', '127.0.0.1');
    server.setMx('acme.test', 'mx.acme.test', 5);
    assert.deepEqual((await resolver.resolveTxt('acme.test.')).map((r) => r.join('')).sort(),
      ['other=1', 'v=spf1 ip4:127.0.0.1 -all']);
    assert.deepEqual(await resolver.resolve4('mx.ACME.test'), ['127.0.0.1']);
    assert.deepEqual(await resolver.resolveMx('acme.test'), [{ exchange: 'mx.acme.test', priority: 5 }]);
    await assert.rejects(resolver.resolve4('acme.test'), { code: 'ENODATA' }, 'known name, no A record');
  });

  it('remove() and clear() take effect on the next lookup', async () => {
    server.setA('gone.acme.test', '127.0.0.2');
    assert.deepEqual(await resolver.resolve4('gone.acme.test'), ['127.0.0.2']);
    server.remove('gone.acme.test');
    await assert.rejects(resolver.resolve4('gone.acme.test'), { code: 'ENOTFOUND' });
    server.setA('x.acme.test', '127.0.0.3');
    server.clear();
    await assert.rejects(resolver.resolve4('x.acme.test'), { code: 'ENOTFOUND' });
  });
});
