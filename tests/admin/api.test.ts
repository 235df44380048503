import { strict as assert } from 'node:assert';
import request from 'supertest';
import { createApiToken, revokeApiToken, setUserDisabled, SYSTEM_ACTOR, type PublicUser } from '../../gateway/accounts';
import { freePort } from '../../gateway/store/embedded-ferretdb';
import { buildApp, GATEWAY_DOMAIN, makeAccount, makeUser, storeMessage, type TestApp, type TestStore } from './fixtures';
import { captureLog } from '../support/log';
import { openTestStore } from '../support/store';

/** Binary, with every byte value: an attachment must come back exactly. */
const pdfBytes = Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256))]);

describe('admin: JSON API /api/v1', () => {
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;
  let eve: PublicUser;
  let bobToken: string;
  let eveToken: string;
  let adminToken: string;
  const api = (method: 'get' | 'post' | 'patch' | 'delete', path: string, token = bobToken) =>
    request(testApp.app)[method](`/api/v1${path}`).set('Authorization', `Bearer ${token}`);

  before(async () => {
    store = await openTestStore('admin_api');
    testApp = buildApp(store, { imapTimeoutMs: 3000 });
    await makeUser(store, 'admin@acme.test', 'admin');
    bob = await makeUser(store, 'bob@acme.test');
    eve = await makeUser(store, 'eve@acme.test');
    bobToken = (await createApiToken(store, 'bob@acme.test', { name: 't' }, {})).token;
    eveToken = (await createApiToken(store, 'eve@acme.test', { name: 't' }, {})).token;
    adminToken = (await createApiToken(store, 'admin@acme.test', { name: 't' }, {})).token;
  });
  after(async () => store.drop());

  it('requires a bearer token: 401 JSON with a WWW-Authenticate challenge', async () => {
    const none = await request(testApp.app).get('/api/v1/accounts').expect(401).expect('Content-Type', /json/);
    assert.equal(none.body.error.code, 'UNAUTHENTICATED');
    assert.match(none.headers['www-authenticate'], /^Bearer realm="postroom"/);
    const wrong = await request(testApp.app).get('/api/v1/accounts').set('Authorization', 'Bearer pr_not-a-real-token').expect(401);
    assert.equal(wrong.body.error.code, 'INVALID_TOKEN');
    assert.match(wrong.headers['www-authenticate'], /error="invalid_token"/);
    const basic = await request(testApp.app).get('/api/v1/accounts').set('Authorization', 'Basic Ym9iOnB3').expect(401);
    assert.equal(basic.body.error.code, 'UNAUTHENTICATED');
  });

  it('logs each refused token once, naming which token and why (a disabled user\'s integration is found in the log), never the token', async () => {
    const capture = captureLog('info');
    const { app } = buildApp(store, { log: capture.log });
    await makeUser(store, 'leaver@acme.test');
    const leaver = await createApiToken(store, 'leaver@acme.test', { name: 'crm-sync' }, {});
    const revoked = await createApiToken(store, 'eve@acme.test', { name: 'old-script' }, {});
    await revokeApiToken(store, revoked.view.id, SYSTEM_ACTOR);
    // Off-boarding: disabling the user revokes the token their integration used.
    await setUserDisabled(store, (await store.models.User.findOne({ email: 'leaver@acme.test' }).lean())!._id, true, SYSTEM_ACTOR);
    for (const token of [leaver.token, revoked.token, 'pr_not-a-real-token']) await request(app).get('/api/v1/accounts').set('Authorization', `Bearer ${token}`).expect(401);
    const refused = capture.lines.filter((line) => line.event === 'api.token_refused').map(({ reason, tokenName, tokenUser, tokenPrefix }) => ({ reason, tokenName, tokenUser, tokenPrefix }));
    assert.deepEqual(refused, [
      { reason: 'revoked', tokenName: 'crm-sync', tokenUser: 'leaver@acme.test', tokenPrefix: leaver.view.prefix },
      { reason: 'revoked', tokenName: 'old-script', tokenUser: 'eve@acme.test', tokenPrefix: revoked.view.prefix },
      { reason: 'unknown token', tokenName: undefined, tokenUser: undefined, tokenPrefix: undefined },
    ]);
    for (const token of [leaver.token, revoked.token]) assert.ok(!capture.text().includes(token.slice(12)), 'the token itself is never logged');
  });

  it('lets a read-only token list and read, and refuses it anything else with 403 TOKEN_READ_ONLY before anything is done', async () => {
    // A user of its own: the other tests count bob's accounts and mail.
    const rita = await makeUser(store, 'rita@acme.test');
    const ritaFull = (await createApiToken(store, 'rita@acme.test', { name: 'script' }, {})).token;
    const account = await makeAccount(store, rita, 'rita@acme.test');
    const { id: messageId } = await storeMessage(store, { subject: 'Quarterly numbers' }, { ownerId: rita.id, accountId: account.id });
    const reporting = await createApiToken(store, 'rita@acme.test', { name: 'reporting', access: 'read' }, {});
    assert.equal(reporting.view.access, 'read');
    const read = (method: 'get' | 'post' | 'patch' | 'delete', path: string) => api(method, path, reporting.token);
    const listed = await read('get', '/messages').expect(200);
    assert.deepEqual(listed.body.messages.map((item: { id: string }) => item.id), [messageId]);
    await read('get', `/messages/${messageId}`).expect(200);
    await read('get', `/accounts/${account.id}`).expect(200);
    const refusals = [
      await read('delete', `/messages/${messageId}`),
      await read('patch', `/accounts/${account.id}`).send({ enabled: false }),
      await read('post', '/objects').send({ type: 'customer', name: 'Globex', domains: ['globex.test'] }),
      await read('post', `/accounts/${account.id}/send`).send({ to: ['x@example.com'], subject: 's', text: 't' }),
    ];
    for (const refused of refusals) {
      assert.equal(refused.status, 403);
      assert.equal(refused.body.error.code, 'TOKEN_READ_ONLY');
      assert.match(refused.body.error.message, /^This API token is read-only: it can list and read, not (DELETE|PATCH|POST)\./);
    }
    assert.ok(await store.models.Message.exists({ _id: messageId }), 'the message is still there');
    assert.equal((await store.models.MailAccount.findById(account.id).lean())!.enabled, true);
    assert.equal(await store.models.CrmObject.countDocuments({ name: 'Globex' }), 0);
    // A full token (and one made before access levels, with none stored) still changes things.
    await store.models.ApiToken.updateOne({ prefix: ritaFull.slice(0, 10) }, { $unset: { access: 1 } });
    await api('patch', `/accounts/${account.id}`, ritaFull).send({ enabled: false }).expect(200);
    await assert.rejects(createApiToken(store, 'rita@acme.test', { access: 'write' }, {}), { code: 'VALIDATION_FAILED', message: 'access must be full or read' });
  });

  it('answers a documented path asked with another method 405 with Allow, and any unknown /api path 404 in JSON', async () => {
    const put = await request(testApp.app).put('/api/v1/accounts').set('Authorization', `Bearer ${bobToken}`).expect(405).expect('Content-Type', /json/);
    assert.equal(put.headers.allow, 'GET, HEAD, POST');
    assert.deepEqual(put.body.error, { code: 'METHOD_NOT_ALLOWED', message: 'PUT is not allowed on /api/v1/accounts (allowed: GET, HEAD, POST)' });
    // OPTIONS lists the same methods as the 405 (and HEAD, which every GET answers), from the same document.
    const options = await request(testApp.app).options('/api/v1/messages/0123456789abcdef01234567').set('Authorization', `Bearer ${bobToken}`).expect(204);
    assert.equal(options.headers.allow, 'GET, HEAD, DELETE, OPTIONS');
    await request(testApp.app).head('/api/v1/messages').set('Authorization', `Bearer ${bobToken}`).expect(200);
    await api('post', '/messages/0123456789abcdef01234567').expect(405).expect('Allow', /GET/);
    const unknown = await api('get', '/nothing-here').expect(404).expect('Content-Type', /json/);
    assert.equal(unknown.body.error.code, 'NOT_FOUND');
    for (const path of ['/api', '/api/v2/accounts']) {
      const other = await request(testApp.app).get(path).expect(404).expect('Content-Type', /json/);
      assert.match(other.body.error.message, /the JSON API is under \/api\/v1$/, path);
    }
  });

  it('creates an account: 201 with id and forwardingAddress, Location header, and reads it back in the documented shape', async () => {
    const res = await api('post', '/accounts').send({ email: 'Bob@Example.test' }).expect(201);
    assert.match(res.body.id, /^[0-9a-f]{24}$/);
    assert.match(res.body.forwardingAddress, /^bob-example-test\.[a-z2-9]{16}@in\.postroom\.test$/);
    assert.equal(res.headers.location, `/api/v1/accounts/${res.body.id}`);
    const got = await api('get', `/accounts/${res.body.id}`).expect(200);
    assert.equal(got.body.email, 'bob@example.test');
    assert.equal(got.body.enabled, true);
    assert.deepEqual(Object.keys(got.body.forwarding).slice(0, 2), ['status', 'provider']);
    assert.equal(got.body.forwarding.status, 'waiting');
    assert.equal(got.body.forwarding.confirmationCode, '');
    for (const side of ['imap', 'smtp']) {
      for (const key of ['enabled', 'service', 'host', 'port', 'tls', 'username']) assert.ok(key in got.body[side], `${side}.${key}`);
      assert.ok(!('password' in got.body[side]) && !('passwordEnc' in got.body[side]));
    }
    const list = await api('get', '/accounts').expect(200);
    assert.deepEqual(list.body.accounts.map((a: { id: string }) => a.id), [res.body.id]);
  });

  it('rejects bad create bodies with 400 naming the field (unknown field, bad email, wrong type, not JSON) and duplicates with 409', async () => {
    const unknown = await api('post', '/accounts').send({ email: 'x@acme.test', colour: 'blue' }).expect(400);
    assert.equal(unknown.body.error.code, 'VALIDATION_FAILED');
    assert.equal(unknown.body.error.fields.colour, 'is not a known field');
    // A prototype-pollution probe is an unknown field like any other, named in the answer.
    const probe = await api('post', '/accounts').set('Content-Type', 'application/json').send('{"email": "p@acme.test", "__proto__": {"role": "admin"}}').expect(400);
    assert.equal(probe.body.error.message, '__proto__ is not a known field');
    assert.deepEqual(Object.entries(probe.body.error.fields as object), [['__proto__', 'is not a known field']]);
    const bad = await api('post', '/accounts').send({ email: 'nope' }).expect(400);
    assert.match(bad.body.error.message, /email is not an email address/);
    const type = await api('post', '/accounts').send({ email: 42 }).expect(400);
    assert.ok(type.body.error.fields.email);
    const notJson = await api('post', '/accounts').set('Content-Type', 'application/json').send('{"email": ').expect(400);
    assert.equal(notJson.body.error.code, 'BAD_JSON');
    for (const body of ['"x"', '[1]', '[{"email": "x@acme.test"}]', 'null', '42']) {
      const notObject = await api('post', '/accounts').set('Content-Type', 'application/json').send(body).expect(400);
      assert.deepEqual(notObject.body.error, { code: 'BAD_BODY', message: 'The request body must be a JSON object.' }, body);
    }
    const noBody = await api('post', '/accounts').expect(400);
    assert.equal(noBody.body.error.code, 'BAD_BODY');
    for (const [type, body] of [['text/plain', 'email=x@acme.test'], ['application/x-www-form-urlencoded', 'email=x%40acme.test']]) {
      const wrongType = await api('post', '/accounts').set('Content-Type', type).send(body).expect(415);
      assert.deepEqual(wrongType.body.error, { code: 'UNSUPPORTED_MEDIA_TYPE', message: `The request body must be JSON (Content-Type: application/json), not ${type}.` });
    }
    await api('post', '/accounts').send({ email: 'twice@acme.test' }).expect(201);
    const dup = await api('post', '/accounts').send({ email: 'twice@acme.test' }).expect(409);
    // A Postroom address is no mailbox, created or renamed to (the console's Add says the same).
    const own = await api('post', '/accounts').send({ email: `bob-acme-test.abcdefgh23456789@${GATEWAY_DOMAIN}` }).expect(400);
    assert.match(own.body.error.fields.email, /^is a Postroom address/);
    const renamed = (await api('post', '/accounts').send({ email: 'rename-me@acme.test' }).expect(201)).body;
    const toGateway = await api('patch', `/accounts/${renamed.id}`).send({ email: `x@${GATEWAY_DOMAIN}` }).expect(400);
    assert.match(toGateway.body.error.fields.email, /^is a Postroom address/);
    await api('post', '/accounts').send({ email: 'jo.ann@gmail.com' }).expect(201);
    const sameGmail = await api('patch', `/accounts/${renamed.id}`).send({ email: 'joann@googlemail.com' }).expect(409);
    assert.match(sameGmail.body.error.fields.email, /^is the same Gmail mailbox as your account jo\.ann@gmail\.com/);
    assert.equal(dup.body.error.code, 'ACCOUNT_EXISTS');
  });

  it('words validation problems in plain language, naming each field as sent', async () => {
    const problems = async (method: 'post' | 'patch', path: string, body: object) => {
      const res = await api(method, path).send(body).expect(400);
      assert.equal(res.body.error.code, 'VALIDATION_FAILED');
      assert.doesNotMatch(res.body.error.message, /Invalid input|expected|received/, 'no raw validator text');
      return res.body.error as { message: string; fields: Record<string, string> };
    };
    assert.deepEqual(await problems('post', '/accounts', {}), { code: 'VALIDATION_FAILED', message: 'email is required', fields: { email: 'is required' } });
    assert.equal((await problems('post', '/accounts', { email: 123 })).message, 'email must be a string');
    const account = (await api('post', '/accounts').send({ email: 'words@acme.test' }).expect(201)).body;
    for (const port of ['993', 993.5, 70000, -1]) {
      const error = await problems('patch', `/accounts/${account.id}`, { imap: { port } });
      assert.equal(error.message, 'imap.port must be a whole number from 1 to 65535', String(port));
    }
    await api('patch', `/accounts/${account.id}`).send({ imap: { port: 0 } }).expect(200); // 0: not set, as a GET returns it
    const several = await problems('patch', `/accounts/${account.id}`, { enabled: 'yes', imap: { tls: 'ssl', host: 7 }, smtp: 'x' });
    assert.deepEqual(several.fields, {
      enabled: 'must be true or false', 'imap.host': 'must be a string', 'imap.tls': 'must be one of implicit, starttls, none', smtp: 'must be an object',
    });
    assert.equal(several.message, 'enabled must be true or false; imap.host must be a string; imap.tls must be one of implicit, starttls, none; smtp must be an object');
    assert.equal((await problems('post', '/objects', { name: 'Initrode', emails: 'x' })).message, 'emails must be an array');
    assert.equal((await problems('post', '/objects', { name: 'Initrode', emails: [1] })).message, 'emails.0 must be a string');
    assert.equal((await problems('post', '/objects', { name: 'x'.repeat(10), rules: { linkBulk: 1 } })).fields['rules.linkBulk'], 'must be true or false');
    assert.equal((await problems('post', `/accounts/${account.id}/send`, { to: 5 })).fields.to, 'must be a string or an array');
    assert.equal((await problems('post', `/accounts/${account.id}/send`, { original: { id: 'x', action: 'quote' } })).fields['original.action'], 'must be one of reply, reply-all, forward');
    assert.equal((await problems('post', `/accounts/${account.id}/send`, { subject: 'x'.repeat(10_001) })).fields.subject, 'must be at most 10000 characters');
    for (const path of ['/messages?limit=abc', '/outbox?limit=0', '/objects?limit=501']) {
      const res = await api('get', path).expect(400);
      const max = path.startsWith('/messages') ? 200 : 500;
      assert.deepEqual(res.body.error, { code: 'VALIDATION_FAILED', message: `limit must be a whole number from 1 to ${max}`, fields: { limit: `must be a whole number from 1 to ${max}` } }, path);
    }
    const filter = await api('get', '/messages?account=zzz').expect(400);
    assert.deepEqual(filter.body.error.fields, { account: 'is not an id (24 hexadecimal digits)' }, 'the query parameter as sent, not the field it fills');
  });

  it('send: checks the request body (400) before whether the account can send (409)', async () => {
    const account = (await api('post', '/accounts').send({ email: 'notyet@acme.test' }).expect(201)).body;
    const empty = await api('post', `/accounts/${account.id}/send`).send({}).expect(400);
    assert.deepEqual(empty.body.error.fields, { to: 'needs at least one address' });
    const complete = await api('post', `/accounts/${account.id}/send`).send({ to: 'carol@customer.test', subject: 'Hi', text: 'Hello' }).expect(409);
    assert.equal(complete.body.error.code, 'ACCOUNT_NOT_SENDABLE');
    // A received attachment whose name hides a line break is forwarded under a clean name, not refused as a bad header.
    const frank = await makeUser(store, 'frank@acme.test');
    const frankToken = (await createApiToken(store, 'frank@acme.test', { name: 't' }, {})).token;
    const frankAccount = await makeAccount(store, frank, 'frank@acme.test');
    const { id } = await storeMessage(store, { subject: 'Report', attachments: [{ filename: 'report\r\nX-Evil: 1.pdf', content: '%PDF-1.4', contentType: 'application/pdf' }] }, { ownerId: frank.id, accountId: frankAccount.id });
    const forward = await api('post', `/accounts/${frankAccount.id}/send`, frankToken).send({ to: 'carol@customer.test', original: { id, action: 'forward' } });
    assert.equal(forward.status, 409, JSON.stringify(forward.body));
    assert.equal(forward.body.error.code, 'ACCOUNT_NOT_SENDABLE');
  });

  it('patches imap settings: password is write-only and sealed; read-only fields round-trip; unknown fields are 400', async () => {
    const created = (await api('post', '/accounts').send({ email: 'patch@gmail.test' }).expect(201)).body;
    const patched = await api('patch', `/accounts/${created.id}`).send({ imap: { enabled: true, service: 'gmail', username: 'patch@gmail.test', password: 'secret-app-pw' } }).expect(200);
    assert.equal(patched.body.imap.host, 'imap.gmail.com');
    assert.equal(patched.body.imap.port, 993);
    assert.equal(patched.body.imap.tls, 'implicit');
    assert.equal(patched.body.imap.passwordSet, true);
    assert.equal(patched.body.imap.status, 'unverified');
    assert.doesNotMatch(JSON.stringify(patched.body), /secret-app-pw/);
    const stored = (await store.models.MailAccount.findById(created.id).lean())!;
    assert.equal(testApp.secretBox.open(stored.imap!.passwordEnc, created.id), 'secret-app-pw');
    // GET → PATCH the same document back: read-only fields are accepted and ignored.
    const roundTripRes = await api('patch', `/accounts/${created.id}`).send({ ...patched.body, enabled: false });
    assert.equal(roundTripRes.status, 200, JSON.stringify(roundTripRes.body));
    const roundTrip = roundTripRes;
    assert.equal(roundTrip.body.enabled, false);
    assert.equal(roundTrip.body.forwardingAddress, created.forwardingAddress);
    const unknown = await api('patch', `/accounts/${created.id}`).send({ imap: { hots: 'typo' } }).expect(400);
    assert.equal(unknown.body.error.fields['imap.hots'], 'is not a known field');
    const badPort = await api('patch', `/accounts/${created.id}`).send({ imap: { port: 70000 } }).expect(400);
    assert.match(badPort.body.error.fields['imap.port'], /1 to 65535/);
    const badTls = await api('patch', `/accounts/${created.id}`).send({ smtp: { tls: 'ssl3' } }).expect(400);
    assert.ok(badTls.body.error.fields['smtp.tls']);
    const badService = await api('patch', `/accounts/${created.id}`).send({ imap: { service: 'aol2' } }).expect(400);
    assert.ok(badService.body.error.fields['imap.service']);
    // Folders to sync besides INBOX and Sent: the list is replaced; INBOX and repeats are dropped.
    const folders = await api('patch', `/accounts/${created.id}`).send({ imap: { folders: ['Archive', 'INBOX', 'Projects/Acme', 'Archive'] } }).expect(200);
    assert.deepEqual(folders.body.imap.folders, ['Archive', 'Projects/Acme']);
    const badFolder = await api('patch', `/accounts/${created.id}`).send({ imap: { folders: ['Bad\u0007name'] } }).expect(400);
    assert.equal(badFolder.body.error.fields['imap.folders'], 'a folder name cannot contain control characters');
    assert.deepEqual((await api('get', `/accounts/${created.id}`).expect(200)).body.imap.folders, ['Archive', 'Projects/Acme']);
  });

  it('authenticates IMAP: 422 with a precise code when the login fails, 400 when settings are missing', async () => {
    const created = (await api('post', '/accounts').send({ email: 'auth@acme.test' }).expect(201)).body;
    const missing = await api('post', `/accounts/${created.id}/imap/authenticate`).expect(400);
    assert.ok(missing.body.error.fields['imap.host']);
    const port = await freePort();
    await api('patch', `/accounts/${created.id}`).send({ imap: { host: '127.0.0.1', port, tls: 'implicit', username: 'u', password: 'p' } }).expect(200);
    const refused = await api('post', `/accounts/${created.id}/imap/authenticate`).expect(422);
    assert.equal(refused.body.error.code, 'CONNECTION_REFUSED');
    assert.match(refused.body.error.message, new RegExp(`127\\.0\\.0\\.1:${port} refused the connection`));
    const account = await api('get', `/accounts/${created.id}`).expect(200);
    assert.equal(account.body.imap.lastErrorCode, 'CONNECTION_REFUSED');
  });

  it("answers 404 for another user's account and for ids that are not ObjectIds — never 500", async () => {
    const evesAccount = await makeAccount(store, eve, 'eve-only@acme.test');
    for (const [method, path] of [['get', ''], ['patch', ''], ['delete', ''], ['post', '/imap/authenticate']] as const) {
      const res = await api(method, `/accounts/${evesAccount.id}${path}`).send(method === 'patch' ? { enabled: false } : undefined).expect(404);
      assert.equal(res.body.error.code, 'NOT_FOUND');
    }
    await api('get', '/accounts/not-an-id').expect(404);
    await api('get', '/accounts/123').expect(404);
    await api('get', '/accounts/zzzzzzzzzzzzzzzzzzzzzzzz').expect(404);
    await api('get', '/nothing-here').expect(404);
    const evesView = await api('get', `/accounts/${evesAccount.id}`, eveToken).expect(200);
    assert.equal(evesView.body.email, 'eve-only@acme.test');
    const adminView = await api('get', '/accounts', adminToken).expect(200);
    assert.ok(adminView.body.accounts.length >= 2, 'admins see every account');
    const forOther = await api('post', '/accounts').send({ email: 'sneaky@acme.test', ownerId: eve.id }).expect(403);
    assert.equal(forOther.body.error.code, 'FORBIDDEN');
    await api('post', '/accounts', adminToken).send({ email: 'for-eve@acme.test', ownerId: eve.id }).expect(201);
  });

  it('deletes an account (204), then 404', async () => {
    const created = (await api('post', '/accounts').send({ email: 'delete-me@acme.test' }).expect(201)).body;
    await api('delete', `/accounts/${created.id}`).expect(204);
    await api('get', `/accounts/${created.id}`).expect(404);
    await api('delete', `/accounts/${created.id}`).expect(404);
  });

  describe('messages', () => {
    let account: { id: string };
    const ids: Record<string, string> = {};
    before(async () => {
      account = await makeAccount(store, bob, 'mail@acme.test');
      const base = Date.parse('2026-02-01T00:00:00Z');
      for (let i = 0; i < 7; i++) ids[`m${i}`] = (await storeMessage(store, { subject: `API message ${i}`, html: '<p>hi</p><script>x()</script>' }, { ownerId: bob.id, accountId: account.id, receivedAt: new Date(base + i * 1000) })).id;
      ids.q = (await storeMessage(store, { subject: 'Spoofed' }, { ownerId: bob.id, accountId: account.id, status: 'quarantine', auth: { verdict: 'fail', reason: 'dmarc fail', results: 'x; dmarc=fail' }, receivedAt: new Date(base + 10_000) })).id;
      ids.eve = (await storeMessage(store, { subject: 'Eve API' }, { ownerId: eve.id, receivedAt: new Date(base) })).id;
    });

    it('lists with cursor paging and filters; unknown query parameters are 400', async () => {
      const first = await api('get', '/messages?limit=3').expect(200);
      assert.deepEqual(first.body.messages.map((m: { subject: string }) => m.subject), ['API message 6', 'API message 5', 'API message 4']);
      assert.ok(first.body.nextCursor);
      const all: string[] = [];
      let cursor: string | null = null;
      do {
        const page: request.Response = await api('get', `/messages?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`).expect(200);
        all.push(...page.body.messages.map((m: { subject: string }) => m.subject));
        cursor = page.body.nextCursor;
      } while (cursor);
      assert.equal(all.length, 7);
      assert.equal(new Set(all).size, 7);
      const quarantine = await api('get', '/messages?status=quarantine').expect(200);
      assert.deepEqual(quarantine.body.messages.map((m: { id: string }) => m.id), [ids.q]);
      const search = await api('get', '/messages?q=message%205').expect(200);
      assert.deepEqual(search.body.messages.map((m: { subject: string }) => m.subject), ['API message 5']);
      const unknown = await api('get', '/messages?colour=red').expect(400);
      assert.equal(unknown.body.error.fields.colour, 'is not a known query parameter');
      await api('get', '/messages?limit=0').expect(400);
      await api('get', '/messages?cursor=garbage').expect(400);
      await api('get', '/messages?verdict=maybe').expect(400);
      const nul = await api('get', '/messages?q=a%00b').expect(400);
      assert.equal(nul.body.error.fields.q, 'must not contain a NUL character');
      const eveList = await api('get', '/messages?status=all', eveToken).expect(200);
      assert.deepEqual(eveList.body.messages.map((m: { id: string }) => m.id), [ids.eve]);
    });

    it('gets one message with sanitised HTML and its raw bytes; 404 for others', async () => {
      const res = await api('get', `/messages/${ids.m1}`).expect(200);
      assert.equal(res.body.subject, 'API message 1');
      assert.match(res.body.html, /<p>hi<\/p>/);
      assert.doesNotMatch(res.body.html, /script/);
      assert.equal(res.body.rawUrl, `/api/v1/messages/${ids.m1}/raw`);
      const raw = await api('get', `/messages/${ids.m1}/raw`).buffer(true).parse((r, cb) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => cb(null, Buffer.concat(chunks)));
      }).expect(200);
      assert.match(raw.headers['content-type'], /message\/rfc822/);
      assert.match((raw.body as Buffer).toString(), /Subject: API message 1/);
      await api('get', `/messages/${ids.eve}`).expect(404);
      await api('get', `/messages/${ids.eve}/raw`).expect(404);
      await api('get', '/messages/nope').expect(404);
    });

    it('downloads an attachment by position with its bytes, name and type; 404 past the last and for others', async () => {
      const attached = (await storeMessage(store, { subject: 'API attachment', attachments: [{ filename: 'a.txt', content: 'first' }, { filename: 'report.pdf', content: pdfBytes, contentType: 'application/pdf' }] }, { ownerId: bob.id, accountId: account.id })).id;
      try {
        const res = await api('get', `/messages/${attached}/attachments/1`).buffer(true).parse((r, cb) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => cb(null, Buffer.concat(chunks)));
        }).expect(200);
        assert.ok((res.body as Buffer).equals(pdfBytes), 'the attachment\'s bytes, read back from the raw message');
        assert.match(res.headers['content-type'], /application\/pdf/);
        assert.match(res.headers['content-disposition'], /^attachment; filename="?report\.pdf"?$/);
        await api('get', `/messages/${attached}/attachments/2`).expect(404);
        await api('get', `/messages/${ids.eve}/attachments/0`).expect(404);
      } finally {
        await store.models.Message.deleteOne({ _id: attached });
      }
    });

    it('releases from quarantine (200, then 409) and deletes (204)', async () => {
      const released = await api('post', `/messages/${ids.q}/release`).expect(200);
      assert.equal(released.body.status, 'inbox');
      const again = await api('post', `/messages/${ids.q}/release`).expect(409);
      assert.equal(again.body.error.code, 'NOT_QUARANTINED');
      await api('post', `/messages/${ids.eve}/release`).expect(404);
      await api('delete', `/messages/${ids.m0}`).expect(204);
      await api('get', `/messages/${ids.m0}`).expect(404);
    });
  });
});
