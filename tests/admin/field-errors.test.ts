/**
 * A refused form says what is wrong next to each field, and a screen reader hears it with the field:
 * every field error (partials/field-error.ejs, id `${field}-error`) is named by its field's
 * aria-describedby, and that field is marked aria-invalid (WCAG 3.3.1, 1.3.1).
 */
import { strict as assert } from 'node:assert';
import request from 'supertest';
import type { PublicUser } from '../../gateway/accounts';
import { buildApp, csrfFrom, makeAccount, makeUser, signIn, type TestApp, type TestStore } from './fixtures';
import { openTestStore } from '../support/store';

/** The ids of the field errors in a page that no aria-invalid field points at. */
function untiedErrors(html: string): { errors: string[]; untied: string[] } {
  const errors = [...html.matchAll(/<div class="error(?:-box)?"(?: role="alert")? id="([\w-]+-error)">/g)].map((match) => match[1]);
  const tags = [...html.matchAll(/<(?:input|select|textarea|div)\b[^>]*>/g)].map((match) => match[0]);
  const untied = errors.filter((id) => !tags.some((tag) => tag.includes('aria-invalid="true"') && new RegExp(`aria-describedby="[^"]*\\b${id}\\b`).test(tag)));
  return { errors, untied };
}

describe('admin: field errors are tied to their fields', () => {
  let store: TestStore;
  let testApp: TestApp;
  let adminUser: PublicUser;
  before(async () => {
    store = await openTestStore('admin_field_errors');
    testApp = buildApp(store);
    adminUser = await makeUser(store, 'admin@acme.test', 'admin');
  });
  after(async () => store.drop());

  const forms: Array<[string, string, Record<string, string>]> = [
    ['Profile → Change password', '/preferences/profile/password', { currentPassword: 'wrong-guess', newPassword: 'tiny', confirm: 'other' }],
    ['Profile → Name', '/preferences/profile', { name: 'x'.repeat(500) }],
    ['Business', '/preferences/business', { name: 'Acme', domains: 'not_a_domain', authPolicy: 'bounce', retentionDays: '-3' }],
    ['Users → Invite', '/users/invite', { email: 'nope', role: 'root' }],
    ['Objects → New', '/objects', { type: 'customer', name: '', emails: 'not-an-address', domains: 'gmail.com' }],
    ['Objects → Webhooks', '/objects/webhooks', { url: 'not a url', description: 'x'.repeat(600) }],
    ['Objects → Matching settings', '/objects/settings', { freemailDomains: 'not_a_domain' }],
  ];
  for (const [name, path, fields] of forms) {
    it(`${name}: each error is read with its field`, async () => {
      const { agent, csrf } = await signIn(testApp.app, 'admin@acme.test');
      const res = await agent.post(path).type('form').send({ _csrf: csrf, ...fields });
      assert.ok(res.status >= 400 && res.status < 500, `${path} answered ${res.status}`);
      const { errors, untied } = untiedErrors(res.text);
      assert.ok(errors.length > 0, `${path} shows a field error`);
      assert.deepEqual(untied, [], `errors no field points at: ${untied.join(', ')}`);
      // After the reload a screen reader starts with the title: it says the form was refused.
      assert.match(res.text, /<title>Error: [^<]+ · Postroom<\/title>/);
    });
  }

  it('Accept invite (set a password): each error is read with its field', async () => {
    const admin = await signIn(testApp.app, 'admin@acme.test');
    const invite = await admin.agent.post('/users/invite').type('form').send({ _csrf: admin.csrf, email: 'new.hire@acme.test', role: 'employee' }).expect(201);
    const path = new URL(/data-copy="(http[^"]+\/invite\/[A-Za-z0-9_-]+)"/.exec(invite.text)![1]).pathname;
    const invitee = request.agent(testApp.app);
    const form = await invitee.get(path).expect(200);
    const res = await invitee.post(path).type('form').send({ _csrf: csrfFrom(form.text), password: 'short', confirm: 'other' }).expect(400);
    const { errors, untied } = untiedErrors(res.text);
    assert.deepEqual(errors, ['password-error', 'confirm-error']);
    assert.deepEqual(untied, []);
  });

  it('Emails: a refused search or filter names the field as the form labels it, and the field points at the problem', async () => {
    const { agent } = await signIn(testApp.app, 'admin@acme.test');
    const long = await agent.get(`/?q=${'invoice '.repeat(30)}`).expect(400);
    // It said "q must be at most 200 characters": q is a name in the address, not on the page.
    assert.match(long.text, /id="filter-error">Search must be at most 200 characters</);
    assert.match(long.text, /<input type="search" id="q" name="q" aria-invalid="true" aria-describedby="filter-error"/);
    assert.doesNotMatch(long.text, /id="account"[^>]*aria-invalid/, 'only the refused field is marked');
    const stale = await agent.get('/?cursor=garbage').expect(400);
    assert.match(stale.text, /This link to older mail is out of date or damaged: go back to the newest/);
    assert.match(stale.text, /<a href="\/">« Newest<\/a>/, 'with the way back right there');
  });

  it('Delete a mail account: a wrong confirmation is read with the field to type it in', async () => {
    const admin = await signIn(testApp.app, 'admin@acme.test');
    const account = await makeAccount(store, adminUser, 'old@acme.test');
    const res = await admin.agent.post(`/preferences/email/${account.id}/delete`).type('form').send({ _csrf: admin.csrf, confirm: 'old@acme' });
    assert.equal(res.status, 400);
    const { errors, untied } = untiedErrors(res.text);
    assert.deepEqual(errors, ['confirm-error']);
    assert.deepEqual(untied, []);
  });

  it('a field\'s hint is read with it too, before and after a refusal', async () => {
    const { agent, csrf } = await signIn(testApp.app, 'admin@acme.test');
    const page = await agent.get('/preferences/profile').expect(200);
    assert.match(page.text, /<title>Profile · Postroom<\/title>/, 'a page that refused nothing has its plain title');
    // "At least 12 characters" was only on screen: a screen reader heard "New password" and nothing of the rule.
    assert.match(page.text, /<input type="password" id="newPassword"[^>]* aria-describedby="newPassword-hint">/);
    assert.match(page.text, /<div class="hint" id="newPassword-hint">At least 12 characters\.<\/div>/);
    const refused = await agent.post('/preferences/profile/password').type('form').send({ _csrf: csrf, currentPassword: 'x', newPassword: 'short', confirm: 'short' }).expect(400);
    assert.match(refused.text, /<input type="password" id="newPassword"[^>]* aria-invalid="true" aria-describedby="newPassword-hint newPassword-error">/);
    const compose = await agent.get('/compose').expect(200);
    assert.match(compose.text, /id="compose-attachments"[^>]* aria-describedby="compose-attachments-hint">/, 'the size limit is read with the attachment picker');
    const account = await makeAccount(store, adminUser, 'hints@acme.test');
    const imap = await agent.get(`/preferences/email/${account.id}`).expect(200);
    assert.match(imap.text, /id="imap-password"[^>]* aria-describedby="imap-password-hint">/, 'which password to use is read with the field');
    assert.match(imap.text, /id="imap-folders"[^>]* aria-describedby="imap-folders-hint">/);
    const business = await agent.get('/preferences/business').expect(200);
    assert.match(business.text, /id="retentionDays"[^>]* aria-describedby="retentionDays-hint">/);
  });
});
