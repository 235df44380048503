/**
 * A mailbox's saved password belongs to its owner. An admin manages every
 * account, but must not learn a user's mailbox password by pointing the
 * account at a server the admin runs and pressing Authenticate: the password
 * would be sent there in the login. A fake IMAP/SMTP server on loopback
 * records what a client sends it.
 */
import { strict as assert } from 'node:assert';
import net from 'node:net';
import request from 'supertest';
import { createApiToken, type PublicUser } from '../../gateway/accounts';
import { buildApp, csrfFrom, makeAccount, makeUser, signIn, type TestApp, type TestStore } from './fixtures';
import { openTestStore } from '../support/store';

const BOB_SECRET = 'bobs-own-gmail-app-password';

/** A plain-text server that greets like IMAP or SMTP and keeps every byte a client sends. */
async function startRecorder(kind: 'imap' | 'smtp'): Promise<{ port: number; received: () => string; close: () => Promise<void> }> {
  let received = '';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setEncoding('utf8');
    socket.write(kind === 'imap' ? '* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n' : '220 recorder ESMTP\r\n');
    let buffer = '';
    socket.on('data', (chunk: string) => {
      received += chunk;
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (kind === 'imap') {
          const tag = line.split(' ')[0];
          if (/ CAPABILITY/i.test(line)) socket.write(`* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n${tag} OK done\r\n`);
          else if (/ AUTHENTICATE PLAIN$/i.test(line)) socket.write('+ \r\n');
          else if (/^[A-Za-z0-9+/=]+$/.test(line) && !line.includes(' ')) socket.write('A NO [AUTHENTICATIONFAILED] no\r\n');
          else socket.write(`${tag} NO [AUTHENTICATIONFAILED] no\r\n`);
        } else if (/^(EHLO|HELO)/i.test(line)) socket.write('250-recorder\r\n250 AUTH PLAIN LOGIN\r\n');
        else if (/^AUTH LOGIN/i.test(line) || /^[A-Za-z0-9+/=]+$/.test(line)) socket.write('334 UGFzc3dvcmQ6\r\n');
        else socket.write('535 5.7.8 no\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    received: () => received,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Whether the recorded bytes carry the password, as sent in the clear, base64 (AUTH PLAIN/LOGIN) or an IMAP literal. */
function leaked(received: string): boolean {
  if (received.includes(BOB_SECRET)) return true;
  const decoded = [...received.matchAll(/[A-Za-z0-9+/=]{8,}/g)].map((m) => Buffer.from(m[0], 'base64').toString('latin1'));
  return decoded.some((text) => text.includes(BOB_SECRET));
}

describe('admin: an admin (or an API token) cannot send a user\'s saved mailbox password to another server', function () {
  this.timeout(30_000);
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;
  let adminToken: string;
  let bobToken: string;
  const api = (token: string, method: 'get' | 'post' | 'patch', path: string) => request(testApp.app)[method](`/api/v1${path}`).set('Authorization', `Bearer ${token}`);

  /** Bob's account as Bob left it: IMAP at his provider with his password saved, sending with the same sign-in. */
  async function bobsAccount(email: string): Promise<string> {
    const account = await makeAccount(store, bob, email);
    await api(bobToken, 'patch', `/accounts/${account.id}`).send({
      imap: { host: 'imap.gmail.com', port: 993, tls: 'implicit', username: email, password: BOB_SECRET },
      smtp: { host: 'smtp.gmail.com', port: 465, tls: 'implicit', sameCredentials: true },
    }).expect(200);
    return account.id;
  }

  before(async () => {
    store = await openTestStore('admin_credential_redirect');
    testApp = buildApp(store, { imapTimeoutMs: 3000 });
    await makeUser(store, 'admin@acme.test', 'admin');
    bob = await makeUser(store, 'bob@acme.test');
    adminToken = (await createApiToken(store, 'admin@acme.test', { name: 't' }, {})).token;
    bobToken = (await createApiToken(store, 'bob@acme.test', { name: 't' }, {})).token;
  });
  after(async () => store.drop());

  it('API: an admin pointing Bob\'s IMAP login at another server is refused unless they enter a password of their own', async () => {
    const id = await bobsAccount('bob@gmail.test');
    const recorder = await startRecorder('imap');
    try {
      const patched = await api(adminToken, 'patch', `/accounts/${id}`).send({ imap: { host: '127.0.0.1', port: recorder.port, tls: 'none' } });
      await api(adminToken, 'post', `/accounts/${id}/imap/authenticate`);
      assert.equal(leaked(recorder.received()), false, 'Bob\'s password reached the admin\'s server');
      assert.equal(patched.status, 400);
      assert.match(patched.body.error.fields['imap.password'], /saved password is only sent to the server it was saved for: enter the password again/);
      const kept = await api(bobToken, 'get', `/accounts/${id}`).expect(200);
      assert.equal(kept.body.imap.host, 'imap.gmail.com');
      // With a password of the admin's own, the change is theirs to make (nothing of Bob's is sent).
      await api(adminToken, 'patch', `/accounts/${id}`).send({ imap: { host: '127.0.0.1', port: recorder.port, tls: 'none', password: 'the-admins-own' } }).expect(200);
    } finally {
      await recorder.close();
    }
  });

  it('API: an admin cannot point Bob\'s sending (which signs in with his IMAP password) at another server', async () => {
    const id = await bobsAccount('bob@gmail2.test');
    const recorder = await startRecorder('smtp');
    try {
      const patched = await api(adminToken, 'patch', `/accounts/${id}`).send({ smtp: { host: '127.0.0.1', port: recorder.port, tls: 'none' } });
      await api(adminToken, 'post', `/accounts/${id}/smtp/authenticate`);
      assert.equal(leaked(recorder.received()), false, 'Bob\'s password reached the admin\'s server');
      assert.equal(patched.status, 400);
      assert.match(patched.body.error.fields['smtp.password'], /saved password is only sent to the server it was saved for: enter the password again/);
      // Nor by first moving sending to the admin's server with a password of their own, then switching it to Bob's IMAP sign-in.
      await api(adminToken, 'patch', `/accounts/${id}`).send({ smtp: { host: '127.0.0.1', port: recorder.port, tls: 'none', sameCredentials: false, username: 'x', password: 'the-admins-own' } }).expect(200);
      const switched = await api(adminToken, 'patch', `/accounts/${id}`).send({ smtp: { sameCredentials: true } });
      await api(adminToken, 'post', `/accounts/${id}/smtp/authenticate`);
      assert.equal(leaked(recorder.received()), false, 'Bob\'s password reached the admin\'s server');
      assert.equal(switched.status, 400);
    } finally {
      await recorder.close();
    }
  });

  it('API: an OAuth account\'s grant stays with its server, even when the admin brings a password', async () => {
    const id = await bobsAccount('bob@gmail4.test');
    await store.models.MailAccount.updateOne({ _id: id }, { $set: { 'oauth.provider': 'google', 'oauth.status': 'ok' } });
    const patched = await api(adminToken, 'patch', `/accounts/${id}`).send({ imap: { host: '127.0.0.1', port: 1143, tls: 'none', password: 'the-admins-own' } }).expect(400);
    assert.match(patched.body.error.fields['imap.password'], /OAuth sign-in is only used with the server it was granted for: Disconnect it first/);
    await api(adminToken, 'patch', `/accounts/${id}`).send({ smtp: { host: '127.0.0.1', port: 1025, tls: 'none', sameCredentials: false, username: 'x', password: 'the-admins-own' } }).expect(400);
    // Settings that do not move the login (turning IMAP Support off, say) are the admin's to change.
    await api(adminToken, 'patch', `/accounts/${id}`).send({ imap: { enabled: false } }).expect(200);
  });

  it('API: Bob\'s own token (handed to an integration) cannot move his saved login to another server without the password', async () => {
    const id = await bobsAccount('bob@gmail6.test');
    const recorder = await startRecorder('imap');
    try {
      const patched = await api(bobToken, 'patch', `/accounts/${id}`).send({ imap: { host: '127.0.0.1', port: recorder.port, tls: 'none' } });
      await api(bobToken, 'post', `/accounts/${id}/imap/authenticate`);
      assert.equal(leaked(recorder.received()), false, 'Bob\'s password reached another server through his API token');
      assert.equal(patched.status, 400);
      assert.match(patched.body.error.fields['imap.password'], /saved password is only sent to the server it was saved for/);
      const sending = await api(bobToken, 'patch', `/accounts/${id}`).send({ smtp: { host: '127.0.0.1', port: recorder.port, tls: 'none' } });
      assert.equal(sending.status, 400);
      assert.ok(sending.body.error.fields['smtp.password']);
      // With the password in the same request, the move is the token holder's to make.
      await api(bobToken, 'patch', `/accounts/${id}`).send({ imap: { host: '127.0.0.1', port: recorder.port, tls: 'none', password: 'typed-again' } }).expect(200);
    } finally {
      await recorder.close();
    }
  });

  it('console: an admin saving Bob\'s Sending panel as shown (the service\'s server) is not refused', async () => {
    const account = await makeAccount(store, bob, 'bob@gmail5.test');
    await api(bobToken, 'patch', `/accounts/${account.id}`).send({ imap: { service: 'gmail', username: 'bob@gmail5.test', password: BOB_SECRET } }).expect(200);
    const admin = await signIn(testApp.app, 'admin@acme.test');
    const page = await admin.agent.get(`/preferences/email/${account.id}`).expect(200);
    await admin.agent.post(`/preferences/email/${account.id}/smtp`).type('form')
      .send({ _csrf: csrfFrom(page.text), service: 'gmail', host: 'smtp.gmail.com', port: '465', tls: 'implicit', sameCredentials: 'on', enabled: 'on' }).expect(303);
    const after = await admin.agent.get(`/preferences/email/${account.id}`).expect(200);
    assert.match(after.text, /Sending settings saved\./);
    // The same form with the admin's server instead is not saved.
    await admin.agent.post(`/preferences/email/${account.id}/smtp`).type('form')
      .send({ _csrf: csrfFrom(after.text), service: 'custom', host: '127.0.0.1', port: '1025', tls: 'none', sameCredentials: 'on', enabled: 'on' }).expect(303);
    const refused = await admin.agent.get(`/preferences/email/${account.id}`).expect(200);
    assert.match(refused.text, /The sending settings were not saved/);
    assert.match(refused.text, /saved password is only sent to the server it was saved for/);
  });

  it('console: the admin\'s Authenticate on Bob\'s IMAP form with a new server sends nothing of Bob\'s; Bob himself may move his own login', async () => {
    const id = await bobsAccount('bob@gmail3.test');
    const recorder = await startRecorder('imap');
    try {
      const admin = await signIn(testApp.app, 'admin@acme.test');
      const page = await admin.agent.get(`/preferences/email/${id}`).expect(200);
      const res = await admin.agent.post(`/preferences/email/${id}`).type('form').send({
        _csrf: csrfFrom(page.text), action: 'authenticate', service: 'custom', host: '127.0.0.1', port: String(recorder.port), tls: 'none', username: 'bob@gmail3.test', password: '', enabled: 'on',
      });
      assert.equal(leaked(recorder.received()), false, 'Bob\'s password reached the admin\'s server');
      assert.equal(res.status, 400);
      assert.match(res.text, /saved password is only sent to the server it was saved for/);
      // The owner at the console knows his password: moving his own login there is his choice.
      const own = await signIn(testApp.app, 'bob@acme.test');
      const ownPage = await own.agent.get(`/preferences/email/${id}`).expect(200);
      await own.agent.post(`/preferences/email/${id}`).type('form').send({
        _csrf: csrfFrom(ownPage.text), action: 'save', service: 'custom', host: '127.0.0.1', port: String(recorder.port), tls: 'none', username: 'bob@gmail3.test', password: '', enabled: 'on',
      }).expect(303);
      assert.equal((await api(bobToken, 'get', `/accounts/${id}`).expect(200)).body.imap.host, '127.0.0.1');
    } finally {
      await recorder.close();
    }
  });
});
