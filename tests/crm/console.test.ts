import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { Types } from 'mongoose';
import { SecretBox } from '../../gateway/core/crypto';
import { secretContext, urlContext } from '../../gateway/crm/webhooks';
import type { PublicUser } from '../../gateway/accounts';
import { runPendingJobs } from '../../gateway/crm/backfill';
import { IMPORT_LEASE_TTL_MS } from '../../gateway/crm/import-once';
import { linkMessage } from '../../gateway/crm/link';
import { acquireLease, leaseHeld } from '../../gateway/sync/lease';
import { buildApp, makeUser, signIn, storeMessage, type SignedIn, type TestApp, type TestStore } from '../admin/fixtures';
import { openTestStore } from '../support/store';
import { testLog } from './support';

describe('crm: console pages for objects, CSV import and webhooks (real app, real store)', () => {
  let store: TestStore;
  let testApp: TestApp;
  let admin: SignedIn;
  let bobSession: SignedIn;
  let bob: PublicUser;
  const crm = () => ({ store, log: testLog, settings: { businessDomains: ['acme.test'] } });

  before(async () => {
    store = await openTestStore('crm_console');
    testApp = buildApp(store);
    await makeUser(store, 'admin@acme.test', 'admin');
    bob = await makeUser(store, 'bob@acme.test');
    admin = await signIn(testApp.app, 'admin@acme.test');
    bobSession = await signIn(testApp.app, 'bob@acme.test');
  });
  after(async () => store.drop());

  it('creates an object through the form, re-shows the form with field errors on bad input', async () => {
    const { agent, csrf } = bobSession;
    const bad = await agent.post('/objects').type('form').send({ _csrf: csrf, type: 'customer', name: 'Globex', domains: 'gmail.com', emails: 'not-an-address' }).expect(400);
    assert.match(bad.text, /free-mail domain/);
    assert.match(bad.text, /is not an email address/);
    assert.match(bad.text, /value="Globex"/, 'the form keeps what was typed');
    const created = await agent.post('/objects').type('form').send({ _csrf: csrf, type: 'customer', name: 'Globex', domains: 'Globex.test', emails: '' }).expect(303);
    assert.match(created.headers.location, /^\/objects\/[0-9a-f]{24}$/);
    const contact = await agent.post('/objects').type('form').send({ _csrf: csrf, type: 'contact', name: 'Jane Roe', emails: 'jane@globex.test', customer: 'Globex' }).expect(303);
    const page = await agent.get(contact.headers.location).expect(200);
    assert.match(page.text, /jane@globex\.test/);
    assert.match(page.text, /at <a href="\/objects\/[0-9a-f]{24}">Globex<\/a>/);
    const missing = await agent.post('/objects').type('form').send({ _csrf: csrf, type: 'contact', name: 'X', customer: 'No Such Co' }).expect(400);
    assert.match(missing.text, /no customer with this id, external id or name/);
    await agent.post('/objects').type('form').send({ type: 'lead', name: 'No CSRF' }).expect(403);
  });

  it('says so when an address typed is already on another record (mail to it links both)', async () => {
    const { agent, csrf } = bobSession;
    await agent.post('/objects').type('form').send({ _csrf: csrf, type: 'contact', name: 'Dana Dup', emails: 'dana@dup-console.test' }).expect(303);
    const again = await agent.post('/objects').type('form').send({ _csrf: csrf, type: 'lead', name: 'Dana (lead)', emails: 'Dana@Dup-Console.test, other@dup-console.test' }).expect(303);
    const page = await agent.get(again.headers.location).expect(200);
    assert.match(page.text, /dana@dup-console\.test is also on Dana Dup \(contact\): mail to it is linked to both/);
    await agent.post('/objects').type('form').send({ _csrf: csrf, type: 'contact', name: 'Dörte', emails: 'doerte@dürr-console.test' }).expect(303);
    const idn = await agent.post('/objects').type('form').send({ _csrf: csrf, type: 'lead', name: 'Dörte (lead)', emails: 'Dörte <doerte@Dürr-Console.test>' }).expect(303);
    assert.match((await agent.get(idn.headers.location).expect(200)).text, /doerte@dürr-console\.test is also on Dörte \(contact\)/);
    // Saving again without adding an address says nothing more.
    await agent.post(again.headers.location).type('form').send({ _csrf: csrf, type: 'lead', name: 'Dana (lead)', emails: 'dana@dup-console.test other@dup-console.test' }).expect(303);
    assert.doesNotMatch((await agent.get(again.headers.location).expect(200)).text, /is also on/);
  });

  it('shows Unicode (IDN) domains as they were typed, not as xn-- A-labels, and saving them again changes nothing', async () => {
    const { agent, csrf } = bobSession;
    const created = await agent.post('/objects').type('form').send({ _csrf: csrf, type: 'customer', name: 'Müller Konsole', emails: 'Info@Müller-Konsole.test', domains: 'müller-konsole.test', neverLink: 'noreply@müller-konsole.test' }).expect(303);
    const stored = (await store.models.CrmObject.findById(created.headers.location.split('/').pop()).lean())!;
    assert.deepEqual(stored.emails, ['info@xn--mller-konsole-wob.test'], 'stored in A-label form for matching');
    const page = await agent.get(created.headers.location).expect(200);
    assert.match(page.text, /info@müller-konsole\.test/);
    assert.match(page.text, /noreply@müller-konsole\.test/);
    assert.doesNotMatch(page.text, /xn--/);
    assert.match((await agent.get('/objects?q=müller').expect(200)).text, /info@müller-konsole\.test, @müller-konsole\.test/);
    const edit = await agent.get(`${created.headers.location}/edit`).expect(200);
    assert.match(edit.text, /<textarea id="domains" name="domains" placeholder="customer.com" aria-describedby="domains-hint">müller-konsole\.test<\/textarea>/);
    const jobs = await store.models.BackfillJob.countDocuments({ objectId: stored._id });
    await agent.post(created.headers.location).type('form').send({ _csrf: csrf, type: 'customer', name: 'Müller Konsole', emails: 'info@müller-konsole.test', domains: 'müller-konsole.test', neverLink: 'noreply@müller-konsole.test' }).expect(303);
    const after = (await store.models.CrmObject.findById(stored._id).lean())!;
    assert.deepEqual([after.emails, after.domains, after.rules?.neverLink], [stored.emails, stored.domains, stored.rules?.neverLink]);
    assert.equal(await store.models.BackfillJob.countDocuments({ objectId: stored._id }), jobs, 'nothing changed, no job');
  });

  it('lists and searches objects; the sidebar links to them', async () => {
    const { agent } = bobSession;
    const list = await agent.get('/objects').expect(200);
    assert.match(list.text, /href="\/objects" class="active" aria-current="page">Objects<\/a>/);
    const search = await agent.get('/objects?q=jane%40globex.test').expect(200);
    assert.match(search.text, /Jane Roe/);
    assert.doesNotMatch(search.text, />Globex<\/a>/);
    const none = await agent.get('/objects?q=zzz').expect(200);
    assert.match(none.text, /Nothing matches/);
    await agent.get('/objects/0123456789abcdef01234567').expect(404);
    await agent.get('/objects/not-an-id').expect(404);
  });

  it("shows the object's timeline with why each message is linked, and unlinks with a never-link rule", async () => {
    const globex = (await store.models.CrmObject.findOne({ name: 'Globex' }).lean())!;
    await runPendingJobs(crm());
    const stored = await storeMessage(store, { from: 'Peter <peter@globex.test>', to: 'bob@acme.test', subject: 'Quarterly review' }, { ownerId: bob.id });
    await linkMessage(crm(), (await store.models.Message.findById(stored.id).lean()) as never);
    const { agent, csrf } = bobSession;
    const page = await agent.get(`/objects/${globex._id}`).expect(200);
    assert.match(page.text, /Quarterly review/);
    assert.match(page.text, /<span class="badge blue">domain<\/span> peter@globex\.test <span class="muted">in From \(globex\.test\)<\/span>/);
    // The message page lists the object too.
    const messagePage = await agent.get(`/messages/${stored.id}`).expect(200);
    assert.match(messagePage.text, new RegExp(`href="/objects/${globex._id}">Globex</a>`));
    // Each Unlink says, to a screen reader, what it unlinks: read out of its row it was a bare "Unlink".
    assert.match(page.text, /Unlink<span class="sr-only">: Quarterly review<\/span><\/button>/);
    assert.match(messagePage.text, /Unlink<span class="sr-only"> Globex<\/span><\/button>/);

    await agent.post(`/objects/${globex._id}/unlink`).type('form').send({ _csrf: csrf, messageId: stored.id, neverLink: 'on' }).expect(303);
    const after = await agent.get(`/objects/${globex._id}`).expect(200);
    assert.doesNotMatch(after.text, /Quarterly review/);
    assert.match(after.text, /Never linked<\/dt><dd>peter@globex\.test/);
    assert.match(after.text, /Re-check links/, 'the prune job is shown with its progress');
  });

  it('hides import and webhooks from employees', async () => {
    const { agent } = bobSession;
    await agent.get('/objects/import').expect(404);
    await agent.get('/objects/webhooks').expect(404);
    const list = await agent.get('/objects').expect(200);
    assert.doesNotMatch(list.text, /Import CSV/);
  });

  it('imports CSV: paste → preview with per-row errors → commit; file upload as text/csv with the CSRF header', async () => {
    const { agent, csrf } = admin;
    const csv = 'type,name,emails,external_id\ncontact,Ann,ann@x.test,c-1\ncontact,Broken,nope,c-2\nlead,,l@x.test,l-1\n';
    const posted = await agent.post('/objects/import').type('form').send({ _csrf: csrf, csv, type: '' }).expect(303);
    assert.match(posted.headers.location, /^\/objects\/import\/[0-9a-f]{24}$/);
    const preview = await agent.get(posted.headers.location).expect(200);
    assert.match(preview.text, /<dt>Will be created<\/dt><dd>1<\/dd>/);
    assert.match(preview.text, /<td>3<\/td>\s*<td>Broken<\/td>\s*<td class="small"><div><strong>emails<\/strong> &#34;nope&#34; is not an email address/);
    assert.match(preview.text, /<td>4<\/td>\s*<td>—<\/td>\s*<td class="small"><div><strong>name<\/strong> is required/);
    assert.equal(await store.models.CrmObject.countDocuments({ externalId: 'c-1' }), 0);
    await agent.post(`${posted.headers.location}/commit`).type('form').send({ _csrf: csrf }).expect(303);
    const done = await agent.get(posted.headers.location).expect(200);
    assert.match(done.text, /<dt>Created<\/dt><dd>1<\/dd>/);
    assert.equal(await store.models.CrmObject.countDocuments({ externalId: 'c-1' }), 1);

    // The JavaScript upload path: raw text/csv, CSRF token in a header; JSON answers (where the preview is, or the problem).
    const upload = await agent.post('/objects/import?filename=people.csv&type=lead').set('Content-Type', 'text/csv').set('X-CSRF-Token', csrf).send('name,emails\nLee,lee@x.test\n').expect(200);
    assert.match(upload.body.location, /^\/objects\/import\/[0-9a-f]{24}$/);
    const refused = await agent.post('/objects/import').set('Content-Type', 'text/csv').set('X-CSRF-Token', csrf).send('emails\na@b.test\n').expect(400);
    assert.equal(refused.body.error.code, 'CSV_INVALID');
    assert.match(refused.body.error.message, /no "name" column/);
    const uploaded = await agent.get(upload.body.location).expect(200);
    assert.match(uploaded.text, /people\.csv · 1 rows/);
    await agent.post('/objects/import').set('Content-Type', 'text/csv').send('name\nx\n').expect(403);
    // An unreadable file comes back to the form with the reason.
    const bad = await agent.post('/objects/import').type('form').send({ _csrf: csrf, csv: 'emails\na@b.test\n' }).expect(303);
    assert.equal(bad.headers.location, '/objects/import');
    const form = await agent.get('/objects/import').expect(200);
    assert.match(form.text, /no &#34;name&#34; column/);
  });

  it('imports once when Import is pressed twice (a double click, a reload during a long import)', async () => {
    const { agent, csrf } = admin;
    const rows = Array.from({ length: 300 }, (_, i) => `contact,Twice ${i},twice${i}@twice.test`);
    const posted = await agent.post('/objects/import').type('form').send({ _csrf: csrf, csv: `type,name,emails\n${rows.join('\n')}\n`, type: '' }).expect(303);
    const commit = () => agent.post(`${posted.headers.location}/commit`).type('form').send({ _csrf: csrf });
    const answers = await Promise.all([commit(), commit()]);
    for (const answer of answers) {
      assert.equal(answer.status, 303);
      assert.equal(answer.headers.location, posted.headers.location, 'both presses land on the one result');
    }
    assert.equal(await store.models.CrmObject.countDocuments({ emails: /@twice\.test$/ }), 300, 'each row imported once');
    const done = await agent.get(posted.headers.location).expect(200);
    assert.match(done.text, /<dt>Created<\/dt><dd>300<\/dd>/);
  });

  it('shows an import under way instead of its preview, and lets an abandoned one (admin restarted mid-import) be imported again', async () => {
    const { agent, csrf } = admin;
    const posted = await agent.post('/objects/import').type('form').send({ _csrf: csrf, csv: 'type,name,emails\ncontact,Held Row,held@held.test\n', type: '' }).expect(303);
    const id = posted.headers.location.split('/').pop();
    // Another request holds the upload's lease, as the first press does while it writes.
    const key = `csv-import:${id}`;
    assert.equal(await acquireLease(store, key, 'first-press', IMPORT_LEASE_TTL_MS), true);
    const running = await agent.get(posted.headers.location).expect(200);
    assert.match(running.text, /id="import-running" data-refresh="3"/);
    assert.doesNotMatch(running.text, /\/commit"/, 'no Import button while it runs');
    await agent.post(`${posted.headers.location}/commit`).type('form').send({ _csrf: csrf }).expect(303);
    await agent.post(`${posted.headers.location}/discard`).type('form').send({ _csrf: csrf }).expect(303);
    assert.equal(await store.models.CrmObject.countDocuments({ emails: 'held@held.test' }), 0, 'a second press does not import beside the first');
    assert.equal(await store.models.CsvImport.countDocuments({ _id: id }), 1, 'nor discards the upload under it');

    // The first press's admin was restarted: its lease is not renewed and runs out. The preview is back, and Import imports.
    await store.models.SyncLease.updateMany({ key }, { $set: { expiresAt: new Date(Date.now() - 1000) } });
    const preview = await agent.get(posted.headers.location).expect(200);
    assert.match(preview.text, /Import 1 row/);
    await agent.post(`${posted.headers.location}/commit`).type('form').send({ _csrf: csrf }).expect(303);
    assert.equal(await store.models.CrmObject.countDocuments({ emails: 'held@held.test' }), 1);
    assert.match((await agent.get(posted.headers.location).expect(200)).text, /<dt>Created<\/dt><dd>1<\/dd>/);
  });

  it('gives the upload back when its import fails, so Import can be pressed again', async () => {
    const { agent, csrf } = admin;
    const posted = await agent.post('/objects/import').type('form').send({ _csrf: csrf, csv: 'type,name,emails\ncontact,Later Row,later@later.test\n', type: '' }).expect(303);
    const id = posted.headers.location.split('/').pop();
    // A file the import refuses (an upload is checked when saved: this one is spoiled in the store afterwards).
    await store.models.CsvImport.updateOne({ _id: id }, { $set: { csv: 'emails\nlater@later.test\n' } });
    const failed = await agent.post(`${posted.headers.location}/commit`).type('form').send({ _csrf: csrf });
    assert.equal(failed.status, 400);
    assert.match(failed.text, /no &#34;name&#34; column/);
    const upload = await store.models.CsvImport.findById(id).lean();
    assert.equal(upload?.status, 'uploaded', 'not left claimed');
    assert.equal(await leaseHeld(store, `csv-import:${id}`), false, 'the lease is given back');
  });

  it('manages webhooks: loopback refused unless allowed, secret shown once, deliveries can be resent', async () => {
    const { agent, csrf } = admin;
    const refused = await agent.post('/objects/webhooks').type('form').send({ _csrf: csrf, url: 'http://127.0.0.1:9/hook' }).expect(400);
    assert.match(refused.text, /private or loopback address/);
    const created = await agent.post('/objects/webhooks').type('form').send({ _csrf: csrf, url: 'http://127.0.0.1:9/hook', allowPrivate: 'on', description: 'local CRM' }).expect(201);
    const secret = /id="webhook-secret">(whsec_[A-Za-z0-9_-]+)</.exec(created.text)?.[1];
    assert.ok(secret, 'the secret is shown once');
    const hook = (await store.models.Webhook.findOne({}).lean())!;
    const list = await agent.get('/objects/webhooks').expect(200);
    assert.ok(!list.text.includes(secret), 'and never again');
    assert.match(list.text, />http:\/\/127\.0\.0\.1:9\/hook<\/a>/);
    assert.match((await agent.get(`/objects/webhooks/${hook._id}`).expect(200)).text, /name="url" value="http:\/\/127.0.0.1:9\/hook"/, 'the edit form has the whole URL');
    await agent.post(`/objects/webhooks/${hook._id}/test`).type('form').send({ _csrf: csrf }).expect(303);
    const delivery = (await store.models.WebhookDelivery.findOne({ webhookId: hook._id }).lean())!;
    await store.models.WebhookDelivery.updateOne({ _id: delivery._id }, { $set: { status: 'failed', attempts: 3 } });
    const page = await agent.get(`/objects/webhooks/${hook._id}`).expect(200);
    assert.match(page.text, /<span class="badge red">failed<\/span>/);
    assert.match(page.text, new RegExp(`Resend<span class="sr-only"> ${delivery.eventType} ${delivery.eventId}</span></button>`), 'a screen reader hears which delivery');
    await agent.post(`/objects/webhooks/${hook._id}/deliveries/${delivery._id}/resend`).type('form').send({ _csrf: csrf }).expect(303);
    assert.equal((await store.models.WebhookDelivery.findById(delivery._id).lean())!.status, 'pending');
    await agent.post(`/objects/webhooks/${new Types.ObjectId()}/deliveries/${delivery._id}/resend`).type('form').send({ _csrf: csrf }).expect(404);
    const update = await agent.post(`/objects/webhooks/${hook._id}`).type('form').send({ _csrf: csrf, url: 'http://127.0.0.1:9/hook-v2', description: 'new text', enabled: 'on' }).expect(400);
    assert.match(update.text, /private or loopback/);
    assert.match(update.text, /name="url" value="http:\/\/127.0.0.1:9\/hook-v2"/, 'the form keeps the URL typed');
    assert.match(update.text, /name="description" value="new text"/);
    // Too long a description is refused on edit as on create (it used to be cut silently).
    const long = await agent.post(`/objects/webhooks/${hook._id}`).type('form').send({ _csrf: csrf, url: 'http://127.0.0.1:9/hook', description: 'x'.repeat(501), enabled: 'on', allowPrivate: 'on' }).expect(400);
    assert.match(long.text, /id="description-error">must be at most 500 characters/);
    assert.equal((await store.models.Webhook.findById(hook._id).lean())!.description, 'local CRM');
  });

  it('a webhook URL sealed with a SECRET_KEY since lost is asked for again, not a broken page', async () => {
    const { agent, csrf } = admin;
    const lostKey = new SecretBox(crypto.randomBytes(32), 'secrets');
    const _id = new Types.ObjectId();
    await store.models.Webhook.collection.insertOne({
      _id, url: 'https://crm.acme.test/hooks/…', urlEnc: lostKey.seal('https://crm.acme.test/hooks/T0k3n', urlContext(_id)),
      secretEnc: lostKey.seal('whsec_lost', secretContext(_id)), secretPrefix: 'whsec_lost', description: 'before the key was lost',
      events: ['link.created'], enabled: true, allowPrivate: false, createdAt: new Date(), updatedAt: new Date(),
    });
    const page = await agent.get(`/objects/webhooks/${_id}`).expect(200);
    assert.match(page.text, /<p class="muted">https:\/\/crm\.acme\.test\/hooks\/…<\/p>/);
    assert.match(page.text, /id="url-error">cannot be read with this SECRET_KEY \(it was sealed with a key since lost\): enter the URL again/);
    assert.match(page.text, /name="url" value=""/);
    await agent.post(`/objects/webhooks/${_id}`).type('form').send({ _csrf: csrf, url: 'http://127.0.0.1:9/hook-again', description: 'entered again', enabled: 'on', allowPrivate: 'on' }).expect(303);
    const again = await agent.get(`/objects/webhooks/${_id}`).expect(200);
    assert.match(again.text, /name="url" value="http:\/\/127.0.0.1:9\/hook-again"/);
    assert.doesNotMatch(again.text, /url-error/);
    await store.models.Webhook.deleteOne({ _id });
  });

  it('changes the matching settings (admins): extra free-mail domains, sub-addresses, sharing', async () => {
    const { agent, csrf } = admin;
    await bobSession.agent.get('/objects/settings').expect(404);
    const page = await agent.get('/objects/settings').expect(200);
    assert.match(page.text, /name="stripSubaddress" checked/);
    const bad = await agent.post('/objects/settings').type('form').send({ _csrf: csrf, freemailDomains: 'ok.test\nnot a domain', stripSubaddress: 'on' }).expect(400);
    assert.match(bad.text, /&#34;not&#34;, &#34;a&#34;, &#34;domain&#34; are not domain names/);
    await agent.post('/objects/settings').type('form').send({ _csrf: csrf, freemailDomains: 'Mail.ISP.test', shareLinkedMail: 'on' }).expect(303);
    const saved = (await store.models.BusinessSettings.findById('business').lean())!;
    assert.deepEqual(saved.freemailDomains, ['mail.isp.test']);
    assert.equal(saved.stripSubaddress, false);
    assert.equal(saved.shareLinkedMail, true);
    assert.deepEqual(saved.domains, ['acme.test'], 'BUSINESS_DOMAINS is recorded on the first save');
    // The new free-mail domain is refused as a customer domain.
    const refused = await agent.post('/objects').type('form').send({ _csrf: csrf, type: 'customer', name: 'ISP', domains: 'mail.isp.test' }).expect(400);
    assert.match(refused.text, /free-mail domain/);
    await store.models.BusinessSettings.updateOne({ _id: 'business' }, { $set: { stripSubaddress: true, shareLinkedMail: false } });
  });

  it('lets admins delete objects', async () => {
    const { agent, csrf } = admin;
    const ann = (await store.models.CrmObject.findOne({ externalId: 'c-1' }).lean())!;
    await bobSession.agent.post(`/objects/${ann._id}/delete`).type('form').send({ _csrf: bobSession.csrf }).expect(404);
    await agent.post(`/objects/${ann._id}/delete`).type('form').send({ _csrf: csrf }).expect(303);
    assert.equal(await store.models.CrmObject.countDocuments({ _id: ann._id }), 0);
  });
});
