/**
 * What an integrator generating a client from admin/openapi.json relies on:
 * every answer the real API gives — successes and errors — has a documented
 * status, Content-Type and shape (tests/support/openapi.ts), and every
 * documented operation answers. Real servers throughout: FerretDB, Dovecot
 * for IMAP, a recording submission server for sending.
 */
import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { Types } from 'mongoose';
import request from 'supertest';
import { createApiToken, type PublicUser } from '../../gateway/accounts';
import { runPendingJobs } from '../../gateway/crm/backfill';
import { crmAssociator } from '../../gateway/crm/link';
import { createLogger } from '../../gateway/core/log';
import { ingest } from '../../gateway/mail/ingest';
import { startSyncer } from '../../gateway/sync/schedule';
import type { DovecotServer } from '../support/dovecot';
import { buildApp, buildRaw, makeAccount, makeUser, storeMessage, type TestApp } from './fixtures';
import { sendableAccount, sharedDovecot, startRecordingSmtp, type RecordingSmtp, type SendFixture, type TestStore } from '../send/support';
import { loadApiDocument, responseChecker } from '../support/openapi';
import { openTestStore } from '../support/store';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

describe('admin: /api/v1 answers as admin/openapi.json documents them', () => {
  const doc = loadApiDocument();
  const checker = responseChecker(doc);
  let store: TestStore;
  let smtp: RecordingSmtp;
  let dovecot: DovecotServer;
  let testApp: TestApp;
  let bob: SendFixture;
  let eve: PublicUser;
  const tokens: Record<'bob' | 'eve' | 'admin', string> = { bob: '', eve: '', admin: '' };
  /** What one step made and a later one uses. */
  const ids: Record<string, string> = {};

  /**
   * Ask `method template` (its {params} filled from `params`) and check the
   * answer against the document; returns the answer for the test's own asserts.
   */
  async function call(method: Method, template: string, options: {
    params?: Record<string, string>; query?: string; body?: unknown; raw?: { type: string; data: string | Buffer };
    headers?: Record<string, string>; as?: keyof typeof tokens; app?: TestApp;
  } = {}) {
    const path = template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(options.params![name]));
    let req = request((options.app ?? testApp).app)[method](`/api/v1${path}${options.query ? `?${options.query}` : ''}`)
      .set('Authorization', `Bearer ${tokens[options.as ?? 'bob']}`);
    for (const [name, value] of Object.entries(options.headers ?? {})) req = req.set(name, value);
    if (options.raw) req = req.set('Content-Type', options.raw.type).send(options.raw.data);
    else if (options.body !== undefined) req = req.send(options.body as object);
    const res = await req.buffer(true);
    const problems = checker.problems(method, template, { status: res.status, headers: res.headers, body: res.body, text: res.text });
    assert.deepEqual(problems, [], `${method.toUpperCase()} ${path}`);
    return res;
  }

  before(async () => {
    store = await openTestStore('admin_openapi_responses');
    smtp = await startRecordingSmtp({ tls: 'starttls' });
    testApp = buildApp(store, { imapTimeoutMs: 5000, env: { SEND_RATE_LIMIT: '50/hour', SMTP_MAX_MESSAGE_SIZE: '1MB' } });
    await makeUser(store, 'admin@acme.test', 'admin');
    eve = await makeUser(store, 'eve@acme.test');
    dovecot = await sharedDovecot();
    bob = await sendableAccount(store, testApp.secretBox, { dovecot, smtp, smtpTls: 'starttls' });
    tokens.bob = (await createApiToken(store, bob.user.email, { name: 'client' }, {})).token;
    tokens.eve = (await createApiToken(store, eve.email, { name: 'client' }, {})).token;
    tokens.admin = (await createApiToken(store, 'admin@acme.test', { name: 'client' }, {})).token;
  });
  after(async () => {
    await smtp.stop();
    await store.drop();
  });

  it('accounts: list, create, read, change, delete, authenticate, sync ledger, and their errors', async () => {
    await call('get', '/accounts');
    await call('get', '/accounts', { query: 'colour=red' });
    const created = await call('post', '/accounts', { body: { email: 'Sales@Acme.test' } });
    assert.equal(created.status, 201);
    ids.spare = created.body.id;
    assert.equal((await call('post', '/accounts', { body: { email: 'sales@acme.test' } })).status, 409);
    assert.equal((await call('post', '/accounts', { body: { email: 'x@acme.test', ownerId: eve.id } })).status, 403);
    assert.equal((await call('post', '/accounts', { body: {} })).status, 400);
    await call('get', '/accounts/{id}', { params: { id: bob.accountId } });
    await call('get', '/accounts/{id}', { params: { id: 'not-an-id' } });
    await call('patch', '/accounts/{id}', { params: { id: ids.spare }, body: { enabled: false, imap: { folders: ['Archive'] } } });
    assert.equal((await call('patch', '/accounts/{id}', { params: { id: ids.spare }, body: { imap: { port: 99999 } } })).status, 400);
    const taken = await call('patch', '/accounts/{id}', { params: { id: ids.spare }, body: { email: bob.email } });
    assert.equal(taken.body.error?.code, 'ACCOUNT_EXISTS');
    assert.equal((await call('post', '/accounts/{id}/imap/authenticate', { params: { id: bob.accountId } })).status, 200);
    assert.equal((await call('post', '/accounts/{id}/imap/authenticate', { params: { id: ids.spare } })).status, 400);
    assert.equal((await call('post', '/accounts/{id}/smtp/authenticate', { params: { id: bob.accountId } })).status, 200);
    assert.equal((await call('post', '/accounts/{id}/smtp/authenticate', { params: { id: ids.spare } })).status, 400);
    await call('get', '/accounts/{id}/imap/sync', { params: { id: bob.accountId } });
    // After a real pass, with a folder in the ledger and a message that came from it.
    await dovecot.append(bob.email, 'INBOX', await buildRaw({ to: bob.email, subject: 'Synced' }));
    const syncer = startSyncer({ config: testApp.config, log: createLogger({ level: 'silent' }), store, secretBox: testApp.secretBox, associate: null, schedule: false });
    try {
      await syncer.runPassNow();
    } finally {
      await syncer.stop();
    }
    const ledger = await call('get', '/accounts/{id}/imap/sync', { params: { id: bob.accountId } });
    assert.equal(ledger.body.folders[0].folder, 'INBOX');
    const synced = await call('get', '/messages', { query: 'source=imap' });
    assert.equal(synced.body.messages[0].subject, 'Synced');
    assert.equal((await call('get', '/messages/{id}', { params: { id: synced.body.messages[0].id } })).body.sources[0].folder, 'INBOX');
    await call('get', '/accounts/{id}/imap/sync', { params: { id: ids.spare }, as: 'eve' });
    assert.equal((await call('delete', '/accounts/{id}', { params: { id: ids.spare } })).status, 204);
    assert.equal((await call('delete', '/accounts/{id}', { params: { id: ids.spare } })).status, 404);
  });

  it('messages: list, read, raw, attachment, release, delete, and their errors', async () => {
    const owner = { ownerId: bob.user.id, accountId: bob.accountId };
    ids.message = (await storeMessage(store, {
      subject: 'Report', html: '<p>See <img src="cid:logo@x"></p>',
      attachments: [{ filename: 'report.pdf', content: Buffer.from('%PDF-1.4 x'), contentType: 'application/pdf' }, { filename: 'logo.png', content: Buffer.from('png'), contentType: 'image/png', cid: 'logo@x' }],
    }, owner)).id;
    // To 7 people: the summary lists 5 whichever store serves it (MongoDB slices in the query, FerretDB cannot).
    ids.crowded = (await storeMessage(store, { subject: 'Crowded', to: Array.from({ length: 7 }, (_, i) => `p${i}@acme.test`).join(', ') }, owner)).id;
    const crowded = (await call('get', '/messages', { query: 'q=Crowded' })).body.messages[0];
    assert.deepEqual(crowded.to.map((to: { address: string }) => to.address), ['p0@acme.test', 'p1@acme.test', 'p2@acme.test', 'p3@acme.test', 'p4@acme.test']);
    assert.equal((await call('get', '/messages/{id}', { params: { id: ids.crowded } })).body.to.length, 7);
    ids.quarantined = (await storeMessage(store, { subject: 'Spoofed' }, { ...owner, status: 'quarantine', quarantineReason: 'dmarc fail', auth: { verdict: 'fail', reason: 'dmarc fail', results: 'x; dmarc=fail' } })).id;
    await call('get', '/messages');
    const page = await call('get', '/messages', { query: 'status=all&limit=1' });
    await call('get', '/messages', { query: `status=all&limit=1&cursor=${encodeURIComponent(page.body.nextCursor)}` });
    // Bad filters are VALIDATION_FAILED naming the parameter, as every other bad input is.
    assert.deepEqual((await call('get', '/messages', { query: 'source=pigeon' })).body.error, {
      code: 'VALIDATION_FAILED', message: 'source must be one of forward, mx, imap, sent', fields: { source: 'must be one of forward, mx, imap, sent' },
    });
    assert.deepEqual((await call('get', '/messages', { query: 'cursor=garbage' })).body.error, {
      code: 'VALIDATION_FAILED', message: 'cursor is not a cursor from a previous page', fields: { cursor: 'is not a cursor from a previous page' },
    });
    const full = await call('get', '/messages/{id}', { params: { id: ids.message } });
    const report = String(full.body.attachments.find((a: { filename: string }) => a.filename === 'report.pdf').index);
    await call('get', '/messages/{id}', { params: { id: ids.message }, as: 'eve' });
    // An admin asks for one user's mail.
    await storeMessage(store, { subject: 'For Eve' }, { ownerId: eve.id });
    const eves = await call('get', '/messages', { as: 'admin', query: `owner=${eve.id}` });
    assert.deepEqual(eves.body.messages.map((m: { subject: string }) => m.subject), ['For Eve']);
    assert.deepEqual((await call('get', '/messages', { as: 'admin', query: 'owner=nobody' })).body.error.fields, { owner: 'is not an id (24 hexadecimal digits)' });
    assert.equal((await call('get', '/messages/{id}/conversation', { params: { id: ids.message } })).body.messages[0].current, true);
    await call('get', '/messages/{id}/conversation', { params: { id: ids.message }, as: 'eve' });
    const raw = await call('get', '/messages/{id}/raw', { params: { id: ids.message } });
    assert.match(raw.headers['content-type'], /^message\/rfc822/);
    await call('get', '/messages/{id}/raw', { params: { id: 'nope' } });
    const pdf = await call('get', '/messages/{id}/attachments/{index}', { params: { id: ids.message, index: report } });
    assert.match(pdf.headers['content-type'], /^application\/pdf/);
    await call('get', '/messages/{id}/attachments/{index}', { params: { id: ids.message, index: '9' } });
    // Read state: set explicitly (a GET never does), one state per entry, and a filter.
    assert.equal((await call('get', '/messages/{id}', { params: { id: ids.message } })).body.read, false, 'new mail is unread, and reading it by the API leaves it so');
    assert.deepEqual((await call('post', '/messages/{id}/read', { params: { id: ids.message } })).body, { id: ids.message, read: true });
    assert.deepEqual((await call('post', '/messages/{id}/unread', { params: { id: ids.message } })).body, { id: ids.message, read: false });
    assert.deepEqual((await call('get', '/messages', { query: 'unread=true&q=Report' })).body.messages.map((m: { id: string; read: boolean }) => [m.id, m.read]), [[ids.message, false]]);
    assert.equal((await call('post', '/messages/{id}/read', { params: { id: ids.message }, as: 'eve' })).status, 404);
    assert.deepEqual((await call('get', '/messages', { query: 'unread=yes' })).body.error.fields, { unread: 'must be true or false' });
    assert.equal((await call('post', '/messages/{id}/release', { params: { id: ids.quarantined } })).status, 200);
    assert.equal((await call('post', '/messages/{id}/release', { params: { id: ids.quarantined } })).status, 409);
    await call('post', '/messages/{id}/release', { params: { id: ids.quarantined }, as: 'eve' });
    assert.equal((await call('delete', '/messages/{id}', { params: { id: ids.quarantined } })).status, 204);
    await call('delete', '/messages/{id}', { params: { id: ids.quarantined } });
  });

  it('objects: search, create, upsert, import, read, change, timeline, unlink, jobs, delete, and their errors', async () => {
    await call('get', '/objects', { query: 'type=vendor' });
    const customer = await call('post', '/objects', { body: { type: 'customer', name: 'Hooli', domains: ['hooli.test'] } });
    assert.equal(customer.status, 201);
    ids.object = customer.body.object.id;
    assert.equal((await call('post', '/objects', { body: { type: 'lead', name: 'Dup', externalId: 'dup-1' } })).status, 201);
    assert.equal((await call('post', '/objects', { body: { type: 'lead', name: 'Dup', externalId: 'dup-1' } })).status, 409);
    assert.equal((await call('post', '/objects', { body: { type: 'lead', name: '' } })).status, 400);
    await call('get', '/objects', { query: 'q=hoo' });
    assert.equal((await call('put', '/objects/by-external-id/{type}/{externalId}', { params: { type: 'contact', externalId: 'sf/1' }, body: { name: 'Ann', emails: ['ann@x.test'] } })).status, 201);
    assert.equal((await call('put', '/objects/by-external-id/{type}/{externalId}', { params: { type: 'contact', externalId: 'sf/1' }, body: { name: 'Ann' } })).status, 200);
    // The documented body is a CrmObjectInput: its type and externalId may come along when they are the path's.
    const same = await call('put', '/objects/by-external-id/{type}/{externalId}', { params: { type: 'contact', externalId: 'sf/1' }, body: { type: 'contact', externalId: 'sf/1', name: 'Ann Lee' } });
    assert.equal(same.status, 200, same.text);
    const other = await call('put', '/objects/by-external-id/{type}/{externalId}', { params: { type: 'contact', externalId: 'sf/1' }, body: { type: 'lead', name: 'Ann' } });
    assert.deepEqual(other.body.error.fields, { type: 'must be contact, as in the path, or left out' });
    assert.equal((await call('put', '/objects/by-external-id/{type}/{externalId}', { params: { type: 'vendor', externalId: 'x' }, body: { name: 'X' } })).status, 400);
    const csv = { type: 'text/csv', data: 'type,name,emails\ncontact,Bea,bea@x.test\n' };
    await call('post', '/objects/import', { raw: csv, as: 'admin' });
    await call('post', '/objects/import', { raw: csv, as: 'admin', query: 'commit=true' });
    assert.equal((await call('post', '/objects/import', { raw: csv })).status, 403);
    // A commit asked as ?commit=1 is refused, not answered with a preview that reads as done.
    assert.deepEqual((await call('post', '/objects/import', { raw: csv, as: 'admin', query: 'commit=1' })).body.error.fields, { commit: 'must be true or false' });
    assert.deepEqual((await call('post', '/objects/import', { raw: csv, as: 'admin', query: 'type=vendor' })).body.error.fields, { type: 'must be customer, contact or lead' });
    assert.equal((await call('post', '/objects/import', { body: { csv: 'x' }, as: 'admin' })).status, 415);
    assert.equal((await call('post', '/objects/import', { raw: { type: 'text/csv', data: 'emails\na@b.test\n' }, as: 'admin' })).status, 400);
    const read = await call('get', '/objects/{id}', { params: { id: ids.object } });
    // Read, change, send back: the read-only fields of the GET document are accepted and ignored, as on accounts.
    const renamed = await call('patch', '/objects/{id}', { params: { id: ids.object }, body: { ...read.body, name: 'Hooli Inc' } });
    assert.equal(renamed.status, 200, renamed.text);
    assert.equal(renamed.body.object.name, 'Hooli Inc');
    assert.equal(renamed.body.object.createdAt, read.body.createdAt);
    await call('get', '/objects/{id}', { params: { id: new Types.ObjectId().toString() } });
    await call('patch', '/objects/{id}', { params: { id: ids.object }, body: { name: 'Hooli XYZ' } });
    assert.equal((await call('post', '/objects', { body: { type: 'customer', name: 'Initech', externalId: 'sf-initech' } })).status, 201);
    const taken = await call('patch', '/objects/{id}', { params: { id: ids.object }, body: { externalId: 'sf-initech' } });
    assert.equal(taken.body.error?.code, 'EXTERNAL_ID_TAKEN');
    await call('patch', '/objects/{id}', { params: { id: ids.object }, body: { emails: 'x' } });
    await call('get', '/objects/{id}/jobs', { params: { id: ids.object } });
    const deps = { store, log: createLogger({ level: 'silent' }), settings: { businessDomains: ['acme.test'] } };
    await runPendingJobs(deps);
    for (let i = 0; i < 2; i++) {
      const raw = await buildRaw({ from: 'Gavin <gavin@hooli.test>', to: bob.email, subject: `Deal ${i}`, date: new Date(Date.UTC(2026, 0, 1 + i)) });
      const stored = await ingest({ store, log: deps.log, associate: crmAssociator(deps) }, {
        raw, mailboxKey: bob.accountId, accountId: new Types.ObjectId(bob.accountId), ownerId: new Types.ObjectId(bob.user.id), source: { kind: 'forward' },
      });
      ids.linked = String(stored.id);
    }
    const timeline = await call('get', '/objects/{id}/messages', { params: { id: ids.object }, query: 'limit=1' });
    assert.equal(timeline.body.entries.length, 1);
    await call('get', '/objects/{id}/messages', { params: { id: ids.object }, query: `limit=1&before=${encodeURIComponent(timeline.body.next)}` });
    await call('get', '/objects/{id}/messages', { params: { id: ids.object }, query: 'limit=0' });
    // A cursor that is not one is said, not read as "from the start" (a client would page for ever).
    assert.deepEqual((await call('get', '/objects/{id}/messages', { params: { id: ids.object }, query: 'before=yesterday' })).body.error, {
      code: 'VALIDATION_FAILED', message: 'before is not a cursor from a previous page', fields: { before: 'is not a cursor from a previous page' },
    });
    await call('get', '/objects/{id}/messages', { params: { id: 'nope' } });
    await call('delete', '/objects/{id}/messages/{messageId}', { params: { id: ids.object, messageId: ids.linked }, query: 'neverLink=true' });
    assert.deepEqual((await call('delete', '/objects/{id}/messages/{messageId}', { params: { id: ids.object, messageId: ids.linked }, query: 'neverLink=yes' })).body.error.fields, { neverLink: 'must be true or false' });
    await call('delete', '/objects/{id}/messages/{messageId}', { params: { id: ids.object, messageId: 'nope' } });
    await call('delete', '/objects/{id}', { params: { id: ids.object } });
    await call('delete', '/objects/{id}', { params: { id: ids.object }, as: 'admin' });
    await call('delete', '/objects/{id}', { params: { id: ids.object }, as: 'admin' });
  });

  it('sending: sent, replayed by Idempotency-Key, refused input, an account that cannot send, the outbox, the rate limit', async () => {
    const message = { to: ['alice@customer.test'], subject: 'Quote', text: 'Attached.', attachments: [{ filename: 'quote.txt', contentType: 'text/plain', content: Buffer.from('42').toString('base64') }] };
    const key = crypto.randomUUID();
    const sent = await call('post', '/accounts/{id}/send', { params: { id: bob.accountId }, body: message, headers: { 'Idempotency-Key': key } });
    assert.equal(sent.status, 200);
    const replay = await call('post', '/accounts/{id}/send', { params: { id: bob.accountId }, body: message, headers: { 'Idempotency-Key': key } });
    assert.equal(replay.headers['idempotent-replayed'], 'true');
    assert.equal((await call('post', '/accounts/{id}/send', { params: { id: bob.accountId }, body: { ...message, subject: 'Other' }, headers: { 'Idempotency-Key': key } })).status, 422);
    assert.equal((await call('post', '/accounts/{id}/send', { params: { id: bob.accountId }, body: { ...message, to: 'not an address' } })).status, 400);
    const attached = (megabytes: number) => ({ ...message, attachments: [{ filename: 'a', content: 'x'.repeat(megabytes * 1024 * 1024) }] });
    assert.equal((await call('post', '/accounts/{id}/send', { params: { id: bob.accountId }, body: attached(2) })).body.error.fields.attachments, 'are 1.5 MB together; at most 1.0 MB can be sent');
    assert.equal((await call('post', '/accounts/{id}/send', { params: { id: bob.accountId }, body: attached(6) })).status, 413);
    const unsendable = await makeAccount(store, { id: bob.user.id } as PublicUser, 'nosmtp@acme.test');
    assert.equal((await call('post', '/accounts/{id}/send', { params: { id: unsendable.id }, body: message })).status, 409);
    await call('post', '/accounts/{id}/send', { params: { id: unsendable.id }, body: message, as: 'eve' });
    await call('get', '/outbox');
    await call('get', '/outbox', { query: 'account=nope' });
    await call('get', '/outbox/{id}', { params: { id: sent.body.outboxId } });
    await call('get', '/outbox/{id}', { params: { id: sent.body.outboxId }, as: 'eve' });

    const limited = buildApp(store, { secretBox: testApp.secretBox, env: { SEND_RATE_LIMIT: '1/hour' } });
    await call('post', '/accounts/{id}/send', { params: { id: bob.accountId }, body: message, app: limited });
    const refused = await call('post', '/accounts/{id}/send', { params: { id: bob.accountId }, body: message, app: limited });
    assert.equal(refused.status, 429);
    assert.match(refused.headers['retry-after'], /^\d+$/);
  });

  /** Every documented operation, as [method, template, a path to it with made-up ids]. */
  const operations = () => Object.entries(doc.paths).flatMap(([template, item]) => Object.keys(item).filter((key) => key !== 'parameters')
    .map((method) => [method as Method, template, template.replace(/\{\w+\}/g, (name) => (name === '{type}' ? 'contact' : name === '{index}' ? '0' : '0123456789abcdef01234567'))] as const));

  it('refuses a query parameter an operation does not document with 400 naming it, on every operation', async () => {
    for (const [method, template, path] of operations()) {
      const res = await request(testApp.app)[method](`/api/v1${path}?dryRun=true`).set('Authorization', `Bearer ${tokens.admin}`);
      assert.deepEqual(checker.problems(method, template, { status: res.status, headers: res.headers, body: res.body, text: res.text }), []);
      assert.equal(res.status, 400, `${method} ${path}?dryRun=true`);
      assert.deepEqual(res.body.error.fields, { dryRun: 'is not a known query parameter' });
    }
    // Routes match any case, and so does the check.
    assert.equal((await request(testApp.app).get(`/api/v1/Accounts/${bob.accountId}?dryRun=true`).set('Authorization', `Bearer ${tokens.bob}`)).status, 400);
  });

  it('answers a body that is not JSON 415, and one over the size limit 413, on every POST, PUT and PATCH', async () => {
    for (const [method, template, path] of operations().filter(([, template]) => template !== '/objects/import')) {
      if (!['post', 'put', 'patch'].includes(method)) continue;
      const form = await request(testApp.app)[method](`/api/v1${path}`).set('Authorization', `Bearer ${tokens.admin}`).type('form').send({ name: 'x' });
      assert.deepEqual(checker.problems(method, template, { status: form.status, headers: form.headers, body: form.body, text: form.text }), []);
      assert.equal(form.status, 415, `${method} ${path}`);
      const huge = await request(testApp.app)[method](`/api/v1${path}`).set('Authorization', `Bearer ${tokens.admin}`).send({ name: 'x'.repeat(6 * 1024 * 1024) });
      assert.deepEqual(checker.problems(method, template, { status: huge.status, headers: huge.headers, body: huge.body, text: huge.text }), []);
      assert.equal(huge.status, 413, `${method} ${path}`);
    }
  });

  it('answers a missing token 401 on every operation, as documented', async () => {
    for (const [method, template, path] of operations()) {
      const res = await request(testApp.app)[method](`/api/v1${path}`);
      assert.deepEqual(checker.problems(method, template, { status: res.status, headers: res.headers, body: res.body }), []);
      assert.equal(res.status, 401, `${method} ${path}`);
    }
  });

  it('answers a read-only token 403 TOKEN_READ_ONLY on every operation but GET, as documented', async () => {
    const readOnly = (await createApiToken(store, 'admin@acme.test', { name: 'reporting', access: 'read' }, {})).token;
    for (const [method, template, path] of operations()) {
      const res = await request(testApp.app)[method](`/api/v1${path}`).set('Authorization', `Bearer ${readOnly}`).send({});
      assert.deepEqual(checker.problems(method, template, { status: res.status, headers: res.headers, body: res.body }), [], `${method} ${path}`);
      if (method === 'get') assert.notEqual(res.status, 403, `${method} ${path}`);
      else assert.deepEqual([res.status, res.body.error?.code], [403, 'TOKEN_READ_ONLY'], `${method} ${path}`);
    }
  });

  it('has had every documented operation answer with success', () => {
    const unanswered = operations().map(([method, template]) => `${method.toUpperCase()} ${template}`)
      .filter((operation) => ![...checker.seen].some((seen) => seen.startsWith(`${operation} 2`)));
    assert.deepEqual(unanswered, []);
  });
});
