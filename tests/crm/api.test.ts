import { strict as assert } from 'node:assert';
import request from 'supertest';
import { createApiToken, type PublicUser } from '../../gateway/accounts';
import { runPendingJobs } from '../../gateway/crm/backfill';
import { buildApp, buildRaw, makeAccount, makeUser, storeMessage, type TestApp, type TestStore } from '../admin/fixtures';
import { crmAssociator, linkMessage } from '../../gateway/crm/link';
import { ingest } from '../../gateway/mail/ingest';
import { openTestStore } from '../support/store';
import { testLog } from './support';
import { Types } from 'mongoose';

describe('crm: /api/v1/objects (real app, real store)', () => {
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;
  let carol: PublicUser;
  let bobToken: string;
  let carolToken: string;
  let adminToken: string;
  const api = (method: 'get' | 'post' | 'put' | 'patch' | 'delete', path: string, token = bobToken) =>
    request(testApp.app)[method](`/api/v1${path}`).set('Authorization', `Bearer ${token}`);
  const crm = () => ({ store, log: testLog, settings: { businessDomains: ['acme.test'] } });

  before(async () => {
    store = await openTestStore('crm_api');
    testApp = buildApp(store);
    await makeUser(store, 'admin@acme.test', 'admin');
    bob = await makeUser(store, 'bob@acme.test');
    carol = await makeUser(store, 'carol@acme.test');
    bobToken = (await createApiToken(store, 'bob@acme.test', { name: 't' }, {})).token;
    carolToken = (await createApiToken(store, 'carol@acme.test', { name: 't' }, {})).token;
    adminToken = (await createApiToken(store, 'admin@acme.test', { name: 't' }, {})).token;
  });
  after(async () => store.drop());

  it('upserts by external id idempotently: 201 then 200, one record, no second job', async () => {
    const body = { name: 'Globex Corp', domains: ['Globex.test'], emails: ['Info@Globex.test'] };
    const first = await api('put', '/objects/by-external-id/customer/sf-001').send(body).expect(201);
    assert.equal(first.body.created, true);
    assert.equal(first.body.object.externalId, 'sf-001');
    assert.deepEqual(first.body.object.domains, ['globex.test']);
    assert.equal(first.body.jobIds.length, 1);
    assert.equal(first.headers.location, `/api/v1/objects/${first.body.object.id}`);
    const second = await api('put', '/objects/by-external-id/customer/sf-001').send(body).expect(200);
    assert.equal(second.body.created, false);
    assert.equal(second.body.object.id, first.body.object.id);
    assert.deepEqual(second.body.jobIds, []);
    assert.equal(await store.models.CrmObject.countDocuments({ externalId: 'sf-001' }), 1);
    const renamed = await api('put', '/objects/by-external-id/customer/sf-001').send({ name: 'Globex Corporation' }).expect(200);
    assert.equal(renamed.body.object.name, 'Globex Corporation');
    assert.deepEqual(renamed.body.object.domains, ['globex.test'], 'fields not sent are kept');
    // External ids may contain slashes when URL-encoded.
    await api('put', `/objects/by-external-id/contact/${encodeURIComponent('hs/42')}`).send({ name: 'Slashy' }).expect(201);
    assert.equal((await store.models.CrmObject.findOne({ externalId: 'hs/42' }).lean())!.name, 'Slashy');
  });

  it('answers bad input with 400 naming the fields, never 500', async () => {
    const unknown = await api('post', '/objects').send({ type: 'contact', name: 'X', phone: '123' }).expect(400);
    assert.equal(unknown.body.error.code, 'VALIDATION_FAILED');
    assert.ok(unknown.body.error.fields.phone);
    const bad = await api('post', '/objects').send({ type: 'contact', name: '', emails: ['nope'] }).expect(400);
    assert.deepEqual(Object.keys(bad.body.error.fields).sort(), ['emails', 'name']);
    const wrongType = await api('post', '/objects').send({ type: 'contact', name: 'X', emails: 'a@b.test' }).expect(400);
    assert.ok(wrongType.body.error.fields.emails);
    await api('post', '/objects').set('Content-Type', 'application/json').send('{"type":').expect(400);
    const typeInPath = await api('put', '/objects/by-external-id/vendor/x').send({ name: 'X' }).expect(400);
    assert.ok(typeInPath.body.error.fields.type);
    await api('get', '/objects/not-an-id').expect(404);
    await api('get', '/objects/0123456789abcdef01234567').expect(404);
    const query = await api('get', '/objects?limit=0').expect(400);
    assert.ok(query.body.error.fields.limit);
    await api('post', '/objects').send({ type: 'lead', name: 'Dup', externalId: 'dup-1' }).expect(201);
    const dup = await api('post', '/objects').send({ type: 'lead', name: 'Dup', externalId: 'dup-1' }).expect(409);
    assert.equal(dup.body.error.code, 'EXTERNAL_ID_TAKEN');
  });

  it('creates, searches, updates and (admins only) deletes', async () => {
    const created = await api('post', '/objects').send({ type: 'contact', name: 'Peter Gibbons', emails: ['peter@initech.test'] }).expect(201);
    const id = created.body.object.id;
    const found = await api('get', '/objects?q=gibb').expect(200);
    assert.deepEqual(found.body.objects.map((o: { id: string }) => o.id), [id]);
    const byEmail = await api('get', '/objects?q=peter%40initech.test&type=contact').expect(200);
    assert.equal(byEmail.body.objects.length, 1);
    const patched = await api('patch', `/objects/${id}`).send({ emails: ['peter@initech.test', 'pg@initech.test'] }).expect(200);
    assert.equal(patched.body.jobIds.length, 1);
    const jobs = await api('get', `/objects/${id}/jobs`).expect(200);
    assert.equal(jobs.body.jobs.length, 2);
    assert.equal((await api('delete', `/objects/${id}`).expect(403)).body.error.code, 'FORBIDDEN');
    await api('delete', `/objects/${id}`, adminToken).expect(204);
    await api('get', `/objects/${id}`).expect(404);
  });

  it("serves an object's timeline with the privacy rule for the token's user, and unlinks", async () => {
    const deps = crm();
    const customer = await api('post', '/objects').send({ type: 'customer', name: 'Hooli', domains: ['hooli.test'] }).expect(201);
    const objectId = customer.body.object.id;
    await runPendingJobs(deps);
    const bobAccount = await makeAccount(store, bob, 'bob@acme.test');
    const hook = { store, log: testLog, associate: crmAssociator(deps) };
    const stored = await ingest(hook, { raw: await buildRaw({ from: 'Gavin <gavin@hooli.test>', to: 'bob@acme.test', subject: 'Acquisition' }), mailboxKey: bobAccount.id, accountId: new Types.ObjectId(bobAccount.id), ownerId: new Types.ObjectId(bob.id), source: { kind: 'forward' } });
    assert.equal(stored.outcome, 'stored');
    const carols = await storeMessage(store, { from: 'Gavin <gavin@hooli.test>', to: 'carol@acme.test', subject: "Carol's" }, { ownerId: carol.id });
    await linkMessage(deps, (await store.models.Message.findById(carols.id).lean()) as never);

    const asBob = await api('get', `/objects/${objectId}/messages`).expect(200);
    assert.deepEqual(asBob.body.entries.map((e: { subject: string }) => e.subject), ['Acquisition']);
    assert.equal(asBob.body.entries[0].link.rule, 'domain');
    assert.equal(asBob.body.entries[0].link.reasons[0].matched, 'hooli.test');
    const asCarol = await api('get', `/objects/${objectId}/messages`, carolToken).expect(200);
    assert.deepEqual(asCarol.body.entries.map((e: { subject: string }) => e.subject), ["Carol's"]);
    const asAdmin = await api('get', `/objects/${objectId}/messages`, adminToken).expect(200);
    assert.equal(asAdmin.body.entries.length, 2);

    // Carol cannot unlink Bob's message (404: she cannot see it); Bob can, and asks never to link Gavin again.
    await api('delete', `/objects/${objectId}/messages/${stored.id}`, carolToken).expect(404);
    const unlinked = await api('delete', `/objects/${objectId}/messages/${stored.id}?neverLink=true`).expect(200);
    assert.deepEqual(unlinked.body.neverLink, ['gavin@hooli.test']);
    await runPendingJobs(deps);
    assert.equal((await api('get', `/objects/${objectId}/messages`, adminToken).expect(200)).body.entries.length, 0);
    const object = await api('get', `/objects/${objectId}`).expect(200);
    assert.deepEqual(object.body.rules.neverLink, ['gavin@hooli.test']);
  });

  it('imports CSV for admins: preview, then commit', async () => {
    const csv = 'type,name,emails,external_id\ncontact,Ann,ann@x.test,csv-1\ncontact,Broken,broken,csv-2\n';
    await api('post', '/objects/import').set('Content-Type', 'text/csv').send(csv).expect(403);
    const preview = await api('post', '/objects/import', adminToken).set('Content-Type', 'text/csv').send(csv).expect(200);
    assert.equal(preview.body.valid, 1);
    assert.deepEqual(preview.body.rows.find((r: { line: number }) => r.line === 3).errors, { emails: '"broken" is not an email address (example: jane@customer.com)' });
    assert.equal(await store.models.CrmObject.countDocuments({ externalId: 'csv-1' }), 0);
    const committed = await api('post', '/objects/import?commit=true', adminToken).set('Content-Type', 'text/csv').send(csv).expect(200);
    assert.equal(committed.body.creates, 1);
    assert.equal(committed.body.jobIds.length, 1);
    assert.equal(await store.models.CrmObject.countDocuments({ externalId: 'csv-1' }), 1);
    const notCsv = await api('post', '/objects/import', adminToken).send({ csv }).expect(415);
    assert.equal(notCsv.body.error.code, 'UNSUPPORTED_MEDIA_TYPE');
    const badFile = await api('post', '/objects/import', adminToken).set('Content-Type', 'text/csv').send('emails\na@b.test\n').expect(400);
    assert.equal(badFile.body.error.code, 'CSV_INVALID');
  });

  it('imports CSV bytes in the encoding they are in: declared charset, else UTF-8, else Windows-1252', async () => {
    const latin1 = Buffer.from('type;name;emails\ncontact;Jos\xe9 Mu\xf1oz;jose@x.test\n', 'latin1');
    const guessed = await api('post', '/objects/import', adminToken).set('Content-Type', 'text/csv').send(latin1).expect(200);
    assert.equal(guessed.body.rows[0].name, 'José Muñoz');
    const declared = await api('post', '/objects/import', adminToken).set('Content-Type', 'text/csv; charset=ISO-8859-1').send(latin1).expect(200);
    assert.equal(declared.body.rows[0].name, 'José Muñoz');
    const wrong = await api('post', '/objects/import', adminToken).set('Content-Type', 'text/csv; charset=utf-8').send(latin1).expect(400);
    assert.match(wrong.body.error.message, /declared UTF-8 but is not valid UTF-8/);
    const unknown = await api('post', '/objects/import', adminToken).set('Content-Type', 'text/csv; charset=x-klingon').send(latin1).expect(400);
    assert.match(unknown.body.error.message, /charset "x-klingon"/);
  });
});
