import { strict as assert } from 'node:assert';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApiToken } from '../../gateway/accounts';
import { UPLOADS_PER_USER } from '../../admin/lib/upload-slots';
import { buildApp, csrfFrom, makeAccount, makeUser, signIn, type TestApp, type TestStore } from './fixtures';
import { openTestStore } from '../support/store';

/**
 * Large bodies one user can make the admin process hold at once: compose
 * (attachments in memory) and the API's send (base64 attachments in JSON)
 * each hold up to a whole message. A script posting many at once must be
 * refused before its bodies are read, not grow the process that serves
 * everyone.
 */
describe('admin: large uploads held at once per user', function () {
  this.timeout(30000);
  let store: TestStore;
  let built: TestApp;
  let server: http.Server;
  let port: number;
  let token: string;
  let userId: string;
  let accountId: string;

  before(async () => {
    store = await openTestStore('admin_upload_limits');
    const bob = await makeUser(store, 'bob@acme.test');
    userId = bob.id;
    accountId = (await makeAccount(store, bob, 'bob@acme.test')).id;
    token = (await createApiToken(store, 'bob@acme.test', { name: 'script' }, { id: null, email: 'cli', ip: '' } as never)).token;
    built = buildApp(store);
    server = http.createServer(built.app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await store?.drop();
  });

  /** A send whose 20 MB body is still arriving: 1 MB written, the rest held back. */
  function sendInFlight(): { request: http.ClientRequest; answered: Promise<number> } {
    const request = http.request({ host: '127.0.0.1', port, method: 'POST', path: `/api/v1/accounts/${accountId}/send`, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': String(20 * 1024 * 1024) } });
    const answered = new Promise<number>((resolve) => {
      request.on('response', (res) => resolve(res.statusCode ?? 0));
      request.on('error', () => resolve(0));
    });
    request.write(`{"text":"${'x'.repeat(1024 * 1024)}`);
    return { request, answered };
  }

  async function until(condition: () => boolean) {
    for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
    assert.ok(condition(), 'condition not reached in 5 s');
  }

  function post(body: string): Promise<{ status: number; retryAfter?: string; body: { error?: { code?: string; message?: string } } }> {
    return new Promise((resolve, reject) => {
      const request = http.request({ host: '127.0.0.1', port, method: 'POST', path: `/api/v1/accounts/${accountId}/send`, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, body: JSON.parse(text) as never }));
      });
      request.on('error', reject);
      request.end(body);
    });
  }

  it(`a user's third large body at once is refused with 429 TOO_MANY_UPLOADS before it is read; the slots come back`, async () => {
    const slots = built.app.locals.deps.uploadSlots;
    const inFlight = Array.from({ length: UPLOADS_PER_USER }, () => sendInFlight());
    await until(() => slots.held(userId) === UPLOADS_PER_USER);

    const refused = await post(JSON.stringify({ to: 'alice@customer.test', subject: 'one more', text: 'x'.repeat(100_000) }));
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error?.code, 'TOO_MANY_UPLOADS');
    assert.equal(refused.retryAfter, '5');

    // The console's Compose shares the user's slots.
    const session = await signIn(built.app, 'bob@acme.test');
    const page = (await session.agent.get('/compose').expect(200)).text;
    const compose = await session.agent.post('/compose').field('_csrf', csrfFrom(page)).field('account', accountId).field('to', 'alice@customer.test')
      .field('subject', 'from the console').field('text', 'x').attach('attachments', Buffer.alloc(100_000, 1), { filename: 'big.bin' });
    assert.equal(compose.status, 429);
    assert.match(compose.text, /messages of yours are being received or sent right now/);

    for (const { request } of inFlight) request.destroy();
    await Promise.all(inFlight.map(({ answered }) => answered));
    await until(() => slots.held(userId) === 0);
    const again = await post(JSON.stringify({ subject: 'no recipient' }));
    assert.notEqual(again.status, 429, JSON.stringify(again.body));
  });
});
