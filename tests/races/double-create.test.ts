/**
 * A double click on Create sends the form twice (the browser drops the first
 * answer and shows the second). One record must come of it, not two
 * identical ones that every matching mail is then linked to.
 */
import { strict as assert } from 'node:assert';
import { buildApp, makeUser, signIn, type SignedIn, type TestApp, type TestStore } from '../admin/fixtures';
import { openTestStore } from '../support/store';

/** The hidden fields of a page's form (what a browser sends back unchanged). */
function hiddenFields(html: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [tag] of html.matchAll(/<input\b[^>]*type="hidden"[^>]*>/g)) {
    const name = /\bname="([^"]*)"/.exec(tag)?.[1];
    if (name) fields[name] = /\bvalue="([^"]*)"/.exec(tag)?.[1] ?? '';
  }
  return fields;
}

describe('a create form sent twice by a double click', function () {
  this.timeout(60_000);
  let store: TestStore;
  let testApp: TestApp;
  let admin: SignedIn;

  before(async () => {
    store = await openTestStore('race_double_create');
    testApp = buildApp(store);
    await makeUser(store, 'dbl@acme.test', 'admin');
    admin = await signIn(testApp.app, 'dbl@acme.test');
  });
  after(async () => store.drop());

  it('New object: creates one record and answers both presses with it', async () => {
    const page = await admin.agent.get('/objects/new?type=contact').expect(200);
    const form = { ...hiddenFields(page.text), type: 'contact', name: 'Dora Double', emails: 'dora@double-customer.test' };
    const [first, second] = await Promise.all([
      admin.agent.post('/objects').type('form').send(form),
      admin.agent.post('/objects').type('form').send(form),
    ]);
    assert.deepEqual([first.status, second.status], [303, 303]);
    const rows = await store.models.CrmObject.find({ name: 'Dora Double' }).lean();
    assert.equal(rows.length, 1, 'one record');
    assert.equal(first.headers.location, `/objects/${rows[0]._id.toString()}`);
    assert.equal(second.headers.location, first.headers.location);
    assert.equal(await store.models.AuditEvent.countDocuments({ action: 'crm.object.create', targetId: rows[0]._id.toString() }), 1);
  });

  it('Webhooks → Add: registers one webhook (so each event is sent once), and both answers show its secret', async () => {
    const page = await admin.agent.get('/objects/webhooks').expect(200);
    const form = { ...hiddenFields(page.text), url: 'http://127.0.0.1:9/double-hook', allowPrivate: 'on', description: 'CRM' };
    const answers = await Promise.all([
      admin.agent.post('/objects/webhooks').type('form').send(form),
      admin.agent.post('/objects/webhooks').type('form').send(form),
    ]);
    assert.deepEqual(answers.map((a) => a.status), [201, 201]);
    const rows = await store.models.Webhook.find({ url: 'http://127.0.0.1:9/double-hook' }).lean();
    assert.equal(rows.length, 1, 'one webhook');
    const secrets = answers.map((a) => /id="webhook-secret">(whsec_[A-Za-z0-9_-]+)</.exec(a.text)?.[1]);
    assert.ok(secrets[0]);
    assert.equal(secrets[1], secrets[0], 'whichever answer the browser shows has the secret that signs');
    assert.equal(testApp.secretBox.open(rows[0].secretEnc, `webhook:${rows[0]._id.toString()}`), secrets[0]);
  });

  it('Preferences → Email → Add: adds the mailbox once and shows its page for both presses, not "already one of your mail accounts"', async () => {
    const page = await admin.agent.get('/preferences/email/new').expect(200);
    const form = { ...hiddenFields(page.text), email: 'dora-box@acme.test' };
    const answers = await Promise.all([
      admin.agent.post('/preferences/email').type('form').send(form),
      admin.agent.post('/preferences/email').type('form').send(form),
    ]);
    const rows = await store.models.MailAccount.find({ email: 'dora-box@acme.test' }).lean();
    assert.equal(rows.length, 1);
    assert.deepEqual(answers.map((a) => [a.status, a.headers.location]), [[303, `/preferences/email/${rows[0]._id.toString()}`], [303, `/preferences/email/${rows[0]._id.toString()}`]]);
    assert.equal(await store.models.AuditEvent.countDocuments({ action: 'account.create', targetId: rows[0]._id.toString() }), 1);
  });
});
