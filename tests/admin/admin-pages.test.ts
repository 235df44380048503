import { strict as assert } from 'node:assert';
import request from 'supertest';
import { inviteUser, SYSTEM_ACTOR, verifyPassword } from '../../gateway/accounts';
import { buildApp, csrfFrom, holdAuthenticate, makeUser, signIn, type TestApp, type TestStore } from './fixtures';
import { openTestStore } from '../support/store';

describe('admin: users, invites, API tokens, audit log', () => {
  let store: TestStore;
  let testApp: TestApp;
  before(async () => {
    store = await openTestStore('admin_pages');
    testApp = buildApp(store);
    await makeUser(store, 'admin@acme.test', 'admin');
    await makeUser(store, 'bob@acme.test');
  });
  after(async () => store.drop());

  it('hides admin pages from employees (404) and anonymous visitors (sign-in)', async () => {
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    for (const path of ['/users', '/tokens', '/audit']) await agent.get(path).expect(404);
    await agent.post('/users/invite').type('form').send({ _csrf: csrf, email: 'x@acme.test' }).expect(404);
    await agent.post('/tokens').type('form').send({ _csrf: csrf, user: 'bob@acme.test' }).expect(404);
    const nav = await agent.get('/').expect(200);
    assert.doesNotMatch(nav.text, /href="\/users"/);
    await request(testApp.app).get('/users').expect(303).expect('Location', '/login?next=%2Fusers');
  });

  it('invites a user with an expiring one-time link; the invitee sets a password and is signed in', async () => {
    let now = new Date();
    const { app } = buildApp(store, { clock: () => now });
    const admin = await signIn(app, 'admin@acme.test');
    const res = await admin.agent.post('/users/invite').type('form').send({ _csrf: admin.csrf, email: 'New.Hire@acme.test', role: 'employee', name: 'New Hire' }).expect(201);
    const link = /data-copy="(http:\/\/127\.0\.0\.1:8080\/invite\/[A-Za-z0-9_-]+)"/.exec(res.text)?.[1];
    assert.ok(link, 'the invite link is shown once with a copy button');
    assert.match(res.text, /expires/);
    const path = new URL(link).pathname;
    const stored = (await store.models.User.findOne({ email: 'new.hire@acme.test' }).lean())!;
    assert.equal(stored.passwordHash, '');
    assert.ok(!JSON.stringify(stored).includes(path.split('/').pop()!), 'only the hash of the token is stored');

    const invitee = request.agent(app);
    const form = await invitee.get(path).expect(200);
    assert.match(form.text, /new\.hire@acme\.test/);
    const short = await invitee.post(path).type('form').send({ _csrf: csrfFrom(form.text), password: 'short', confirm: 'short' }).expect(400);
    assert.match(short.text, /at least 12 characters/);
    await invitee.post(path).type('form').send({ _csrf: csrfFrom(form.text), name: 'New Hire', password: 'a-good-long-password', confirm: 'a-good-long-password' }).expect(303).expect('Location', '/preferences/email');
    await invitee.get('/preferences/email').expect(200);
    await request(app).get(path).expect(404); // used: the link no longer works

    const late = await admin.agent.post('/users/invite').type('form').send({ _csrf: admin.csrf, email: 'late@acme.test' }).expect(201);
    const latePath = new URL(/data-copy="([^"]+\/invite\/[^"]+)"/.exec(late.text)![1]).pathname;
    now = new Date(now.getTime() + 8 * 24 * 3600 * 1000);
    const expired = await request(app).get(latePath).expect(404);
    assert.match(expired.text, /does not work/);
  });

  it('an admin makes a password reset link for a user who forgot theirs; it sets a new one and signs the user out elsewhere', async () => {
    let now = new Date();
    const { app } = buildApp(store, { clock: () => now });
    const forgetful = await makeUser(store, 'forgetful@acme.test');
    const elsewhere = await signIn(app, 'forgetful@acme.test');
    const admin = await signIn(app, 'admin@acme.test');
    const users = await admin.agent.get('/users').expect(200);
    assert.match(users.text, new RegExp(`action="/users/${forgetful.id}/reset-link"`), 'a Reset password button per user');

    const made = await admin.agent.post(`/users/${forgetful.id}/reset-link`).type('form').send({ _csrf: admin.csrf }).expect(201);
    assert.match(made.text, /Password reset link for forgetful@acme\.test/);
    const path = new URL(/data-copy="([^"]+\/invite\/[^"]+)"/.exec(made.text)![1]).pathname;
    const audit = await store.models.AuditEvent.findOne({ action: 'user.reset_link', targetId: forgetful.id }).lean();
    assert.equal(audit?.actorEmail, 'admin@acme.test');
    assert.equal((audit?.details as { email?: string }).email, 'forgetful@acme.test');
    await signIn(app, 'forgetful@acme.test'); // the current password works until the link is used

    const page = request.agent(app);
    const form = await page.get(path).expect(200);
    assert.match(form.text, /<h1>Set a new password<\/h1>/);
    await page.post(path).type('form').send({ _csrf: csrfFrom(form.text), password: 'forgetfuls-new-long-password', confirm: 'forgetfuls-new-long-password' }).expect(303).expect('Location', '/');
    await page.get('/').expect(200);
    await elsewhere.agent.get('/').expect(303); // their other browser is signed out
    await assert.rejects(signIn(app, 'forgetful@acme.test'), /failed with 401/, 'the old password no longer works');
    await signIn(app, 'forgetful@acme.test', 'forgetfuls-new-long-password');
    await request(app).get(path).expect(404); // used once
    const changed = await store.models.AuditEvent.findOne({ action: 'user.password', targetId: forgetful.id }).lean();
    assert.equal((changed?.details as { email?: string }).email, 'forgetful@acme.test', 'the audit log names whose password changed');

    const again = await admin.agent.post(`/users/${forgetful.id}/reset-link`).type('form').send({ _csrf: admin.csrf }).expect(201);
    const laterPath = new URL(/data-copy="([^"]+\/invite\/[^"]+)"/.exec(again.text)![1]).pathname;
    now = new Date(now.getTime() + 25 * 3600 * 1000);
    await request(app).get(laterPath).expect(404); // a reset link lasts a day
  });

  it('shows an invite that ran out as expired, not as "invited · expires" in the past', async () => {
    await inviteUser(store, { email: 'slow@acme.test' }, SYSTEM_ACTOR, { now: new Date(Date.now() - 8 * 24 * 3600 * 1000) });
    const admin = await signIn(testApp.app, 'admin@acme.test');
    const row = /<tr>\s*<td><strong>slow@acme\.test<\/strong>[\s\S]*?<\/tr>/.exec((await admin.agent.get('/users').expect(200)).text)?.[0] ?? '';
    assert.match(row, /invite expired/);
    assert.doesNotMatch(row, /invited · expires/);
  });

  it('an invite link is used once even when two browsers send its form at the same moment', async () => {
    const { app } = testApp;
    const { token } = await inviteUser(store, { email: 'raced@acme.test' }, SYSTEM_ACTOR);
    const path = `/invite/${token}`;
    // The invitee and whoever else got hold of the link, each with the form open.
    const browsers = await Promise.all([0, 1].map(async () => {
      const agent = request.agent(app);
      return { agent, csrf: csrfFrom((await agent.get(path).expect(200)).text) };
    }));
    const answers = await Promise.all(browsers.map(({ agent, csrf }, i) =>
      agent.post(path).type('form').send({ _csrf: csrf, password: `raced-password-number-${i}`, confirm: `raced-password-number-${i}` })));
    assert.deepEqual(answers.map((res) => res.status).sort(), [303, 404]);
    const winner = answers.findIndex((res) => res.status === 303);
    await browsers[winner].agent.get('/preferences/email').expect(200);
    await browsers[1 - winner].agent.get('/preferences/email').expect(303);
    const stored = (await store.models.User.findOne({ email: 'raced@acme.test' }).lean())!;
    assert.ok(await verifyPassword(stored.passwordHash!, `raced-password-number-${winner}`), 'the password is the one of the browser that was signed in');
  });

  it('re-issuing an invite tells the admin that the earlier link no longer works', async () => {
    const { app } = testApp;
    const admin = await signIn(app, 'admin@acme.test');
    const invite = async () => {
      const res = await admin.agent.post('/users/invite').type('form').send({ _csrf: admin.csrf, email: 'ines@acme.test' }).expect(201);
      return { text: res.text, path: new URL(/data-copy="([^"]+\/invite\/[^"]+)"/.exec(res.text)![1]).pathname };
    };
    const replaced = /A new invite link was made for ines@acme\.test; the earlier link no longer works\./;
    const first = await invite();
    assert.doesNotMatch(first.text, replaced, 'a first invite replaces nothing');
    const second = await invite();
    assert.match(second.text, replaced);
    assert.match((await request(app).get(first.path).expect(404)).text, /does not work/);
    await request(app).get(second.path).expect(200);
    assert.doesNotMatch((await admin.agent.get('/users').expect(200)).text, replaced, 'said once, not again on the next page');
    const audit = await store.models.AuditEvent.find({ action: 'user.invite', 'details.email': 'ines@acme.test' }).sort({ _id: 1 }).lean();
    assert.deepEqual(audit.map((event) => (event.details as { replacedLink: boolean }).replacedLink), [false, true]);

    // Once the earlier link has expired, a new one replaces nothing that worked.
    const later = new Date(Date.now() + 8 * 24 * 3600 * 1000);
    assert.equal((await inviteUser(store, { email: 'ines@acme.test' }, SYSTEM_ACTOR, { now: later })).replacedLink, false);
    assert.equal((await inviteUser(store, { email: 'ines@acme.test' }, SYSTEM_ACTOR, { now: later })).replacedLink, true);
  });

  it('re-renders the invite form with a field error for a bad or existing email', async () => {
    const admin = await signIn(testApp.app, 'admin@acme.test');
    const bad = await admin.agent.post('/users/invite').type('form').send({ _csrf: admin.csrf, email: 'nope' }).expect(400);
    assert.match(bad.text, /is not an email address/);
    const taken = await admin.agent.post('/users/invite').type('form').send({ _csrf: admin.csrf, email: 'bob@acme.test' }).expect(409);
    assert.match(taken.text, /is already a user/);
  });

  it('a user disabled while a request of theirs was running stays signed out when enabled again', async () => {
    const dana = await makeUser(store, 'dana@acme.test');
    const admin = await signIn(testApp.app, 'admin@acme.test');
    const danaSession = await signIn(testApp.app, 'dana@acme.test');
    const slow = await holdAuthenticate(store, dana, danaSession, 'disabled-imap@acme.test');
    try {
      await admin.agent.post(`/users/${dana.id}/disable`).type('form').send({ _csrf: admin.csrf }).expect(303);
      assert.equal((await slow.finish()).status, 303);
      await admin.agent.post(`/users/${dana.id}/enable`).type('form').send({ _csrf: admin.csrf }).expect(303);
      await danaSession.agent.get('/preferences/profile').expect(303).expect('Location', '/login?next=%2Fpreferences%2Fprofile');
    } finally {
      slow.close();
    }
  });

  it('changes roles, refuses to demote the last admin, disables and re-enables users (sessions end)', async () => {
    const admin = await signIn(testApp.app, 'admin@acme.test');
    const self = (await store.models.User.findOne({ email: 'admin@acme.test' }).lean())!;
    await admin.agent.post(`/users/${self._id}/role`).type('form').send({ _csrf: admin.csrf, role: 'employee' }).expect(303);
    assert.equal((await store.models.User.findById(self._id).lean())!.role, 'admin');
    const page = await admin.agent.get('/users').expect(200);
    assert.match(page.text, /last enabled admin/);

    const carol = await makeUser(store, 'carol@acme.test');
    const carolSession = await signIn(testApp.app, carol.email);
    await admin.agent.post(`/users/${carol.id}/role`).type('form').send({ _csrf: admin.csrf, role: 'admin' }).expect(303);
    assert.equal((await store.models.User.findById(carol.id).lean())!.role, 'admin');
    await carolSession.agent.get('/users').expect(200);
    await admin.agent.post(`/users/${carol.id}/role`).type('form').send({ _csrf: admin.csrf, role: 'wizard' }).expect(303);
    assert.equal((await store.models.User.findById(carol.id).lean())!.role, 'admin');

    await admin.agent.post(`/users/${carol.id}/disable`).type('form').send({ _csrf: admin.csrf }).expect(303);
    assert.equal((await store.models.User.findById(carol.id).lean())!.disabled, true);
    assert.equal(await store.models.Session.countDocuments({ userId: carol.id }), 0, 'her sessions are gone');
    await carolSession.agent.get('/').expect(303);
    await admin.agent.post(`/users/${carol.id}/enable`).type('form').send({ _csrf: admin.csrf }).expect(303);
    assert.equal((await store.models.User.findById(carol.id).lean())!.disabled, false);
    await admin.agent.post('/users/ffffffffffffffffffffffff/disable').type('form').send({ _csrf: admin.csrf }).expect(404);
    const actions = (await store.models.AuditEvent.find({ targetId: carol.id }).lean()).map((e) => e.action);
    for (const action of ['user.role', 'user.disable', 'user.enable']) assert.ok(actions.includes(action), action);
  });

  it('creates an API token shown once, lists it by prefix, revokes it (the API then answers 401)', async () => {
    const admin = await signIn(testApp.app, 'admin@acme.test');
    const created = await admin.agent.post('/tokens').type('form').send({ _csrf: admin.csrf, user: 'bob@acme.test', name: 'CRM sync' }).expect(201);
    const token = /data-copy="(pr_[A-Za-z0-9_-]+)"/.exec(created.text)?.[1];
    assert.ok(token);
    await request(testApp.app).get('/api/v1/accounts').set('Authorization', `Bearer ${token}`).expect(200);
    const list = await admin.agent.get('/tokens').expect(200);
    assert.ok(!list.text.includes(token), 'the full token is never shown again');
    assert.ok(list.text.includes(token.slice(0, 10)));
    const row = (await store.models.ApiToken.findOne({ name: 'CRM sync' }).lean())!;
    await admin.agent.post(`/tokens/${row._id}/revoke`).type('form').send({ _csrf: admin.csrf }).expect(303);
    const denied = await request(testApp.app).get('/api/v1/accounts').set('Authorization', `Bearer ${token}`).expect(401);
    assert.equal(denied.body.error.code, 'INVALID_TOKEN');
    const unknown = await admin.agent.post('/tokens').type('form').send({ _csrf: admin.csrf, user: 'ghost@acme.test' }).expect(404);
    assert.match(unknown.text, /no user with the email ghost@acme\.test/);
  });

  it('creates a read-only API token for reporting: it reads through the API, changes nothing, and the list says so', async () => {
    const admin = await signIn(testApp.app, 'admin@acme.test');
    const form = await admin.agent.get('/tokens').expect(200);
    assert.match(form.text, /<option value="read" >Read only: list and read<\/option>/);
    const created = await admin.agent.post('/tokens').type('form').send({ _csrf: admin.csrf, user: 'bob@acme.test', name: 'Reporting', access: 'read' }).expect(201);
    assert.match(created.text, /<h2>New read-only token for bob@acme\.test<\/h2>/);
    const token = /data-copy="(pr_[A-Za-z0-9_-]+)"/.exec(created.text)![1];
    await request(testApp.app).get('/api/v1/accounts').set('Authorization', `Bearer ${token}`).expect(200);
    const refused = await request(testApp.app).post('/api/v1/accounts').set('Authorization', `Bearer ${token}`).send({ email: 'more@acme.test' }).expect(403);
    assert.equal(refused.body.error.code, 'TOKEN_READ_ONLY');
    const row = /<tr>\s*<td>Reporting<\/td>[\s\S]*?<\/tr>/.exec((await admin.agent.get('/tokens').expect(200)).text)![0];
    assert.match(row, /<td>read only<\/td>/);
    const bad = await admin.agent.post('/tokens').type('form').send({ _csrf: admin.csrf, user: 'bob@acme.test', name: 'x', access: 'admin' }).expect(400);
    assert.match(bad.text, /must be full or read/);
  });

  it('shows the audit log to admins, newest first', async () => {
    const admin = await signIn(testApp.app, 'admin@acme.test');
    const res = await admin.agent.get('/audit').expect(200);
    assert.match(res.text, /token\.revoke/);
    assert.match(res.text, /user\.create/);
    assert.ok(res.text.indexOf('token.revoke') < res.text.indexOf('user.create'), 'newest first');
    await admin.agent.get('/audit?before=garbage').expect(200);
  });

  it('filters the audit log to what happened to one user (linked from Users) or what one person did', async () => {
    const admin = await signIn(testApp.app, 'admin@acme.test');
    const quinn = await makeUser(store, 'quinn@acme.test');
    await admin.agent.post(`/users/${quinn.id}/disable`).type('form').send({ _csrf: admin.csrf }).expect(303);
    const users = await admin.agent.get('/users').expect(200);
    const history = new RegExp(`href="(/audit\\?targetType=user&amp;targetId=${quinn.id})"`).exec(users.text)?.[1];
    assert.ok(history, 'each user links to their history');
    const rows = (html: string) => [...html.matchAll(/<td><code>([a-z_.]+)<\/code><\/td>/g)].map((m) => m[1]);
    const hers = await admin.agent.get(history.replace(/&amp;/g, '&')).expect(200);
    assert.deepEqual(rows(hers.text), ['user.disable', 'user.create']);
    assert.match(hers.text, /what happened to user quinn@acme\.test/);
    const byAdmin = await admin.agent.get('/audit?actor=Admin@acme.test').expect(200);
    assert.ok(rows(byAdmin.text).length > 0);
    assert.ok(!rows(byAdmin.text).includes('user.create'), 'users were created by the system, not by the admin');
    assert.match(byAdmin.text, /what admin@acme\.test did/);
  });
});
