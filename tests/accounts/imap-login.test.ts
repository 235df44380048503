import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { authenticateImap, classifyImapError, explainPasswordLoginFailure } from '../../gateway/accounts';
import { AppError } from '../../gateway/core/errors';
import { freePort } from '../../gateway/store/embedded-ferretdb';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';

const USER = 'imap-login@acme.test';
const PASSWORD = 'right-app-password';

describe('accounts: authenticateImap against a real Dovecot', () => {
  let dovecot: DovecotServer;
  before(async () => {
    dovecot = await shared('dovecot', () => startDovecot());
    await dovecot.addUser(USER, PASSWORD);
  });

  it('logs in over implicit TLS (993-style) with the right password', async () => {
    const result = await authenticateImap({ host: dovecot.host, port: dovecot.tlsPort, tls: 'implicit', username: USER, password: PASSWORD });
    assert.deepEqual(result, { ok: true });
  });

  it('logs in over STARTTLS (143-style) with the right password', async () => {
    const result = await authenticateImap({ host: dovecot.host, port: dovecot.port, tls: 'starttls', username: USER, password: PASSWORD });
    assert.deepEqual(result, { ok: true });
  });

  it('reports a wrong password as AUTH_FAILED with the server text', async () => {
    const result = await authenticateImap({ host: dovecot.host, port: dovecot.tlsPort, tls: 'implicit', username: USER, password: 'wrong-password' });
    assert.equal(result.ok, false);
    if (result.ok) return;
    assert.equal(result.error.code, 'AUTH_FAILED');
    assert.equal(result.error.status, 422);
    assert.match(result.error.message, /rejected the user name or password: "Authentication failed\."/);
    assert.doesNotMatch(result.error.message, /wrong-password/, 'never echoes the password');
  });

  it('says that Microsoft\'s servers take no password at all, instead of "check the password"', async () => {
    const result = await authenticateImap({ host: dovecot.host, port: dovecot.tlsPort, tls: 'implicit', username: USER, password: 'an-app-password' });
    assert.equal(result.ok, false);
    if (result.ok) return;
    for (const host of ['outlook.office365.com', 'imap-mail.outlook.com', 'Outlook.Office.com.']) {
      const explained = explainPasswordLoginFailure(result.error, host);
      assert.equal(explained.code, 'AUTH_FAILED');
      assert.equal(explained.status, 422);
      assert.match(explained.message, /no longer accept passwords for IMAP, not even app passwords\. Use "Sign in with Microsoft" instead/, host);
      assert.match(explained.message, /\("Authentication failed\."\)/, 'the server\'s own words are kept');
    }
    // Every other server: the password may well be wrong.
    assert.equal(explainPasswordLoginFailure(result.error, 'imap.gmail.com'), result.error);
    assert.equal(explainPasswordLoginFailure(result.error, 'outlook.com.evil.test'), result.error);
  });

  it('reports a temporary failure of the server\'s authentication (NO [UNAVAILABLE]) as SERVER_UNAVAILABLE, not a wrong password', async () => {
    const user = 'imap-login-unavailable@acme.test';
    await dovecot.addUser(user, PASSWORD);
    await dovecot.failAuth(user, true);
    try {
      const result = await authenticateImap({ host: dovecot.host, port: dovecot.tlsPort, tls: 'implicit', username: user, password: PASSWORD });
      assert.equal(result.ok, false);
      if (result.ok) return;
      assert.equal(result.error.code, 'SERVER_UNAVAILABLE', result.error.message);
      assert.match(result.error.message, /could not check the user name and password just now \(UNAVAILABLE: "Temporary authentication failure\./);
      assert.match(result.error.message, /not a wrong password: try again in a few minutes/);
      assert.doesNotMatch(result.error.message, /rejected/);
    } finally {
      await dovecot.failAuth(user, false);
    }
    assert.deepEqual(await authenticateImap({ host: dovecot.host, port: dovecot.tlsPort, tls: 'implicit', username: user, password: PASSWORD }), { ok: true });
  });

  it('reports TLS_ERROR when TLS is expected but the port speaks plain IMAP', async () => {
    const result = await authenticateImap({ host: dovecot.host, port: dovecot.port, tls: 'implicit', username: USER, password: PASSWORD }, { timeoutMs: 5000 });
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.equal(result.error.code, 'TLS_ERROR', result.error.message);
      // OpenSSL's own line (error codes, source file paths) is cut to its reason.
      assert.match(result.error.message, /failed: the server did not answer in TLS on this port \(wrong version number\)\. Check the TLS setting: 993 uses TLS from the start, 143 uses STARTTLS\./);
      assert.doesNotMatch(result.error.message, /SSL routines|openssl|:error:/);
    }
  });

  it('reports TLS_ERROR for a server certificate nobody trusts (verification is never skipped)', async () => {
    // A self-signed certificate made here, not signed by the test CA: an IMAP server with it greets over TLS.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-untrusted-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', path.join(dir, 'key.pem'),
      '-out', path.join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const server = tls.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) }, (socket) => {
      socket.write('* OK IMAP4rev1 ready\r\n');
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as net.AddressInfo;
      const result = await authenticateImap({ host: '127.0.0.1', port, tls: 'implicit', username: USER, password: PASSWORD }, { timeoutMs: 5000 });
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.equal(result.error.code, 'TLS_ERROR', result.error.message);
        assert.match(result.error.message, /self[- ]signed/i);
      }
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports CONNECTION_REFUSED for a closed port', async () => {
    const port = await freePort();
    const result = await authenticateImap({ host: '127.0.0.1', port, tls: 'implicit', username: USER, password: PASSWORD });
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.equal(result.error.code, 'CONNECTION_REFUSED');
      assert.match(result.error.message, new RegExp(`127\\.0\\.0\\.1:${port} refused the connection`));
    }
  });

  it('reports HOST_NOT_FOUND for a name that does not resolve', async () => {
    const result = await authenticateImap({ host: 'imap.does-not-exist.invalid', port: 993, tls: 'implicit', username: USER, password: PASSWORD }, { timeoutMs: 10000 });
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.equal(result.error.code, 'HOST_NOT_FOUND');
      assert.match(result.error.message, /imap\.does-not-exist\.invalid was not found/);
    }
  });

  it('says a server that answers but is not IMAP (an SMTP port) never greeted, within the limit', async () => {
    const smtp = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.write('220 mx.acme.test ESMTP ready\r\n');
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
    const { port } = smtp.address() as net.AddressInfo;
    try {
      const result = await authenticateImap({ host: '127.0.0.1', port, tls: 'none', username: USER, password: PASSWORD }, { timeoutMs: 1500 });
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.equal(result.error.code, 'TIMEOUT');
        assert.match(result.error.message, /GREETING_TIMEOUT\)\. The server never greeted: is this an IMAP port, and is the TLS setting right\?/);
      }
    } finally {
      await new Promise<void>((resolve) => { smtp.close(() => resolve()); smtp.unref(); });
    }
  });

  it('reports TIMEOUT when the server accepts but never greets, within the limit', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const started = Date.now();
      const result = await authenticateImap({ host: '127.0.0.1', port, tls: 'none', username: USER, password: PASSWORD }, { timeoutMs: 600 });
      const took = Date.now() - started;
      assert.equal(result.ok, false);
      if (!result.ok) assert.equal(result.error.code, 'TIMEOUT');
      assert.ok(took < 5000, `gave up after ${took} ms; the limit is the caller's`);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe('accounts: classifyImapError (the table the syncer reuses)', () => {
  const cases: Array<[string, unknown, string]> = [
    ['imapflow auth failure', Object.assign(new Error('Command failed'), { authenticationFailed: true, responseText: 'Invalid credentials (Failure)' }), 'AUTH_FAILED'],
    ['AUTHENTICATIONFAILED response code', Object.assign(new Error('x'), { serverResponseCode: 'AUTHENTICATIONFAILED' }), 'AUTH_FAILED'],
    ['a refused login with EXPIRED (RFC 5530)', Object.assign(new Error('Command failed'), { authenticationFailed: true, serverResponseCode: 'EXPIRED' }), 'AUTH_FAILED'],
    ['a refused login with UNAVAILABLE (RFC 5530)', Object.assign(new Error('Command failed'), { authenticationFailed: true, serverResponseCode: 'UNAVAILABLE', responseText: 'Temporary System Error' }), 'SERVER_UNAVAILABLE'],
    ['a refused login with INUSE (RFC 5530)', Object.assign(new Error('Command failed'), { authenticationFailed: true, serverResponseCode: 'INUSE' }), 'SERVER_UNAVAILABLE'],
    ['DNS ENOTFOUND', Object.assign(new Error('getaddrinfo ENOTFOUND x'), { code: 'ENOTFOUND' }), 'HOST_NOT_FOUND'],
    ['DNS EAI_AGAIN', Object.assign(new Error('getaddrinfo EAI_AGAIN x'), { code: 'EAI_AGAIN' }), 'HOST_NOT_FOUND'],
    ['refused', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'CONNECTION_REFUSED'],
    ['unreachable', Object.assign(new Error('connect EHOSTUNREACH'), { code: 'EHOSTUNREACH' }), 'CONNECTION_REFUSED'],
    ['connect timeout', Object.assign(new Error('Failed to establish connection in required time'), { code: 'CONNECT_TIMEOUT' }), 'TIMEOUT'],
    ['greeting timeout', Object.assign(new Error('Failed to receive greeting'), { code: 'GREETING_TIMEOUT' }), 'TIMEOUT'],
    ['socket timeout', Object.assign(new Error('Socket timeout'), { code: 'ETIMEOUT' }), 'TIMEOUT'],
    ['self-signed', Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'TLS_ERROR'],
    ['altname', Object.assign(new Error("Hostname/IP does not match certificate's altnames"), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }), 'TLS_ERROR'],
    ['wrong version', Object.assign(new Error('wrong version number'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' }), 'TLS_ERROR'],
    ['wrapped cause', Object.assign(new Error('outer'), { cause: Object.assign(new Error('inner'), { code: 'ECONNREFUSED' }) }), 'CONNECTION_REFUSED'],
    ['connection gone under a command', Object.assign(new Error('Connection not available'), { code: 'NoConnection' }), 'CONNECTION_LOST'],
    ['closed before the greeting, with a BYE', Object.assign(new Error('Unexpected close'), { code: 'ClosedAfterConnectText', reason: 'Too many connections' }), 'CONNECTION_LOST'],
    ['anything else', new Error('BAD unexpected'), 'IMAP_ERROR'],
    ['not even an error', 'a string', 'IMAP_ERROR'],
    ['undefined', undefined, 'IMAP_ERROR'],
  ];
  it('quotes the BYE of a server that closed the connection', () => {
    const error = classifyImapError(Object.assign(new Error('Unexpected close'), { code: 'ClosedAfterConnectText', reason: 'Too many connections' }), { host: 'imap.acme.test', port: 993 });
    assert.equal(error.message, 'The connection to imap.acme.test:993 was lost (ClosedAfterConnectText): the server said "Too many connections". Check that the server is up; the sync picks up where it stopped.');
  });
  for (const [name, input, code] of cases) {
    it(`${name} → ${code}`, () => {
      const error = classifyImapError(input, { host: 'imap.acme.test', port: 993 });
      assert.ok(error instanceof AppError);
      assert.equal(error.code, code);
      assert.equal(error.status, 422);
      assert.ok(error.message.length > 10);
    });
  }
});
