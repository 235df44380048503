/**
 * A double click on Delete sends the form twice, one after the other: the
 * first deletes, the second finds nothing. The browser shows the second
 * answer, which must be the list with "already deleted", not a "not found"
 * error page for something the user just deleted.
 */
import { strict as assert } from 'node:assert';
import type { PublicUser } from '../../gateway/accounts';
import { buildApp, makeAccount, makeUser, signIn, storeMessage, type SignedIn, type TestApp, type TestStore } from '../admin/fixtures';
import { openTestStore } from '../support/store';

describe('a delete form sent twice by a double click', function () {
  this.timeout(60_000);
  let store: TestStore;
  let testApp: TestApp;
  let admin: SignedIn;
  let adminUser: PublicUser;
  let adminId: string;

  before(async () => {
    store = await openTestStore('race_double_delete');
    testApp = buildApp(store);
    adminUser = await makeUser(store, 'twice@acme.test', 'admin');
    adminId = adminUser.id;
    admin = await signIn(testApp.app, 'twice@acme.test');
  });
  after(async () => store.drop());

  async function pressTwice(path: string, form: Record<string, string> = {}) {
    const send = () => admin.agent.post(path).type('form').send({ _csrf: admin.csrf, ...form });
    const first = await send();
    const second = await send();
    return { first, second };
  }

  it('a message: the second press lands on the inbox, told it is already deleted', async () => {
    const account = await makeAccount(store, adminUser, 'twice-box@acme.test');
    const message = await storeMessage(store, { subject: 'Delete me twice' }, { ownerId: adminId, accountId: account.id });
    const { first, second } = await pressTwice(`/messages/${message.id}/delete`);
    assert.equal(first.status, 303);
    assert.equal(second.status, 303, 'not a 404 page');
    assert.equal(second.headers.location, first.headers.location);
    const inbox = await admin.agent.get(second.headers.location).expect(200);
    assert.match(inbox.text, /already deleted/);
  });

  it('a message: two presses at the same moment delete it once (one audit event)', async () => {
    const account = await makeAccount(store, adminUser, 'twice-at-once@acme.test');
    const message = await storeMessage(store, { subject: 'Delete me at once' }, { ownerId: adminId, accountId: account.id });
    const answers = await Promise.all([1, 2].map(() => admin.agent.post(`/messages/${message.id}/delete`).type('form').send({ _csrf: admin.csrf })));
    assert.deepEqual(answers.map((a) => a.status), [303, 303]);
    assert.equal(await store.models.AuditEvent.countDocuments({ action: 'message.delete', targetId: message.id }), 1);
  });

  it('a mailbox: the second press lands on Preferences → Email', async () => {
    const account = await makeAccount(store, adminUser, 'twice-gone@acme.test');
    const { first, second } = await pressTwice(`/preferences/email/${account.id}/delete`, { confirm: 'twice-gone@acme.test' });
    assert.equal(first.status, 303);
    assert.equal(second.status, 303, 'not a 404 page');
    assert.equal(second.headers.location, '/preferences/email');
  });

  it('a CRM record: the second press lands on Objects', async () => {
    const created = await admin.agent.post('/objects').type('form').send({ _csrf: admin.csrf, type: 'lead', name: 'Twice Lead' }).expect(303);
    const { first, second } = await pressTwice(`${created.headers.location}/delete`);
    assert.equal(first.status, 303);
    assert.equal(second.status, 303, 'not a 404 page');
    assert.equal(second.headers.location, '/objects');
  });

  it('a webhook: the second press lands on Webhooks', async () => {
    await admin.agent.post('/objects/webhooks').type('form').send({ _csrf: admin.csrf, url: 'http://127.0.0.1:9/twice', allowPrivate: 'on' }).expect(201);
    const hook = (await store.models.Webhook.findOne({ url: 'http://127.0.0.1:9/twice' }).lean())!;
    const { first, second } = await pressTwice(`/objects/webhooks/${hook._id.toString()}/delete`);
    assert.equal(first.status, 303);
    assert.equal(second.status, 303, 'not a 404 page');
    assert.equal(second.headers.location, '/objects/webhooks');
  });

  it('Quarantine\'s page: the second press says the messages were deleted, not that they were kept', async () => {
    const account = await makeAccount(store, adminUser, 'twice-held@acme.test');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await storeMessage(store, { subject: `Spoof ${i}` }, { ownerId: adminId, accountId: account.id, status: 'quarantine', quarantineReason: 'authentication failed' })).id);
    }
    const send = () => admin.agent.post('/quarantine/delete').type('form').send(`_csrf=${encodeURIComponent(admin.csrf)}&${ids.map((id) => `id=${id}`).join('&')}`).expect(303);
    await send();
    const second = await send();
    const page = await admin.agent.get(second.headers.location).expect(200);
    assert.match(page.text, /Deleted 3 quarantined messages\./);
    assert.doesNotMatch(page.text, /no longer in quarantine/);
  });

  it('Outbox → Discard: the second press lands on the Outbox, told the message is no longer queued', async () => {
    const account = await makeAccount(store, adminUser, 'twice-send@acme.test');
    const entry = await store.models.Outbox.create({
      accountId: account.id, ownerId: adminId, messageId: 'twice@acme.test', envelopeFrom: 'twice-send@acme.test', status: 'queued',
      recipients: [{ address: 'carol@customer.test', state: 'deferred', reply: '451 try later' }], nextAttemptAt: new Date(Date.now() + 3_600_000), createdAt: new Date(),
    });
    const { first, second } = await pressTwice(`/outbox/${entry._id.toString()}/discard`);
    assert.equal(first.status, 303);
    assert.equal(second.status, 303, 'not an error page');
    assert.equal(second.headers.location, '/outbox');
    const outbox = await admin.agent.get('/outbox').expect(200);
    assert.match(outbox.text, /no longer queued/);
  });

  it('still answers 404 for what the user never deleted', async () => {
    await admin.agent.post('/messages/0123456789abcdef01234567/delete').type('form').send({ _csrf: admin.csrf }).expect(404);
    await admin.agent.post('/objects/0123456789abcdef01234567/delete').type('form').send({ _csrf: admin.csrf }).expect(404);
  });
});
