/**
 * Authenticate SMTP: a real login (EHLO, STARTTLS or implicit TLS, AUTH,
 * QUIT) against servers on loopback, and each failure named precisely.
 */
import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mongoose from 'mongoose';
import { SMTPServer } from 'smtp-server';
import { createMailAccount, createUser, SYSTEM_ACTOR, updateMailAccount, type Viewer } from '../../gateway/accounts';
import { authenticateMailAccountSmtp, authenticateSmtp, classifySmtpError, smtpServer, smtpSettingsFor, type SendingAccount, type SmtpSettings } from '../../gateway/send';
import { generateTestCertificates } from '../support/certs';
import { openTestStore } from '../support/store';
import { GATEWAY_DOMAIN, newSecretBox, startRecordingSmtp, type RecordingSmtp, type TestStore } from './support';

const settings = (over: Partial<SmtpSettings> & { user?: string; pass?: string }): SmtpSettings => ({
  host: over.host ?? '127.0.0.1',
  port: over.port ?? 0,
  tls: over.tls ?? 'starttls',
  auth: { type: 'password', user: over.user ?? 'bob@acme.test', pass: over.pass ?? 'right-password' },
});

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

describe('send: Authenticate SMTP', function () {
  this.timeout(30_000);
  let starttls: RecordingSmtp;
  let implicit: RecordingSmtp;

  before(async () => {
    starttls = await startRecordingSmtp({ tls: 'starttls', users: { 'bob@acme.test': 'right-password' } });
    implicit = await startRecordingSmtp({ tls: 'implicit', users: { 'bob@acme.test': 'right-password' } });
  });
  after(async () => {
    await starttls?.stop();
    await implicit?.stop();
  });

  it('logs in over STARTTLS (587-style) and over implicit TLS (465-style)', async () => {
    assert.deepEqual(await authenticateSmtp(settings({ port: starttls.port, tls: 'starttls' }), { timeoutMs: 5000 }), { ok: true });
    assert.deepEqual(await authenticateSmtp(settings({ port: implicit.port, tls: 'implicit' }), { timeoutMs: 5000 }), { ok: true });
    assert.ok(starttls.logins.includes('bob@acme.test') && implicit.logins.includes('bob@acme.test'), 'AUTH really happened');
  });

  it('logs in by host name too, with the certificate checked against the name (both TLS modes)', async () => {
    // The test certificate names localhost: a login through the checked address passes only if TLS still uses the name.
    assert.deepEqual(await authenticateSmtp(settings({ host: 'localhost', port: starttls.port, tls: 'starttls' }), { timeoutMs: 5000 }), { ok: true });
    assert.deepEqual(await authenticateSmtp(settings({ host: 'localhost', port: implicit.port, tls: 'implicit' }), { timeoutMs: 5000 }), { ok: true });
  });

  it('a wrong password is AUTH_FAILED with the server\'s text, never the password', async () => {
    const result = await authenticateSmtp(settings({ port: starttls.port, pass: 'wrong-password-123' }), { timeoutMs: 5000 });
    assert.equal(result.ok, false);
    if (result.ok) return;
    assert.equal(result.error.code, 'AUTH_FAILED');
    assert.match(result.error.message, /rejected the user name or password: "535 5\.7\.8 Username and Password not accepted"/);
    assert.doesNotMatch(result.error.message, /wrong-password-123/);
  });

  it('a closed port is CONNECTION_REFUSED naming host and port', async () => {
    const port = await closedPort();
    const result = await authenticateSmtp(settings({ port }), { timeoutMs: 5000 });
    assert.ok(!result.ok && result.error.code === 'CONNECTION_REFUSED', JSON.stringify(result));
    assert.match(result.error.message, new RegExp(`127\\.0\\.0\\.1:${port} refused the connection`));
  });

  it('an unknown host is HOST_NOT_FOUND', async () => {
    const result = await authenticateSmtp(settings({ host: 'smtp.does-not-exist.invalid', port: 587 }), { timeoutMs: 5000 });
    assert.ok(!result.ok && result.error.code === 'HOST_NOT_FOUND', JSON.stringify(result));
    assert.match(result.error.message, /smtp\.does-not-exist\.invalid was not found/);
  });

  it('TLS against a server that does not speak it from the start is TLS_ERROR', async () => {
    const result = await authenticateSmtp(settings({ port: starttls.port, tls: 'implicit' }), { timeoutMs: 5000 });
    assert.ok(!result.ok && result.error.code === 'TLS_ERROR', JSON.stringify(result));
    assert.match(result.error.message, /465 uses TLS from the start, 587 uses STARTTLS/);
  });

  it('a certificate from a CA the machine does not trust is TLS_ERROR (verification is never turned off)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-untrusted-'));
    const untrusted = generateTestCertificates(dir);
    const server = new SMTPServer({ secure: true, key: fs.readFileSync(untrusted.keyFile), cert: fs.readFileSync(untrusted.certFile), logger: false, onAuth: (_a, _s, cb) => cb(null, { user: 'x' }) });
    server.on('error', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (server.server.address() as net.AddressInfo).port;
      const result = await authenticateSmtp(settings({ port, tls: 'implicit' }), { timeoutMs: 5000 });
      assert.ok(!result.ok && result.error.code === 'TLS_ERROR', JSON.stringify(result));
      assert.match(result.error.message, /certificate/i);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('"starttls" never falls back to a plaintext login when the server does not offer STARTTLS', async () => {
    const logins: string[] = [];
    const plain = new SMTPServer({ hideSTARTTLS: true, allowInsecureAuth: true, logger: false, onAuth: (auth, _s, cb) => { logins.push(auth.username ?? ''); cb(null, { user: 'x' }); } });
    plain.on('error', () => undefined);
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (plain.server.address() as net.AddressInfo).port;
      const result = await authenticateSmtp(settings({ port, tls: 'starttls' }), { timeoutMs: 5000 });
      assert.ok(!result.ok && result.error.code === 'TLS_ERROR', JSON.stringify(result));
      assert.deepEqual(logins, [], 'the password was never sent in the clear');
      assert.deepEqual(await authenticateSmtp(settings({ port, tls: 'none' }), { timeoutMs: 5000 }), { ok: true }, 'only when the user chose "none"');
    } finally {
      await new Promise<void>((resolve) => plain.close(() => resolve()));
    }
  });

  it('a server that accepts the connection but never greets is TIMEOUT', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const result = await authenticateSmtp(settings({ port }), { timeoutMs: 800 });
      assert.ok(!result.ok && result.error.code === 'TIMEOUT', JSON.stringify(result));
      assert.match(result.error.message, /did not answer in time/);
    } finally {
      silent.close();
    }
  });

  it('classifies 4xx replies as temporary and 5xx by the command that got them (table)', () => {
    const reply = (response: string, command: string, code = 'EENVELOPE') => Object.assign(new Error(`failed: ${response}`), { code, response, responseCode: Number(response.slice(0, 3)), command });
    const cases: Array<[Error, string, boolean]> = [
      [reply('451 4.3.0 Try later', 'DATA', 'EMESSAGE'), 'SMTP_TEMPORARY', true],
      [reply('421 4.7.0 Too many connections', 'CONN', 'ECONNECTION'), 'SMTP_TEMPORARY', true],
      [reply('550 5.1.1 No such user', 'RCPT TO'), 'RECIPIENT_REFUSED', false],
      [reply('553 5.7.1 Sender not owned by user', 'MAIL FROM'), 'SENDER_REFUSED', false],
      [reply('554 5.7.1 Message rejected as spam', 'DATA', 'EMESSAGE'), 'MESSAGE_REFUSED', false],
      [reply('552 5.3.4 Message too big', 'DATA', 'EMESSAGE'), 'MESSAGE_TOO_LARGE', false],
      [reply('535 5.7.8 Bad credentials', 'AUTH PLAIN', 'EAUTH'), 'AUTH_FAILED', false],
      [reply('534 5.7.9 Application-specific password required', 'AUTH PLAIN', 'EAUTH'), 'AUTH_FAILED', false],
      [reply('454 4.7.0 Temporary authentication failure', 'AUTH PLAIN', 'EAUTH'), 'SMTP_TEMPORARY', true],
      [Object.assign(new Error('Connection closed unexpectedly'), { code: 'ECONNECTION' }), 'CONNECTION_REFUSED', true],
      [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ESOCKET', originalCode: 'ECONNREFUSED' }), 'CONNECTION_REFUSED', true],
      [Object.assign(new Error('Greeting never received'), { code: 'ETIMEDOUT', originalCode: 'GREETING_TIMEOUT' }), 'TIMEOUT', true],
      [Object.assign(new Error('getaddrinfo ENOTFOUND x.invalid'), { code: 'EDNS', originalCode: 'ENOTFOUND' }), 'HOST_NOT_FOUND', true],
      [Object.assign(new Error('self-signed certificate'), { code: 'ESOCKET', originalCode: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'TLS_ERROR', false],
    ];
    for (const [err, code, transient] of cases) {
      const result = classifySmtpError(err, { host: 'smtp.example.com', port: 587 });
      assert.equal(result.error.code, code, `${err.message} → ${result.error.code}`);
      assert.equal(result.transient, transient, `${err.message} transient`);
      assert.ok(result.error.message.length > 10);
    }
  });
});

describe('send: SMTP settings of an account (preset or custom, same credentials unless others are given)', function () {
  this.timeout(30_000);
  let store: TestStore;
  let smtp: RecordingSmtp;
  const secretBox = newSecretBox();
  let viewer: Viewer;
  let ownerId: string;

  before(async () => {
    store = await openTestStore('send_settings');
    smtp = await startRecordingSmtp({ tls: 'starttls' });
    const user = await createUser(store, { email: 'owner@acme.test', password: 'correct-horse-battery-staple' });
    ownerId = user.id;
    viewer = { id: new mongoose.Types.ObjectId(user.id), role: 'employee' };
  });
  after(async () => {
    await smtp?.stop();
    await store?.drop();
  });

  it('takes host/port/TLS from the SMTP preset of the IMAP service when nothing else was set, and the IMAP credentials', async () => {
    const account = await createMailAccount(store, ownerId, 'someone@gmail.com', { gatewayDomain: GATEWAY_DOMAIN });
    await updateMailAccount({ store, secretBox, actor: SYSTEM_ACTOR }, viewer, account.id, { imap: { service: 'gmail', username: 'someone@gmail.com', password: 'imap-app-password' } });
    const doc = (await store.models.MailAccount.findById(account.id).lean()) as unknown as SendingAccount;
    assert.deepEqual(smtpServer(doc), { host: 'smtp.gmail.com', port: 465, tls: 'implicit' });
    const resolved = smtpSettingsFor(doc, secretBox);
    assert.deepEqual(resolved.auth, { type: 'password', user: 'someone@gmail.com', pass: 'imap-app-password' });

    await updateMailAccount({ store, secretBox, actor: SYSTEM_ACTOR }, viewer, account.id, { smtp: { service: 'outlook' } });
    const outlook = (await store.models.MailAccount.findById(account.id).lean()) as unknown as SendingAccount;
    assert.deepEqual(smtpServer(outlook), { host: 'smtp.office365.com', port: 587, tls: 'starttls' });
  });

  it('uses other credentials when the user gives them, and names what is missing', async () => {
    const account = await createMailAccount(store, ownerId, 'me@custom.test', { gatewayDomain: GATEWAY_DOMAIN });
    const missing = (await store.models.MailAccount.findById(account.id).lean()) as unknown as SendingAccount;
    assert.throws(() => smtpSettingsFor(missing, secretBox), (err: { fields?: Record<string, string> }) => {
      assert.deepEqual(Object.keys(err.fields ?? {}).sort(), ['imap.password', 'imap.username', 'smtp.host', 'smtp.port']);
      return true;
    });
    await updateMailAccount({ store, secretBox, actor: SYSTEM_ACTOR }, viewer, account.id, {
      imap: { username: 'imap-user', password: 'imap-pass' },
      smtp: { service: 'custom', host: '127.0.0.1', port: smtp.port, tls: 'starttls', sameCredentials: false, username: 'smtp-user', password: 'smtp-pass' },
    });
    const doc = (await store.models.MailAccount.findById(account.id).lean()) as unknown as SendingAccount;
    assert.deepEqual(smtpSettingsFor(doc, secretBox).auth, { type: 'password', user: 'smtp-user', pass: 'smtp-pass' });
    assert.doesNotMatch(JSON.stringify(doc), /smtp-pass/, 'sealed at rest');

    // The account-level step records the outcome: failing with the reason, then authenticated.
    const failed = await authenticateMailAccountSmtp({ store, secretBox, actor: SYSTEM_ACTOR, timeoutMs: 5000 }, viewer, account.id);
    assert.equal(failed.error?.code, 'AUTH_FAILED');
    assert.equal(failed.account.smtp.lastErrorCode, 'AUTH_FAILED');
    assert.equal(failed.account.smtp.authenticatedAt, null);
    smtp.addUser('smtp-user', 'smtp-pass');
    const ok = await authenticateMailAccountSmtp({ store, secretBox, actor: SYSTEM_ACTOR, timeoutMs: 5000 }, viewer, account.id);
    assert.equal(ok.error, null);
    assert.ok(ok.account.smtp.authenticatedAt);
    assert.equal(ok.account.smtp.lastError, '');
    const audit = await store.models.AuditEvent.find({ targetId: account.id, action: /^account\.smtp\./ }).sort({ at: 1 }).lean();
    assert.deepEqual(audit.map((a) => a.action), ['account.smtp.failed', 'account.smtp.authenticated']);
    assert.doesNotMatch(JSON.stringify(audit), /smtp-pass/);
  });
});
