/**
 * Any employee types the host of their mailbox's IMAP and SMTP server, and
 * Authenticate tells them what it found there. Pointed at this machine (or a
 * cloud metadata address), the form would probe the appliance from inside:
 * by default Postroom refuses such hosts before connecting
 * (MAIL_SERVER_BLOCKED_NETWORKS). A server on loopback counts the
 * connections it gets, so "refused" means nothing reached it.
 */
import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import request from 'supertest';
import { authenticateImap, createApiToken, type PublicUser } from '../../gateway/accounts';
import { setMailServerResolver } from '../../gateway/accounts/mail-server-address';
import { ConfigError, loadConfig } from '../../gateway/core/config';
import { DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS, setBlockedMailServerNetworks } from '../../gateway/core/mail-server-networks';
import { parseNetworkList } from '../../gateway/core/network-list';
import { authenticateSmtp } from '../../gateway/send';
import { buildApp, makeAccount, makeUser, type TestApp, type TestStore } from '../admin/fixtures';
import { ensureTestCertificates } from '../support/certs';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';
import { openTestStore } from '../support/store';

/** A loopback TCP server that greets like IMAP or SMTP and counts connections (and, for TLS, the SNI names it was asked for). */
async function startCounter(kind: 'imap' | 'smtp', secure = false): Promise<{ port: number; connections: () => number; servernames: string[]; close: () => Promise<void> }> {
  let connections = 0;
  const servernames: string[] = [];
  const sockets = new Set<net.Socket>();
  const greet = (socket: net.Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write(kind === 'imap' ? '* BYE counter\r\n' : '421 counter\r\n');
    socket.end();
  };
  const certs = ensureTestCertificates();
  const server = secure
    ? tls.createServer({ cert: fs.readFileSync(certs.certFile), key: fs.readFileSync(certs.keyFile) }, (socket) => {
      servernames.push(String(socket.servername ?? ''));
      greet(socket);
    })
    : net.createServer(greet);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    servernames,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const IMAP_LOGIN = { tls: 'none' as const, username: 'carol@acme.test', password: 'carols-app-password' };

describe('accounts: mailbox servers on blocked networks (MAIL_SERVER_BLOCKED_NETWORKS)', function () {
  this.timeout(30_000);
  let counter: Awaited<ReturnType<typeof startCounter>>;
  beforeEach(async () => {
    counter = await startCounter('imap');
  });
  afterEach(async () => {
    await counter.close();
    setBlockedMailServerNetworks(undefined);
  });

  describe('with the default list', () => {
    beforeEach(() => setBlockedMailServerNetworks(DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS));

    for (const host of ['127.0.0.1', '127.8.9.10', '::ffff:127.0.0.1', '0:0:0:0:0:ffff:7f00:1', '0000:0000:0000:0000:0000:ffff:127.0.0.1', '[::1]', 'localhost', '169.254.169.254', '0.0.0.0']) {
      it(`IMAP Authenticate to ${host} is refused before connecting, saying why and what to change`, async () => {
        const result = await authenticateImap({ host, port: counter.port, ...IMAP_LOGIN }, { timeoutMs: 5000 });
        assert.equal(result.ok, false);
        if (result.ok) return;
        assert.equal(result.error.code, 'MAIL_SERVER_BLOCKED');
        assert.equal(result.error.status, 422);
        assert.match(result.error.message, /^\S+ is /);
        assert.doesNotMatch(result.error.message, /Postroom does not connect to \S+ is/, 'one sentence');
        assert.match(result.error.message, /is in a network Postroom does not connect to for mailboxes \((127\.0\.0\.0\/8|::1\/128|169\.254\.0\.0\/16|0\.0\.0\.0\/8)\)/);
        assert.match(result.error.message, /the mail provider's IMAP server.*MAIL_SERVER_BLOCKED_NETWORKS/);
        if (host === 'localhost') assert.match(result.error.message, /localhost is (127\.0\.0\.1|::1), which/);
        assert.doesNotMatch(result.error.message, /carols-app-password/);
        assert.equal(counter.connections(), 0, 'a connection reached the loopback server');
      });
    }

    it('SMTP Authenticate to loopback is refused the same way', async () => {
      const smtp = await startCounter('smtp');
      try {
        const result = await authenticateSmtp({ host: '127.0.0.1', port: smtp.port, tls: 'none', auth: { type: 'password', user: 'carol@acme.test', pass: 'x' } }, { timeoutMs: 5000 });
        assert.equal(result.ok, false);
        if (result.ok) return;
        assert.equal(result.error.code, 'MAIL_SERVER_BLOCKED');
        assert.match(result.error.message, /127\.0\.0\.1 is in a network Postroom does not connect to for mailboxes \(127\.0\.0\.0\/8\).*mail provider's SMTP server/);
        assert.equal(smtp.connections(), 0);
      } finally {
        await smtp.close();
      }
    });

    it('LAN and public addresses are not in it (an on-prem Exchange stays reachable); metadata and loopback forms are', () => {
      const list = parseNetworkList(DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS);
      for (const address of ['10.1.2.3', '192.168.0.10', '172.20.0.5', 'fd12::1', '198.51.100.7', '2a00:1450:4001:80b::200e']) assert.equal(list.match(address), undefined, address);
      for (const [address, network] of [['127.0.0.53', '127.0.0.0/8'], ['::ffff:7f00:1', '127.0.0.0/8'], ['0:0:0:0:0:ffff:a9fe:a9fe', '169.254.0.0/16'], ['::127.0.0.1', '127.0.0.0/8'], ['fe80::1%eth0', 'fe80::/10'], ['fd00:ec2::254', 'fd00:ec2::254/128'], ['168.63.129.16', '168.63.129.16/32']]) {
        assert.equal(list.match(address), network, address);
      }
    });
  });

  describe('through the console API, as an employee', () => {
    let store: TestStore;
    let testApp: TestApp;
    let carol: PublicUser;
    let token: string;
    before(async () => {
      store = await openTestStore('accounts_mail_server_networks');
      testApp = buildApp(store, { imapTimeoutMs: 3000 });
      carol = await makeUser(store, 'carol@acme.test');
      token = (await createApiToken(store, 'carol@acme.test', { name: 't' }, {})).token;
    });
    after(async () => store.drop());
    beforeEach(() => setBlockedMailServerNetworks(DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS));

    it('Authenticate answers 422 MAIL_SERVER_BLOCKED, the account shows it, and nothing reached the host', async () => {
      const account = await makeAccount(store, carol, 'carol@probe.test');
      const api = (method: 'get' | 'post' | 'patch', path: string) => request(testApp.app)[method](`/api/v1${path}`).set('Authorization', `Bearer ${token}`);
      await api('patch', `/accounts/${account.id}`).send({ imap: { host: 'localhost', port: counter.port, tls: 'none', username: 'carol', password: 'carols-app-password' } }).expect(200);
      const answer = await api('post', `/accounts/${account.id}/imap/authenticate`);
      assert.equal(answer.status, 422);
      assert.equal(answer.body.error.code, 'MAIL_SERVER_BLOCKED');
      assert.match(answer.body.error.message, /^localhost is (127\.0\.0\.1|::1), which is in a network Postroom does not connect to for mailboxes/);
      const shown = await api('get', `/accounts/${account.id}`).expect(200);
      assert.equal(shown.body.imap.lastErrorCode, 'MAIL_SERVER_BLOCKED');
      assert.equal(counter.connections(), 0);
    });
  });

  it('"none" lets an administrator allow every address: the same Authenticate then reaches the server', async () => {
    setBlockedMailServerNetworks('none');
    const result = await authenticateImap({ host: '127.0.0.1', port: counter.port, ...IMAP_LOGIN }, { timeoutMs: 5000 });
    assert.equal(result.ok, false);
    if (result.ok) return;
    assert.notEqual(result.error.code, 'MAIL_SERVER_BLOCKED');
    assert.equal(counter.connections(), 1);
  });

  it('a name is connected to at the address checked, with the name kept for TLS (SNI and the certificate check)', async () => {
    setBlockedMailServerNetworks('169.254.0.0/16');
    const secure = await startCounter('imap', true);
    try {
      await authenticateImap({ host: 'localhost', port: secure.port, tls: 'implicit', username: 'x', password: 'y' }, { timeoutMs: 5000 });
      assert.deepEqual(secure.servernames, ['localhost']);
    } finally {
      await secure.close();
    }
    // And a real login by name over TLS: the test certificate names localhost, so verification passes only with the name.
    const dovecot: DovecotServer = await shared('dovecot', () => startDovecot());
    await dovecot.addUser('mail-server-networks@acme.test', 'right-password');
    const result = await authenticateImap({ host: 'localhost', port: dovecot.tlsPort, tls: 'implicit', username: 'mail-server-networks@acme.test', password: 'right-password' }, { timeoutMs: 10_000 });
    assert.deepEqual(result, { ok: true });
  });

  it('a name is tried at each of its addresses in turn (a dead one first), and refused whole when any is blocked', async () => {
    setBlockedMailServerNetworks('169.254.0.0/16');
    try {
      // imap.example.test: its first address has nothing listening (refused at once), its second is the server.
      setMailServerResolver(async () => [{ address: '127.0.0.2', family: 4 }, { address: '127.0.0.1', family: 4 }]);
      const result = await authenticateImap({ host: 'imap.example.test', port: counter.port, ...IMAP_LOGIN }, { timeoutMs: 5000 });
      assert.equal(result.ok, false);
      assert.equal(counter.connections(), 1, 'the second address was not tried');
      if (!result.ok) assert.notEqual(result.error.code, 'MAIL_SERVER_BLOCKED');
      // A round-robin name with one blocked address among public-looking ones.
      setMailServerResolver(async () => [{ address: '127.0.0.1', family: 4 }, { address: '169.254.169.254', family: 4 }]);
      const refused = await authenticateImap({ host: 'imap.example.test', port: counter.port, ...IMAP_LOGIN }, { timeoutMs: 5000 });
      assert.equal(refused.ok, false);
      if (!refused.ok) assert.match(refused.error.message, /imap\.example\.test is 169\.254\.169\.254, which is in a network/);
      assert.equal(counter.connections(), 1, 'nothing more reached the server');
    } finally {
      setMailServerResolver(undefined);
    }
  });

  it('SMTP too: a submission server\'s name is tried at each of its checked addresses in turn', async () => {
    setBlockedMailServerNetworks('169.254.0.0/16');
    const smtp = await startCounter('smtp');
    try {
      setMailServerResolver(async () => [{ address: '127.0.0.2', family: 4 }, { address: '127.0.0.1', family: 4 }]);
      const result = await authenticateSmtp({ host: 'smtp.example.test', port: smtp.port, tls: 'none', auth: { type: 'password', user: 'carol@acme.test', pass: 'x' } }, { timeoutMs: 5000 });
      assert.equal(result.ok, false);
      assert.equal(smtp.connections(), 1, 'the second address was not tried');
      // Every address refused: the sentence says so, as for a name Node resolved itself.
      setMailServerResolver(async () => [{ address: '127.0.0.2', family: 4 }, { address: '127.0.0.3', family: 4 }]);
      const refused = await authenticateSmtp({ host: 'smtp.example.test', port: smtp.port, tls: 'none', auth: { type: 'password', user: 'carol@acme.test', pass: 'x' } }, { timeoutMs: 5000 });
      assert.equal(refused.ok, false);
      if (!refused.ok) assert.equal(refused.error.code, 'CONNECTION_REFUSED', refused.error.message);
    } finally {
      setMailServerResolver(undefined);
      await smtp.close();
    }
  });

  it('a bad list stops the process at start, naming each bad entry', () => {
    assert.throws(() => loadConfig({ MAIL_SERVER_BLOCKED_NETWORKS: '127.0.0.0/8,10.0.0.0/33,intranet' }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const text = err.problems.join('\n');
      assert.match(text, /MAIL_SERVER_BLOCKED_NETWORKS=.*"10\.0\.0\.0\/33": the prefix length must be 0-32; "intranet" is not an IP address or network/);
      return true;
    });
    assert.equal(loadConfig({ MAIL_SERVER_BLOCKED_NETWORKS: 'none' }).mailServerBlockedNetworks, 'none');
    assert.equal(loadConfig({}).mailServerBlockedNetworks, DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS);
  });
});
