import { strict as assert } from 'node:assert';
import type { PublicUser } from '../../gateway/accounts';
import { buildApp, makeAccount, makeUser, signIn, storeMessage, type TestApp, type TestStore } from './fixtures';
import { openTestStore } from '../support/store';

const failing = { verdict: 'fail' as const, reason: 'nothing shows it came through the mailbox\'s provider', results: 'gw.test; spf=fail smtp.mailfrom=spoof.test', spf: 'fail', dkim: 'none', dmarc: 'fail', explanation: 'It claims to come from your own domain acme.test' };

/**
 * A spoofing run leaves hundreds of messages in Quarantine. Opening each to delete it is not usable:
 * the list deletes the page it shows at once — exactly those messages, only while still in quarantine,
 * only the viewer's own — and each deletion is audited and tombstoned like a single one.
 */
describe('admin: deleting a page of Quarantine at once', () => {
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;
  let eve: PublicUser;

  before(async () => {
    store = await openTestStore('admin_quarantine_bulk');
    testApp = buildApp(store);
    bob = await makeUser(store, 'bob@acme.test');
    eve = await makeUser(store, 'eve@acme.test');
  });
  after(async () => store?.drop());

  it('deletes the 50 shown, keeps one released meanwhile, older ones, the inbox and another user\'s mail', async () => {
    const account = await makeAccount(store, bob, 'bob@acme.test');
    const eveAccount = await makeAccount(store, eve, 'eve@acme.test');
    const base = Date.parse('2026-03-01T00:00:00Z');
    for (let i = 0; i < 55; i++) {
      await storeMessage(store, { subject: `Wire ${i}`, from: 'ceo@acme.test' }, { ownerId: bob.id, accountId: account.id, status: 'quarantine', quarantineReason: 'authentication failed', auth: failing, receivedAt: new Date(base + i * 60_000) });
    }
    const inbox = await storeMessage(store, { subject: 'Genuine order' }, { ownerId: bob.id, accountId: account.id, receivedAt: new Date(base + 100 * 60_000) });
    const eves = await storeMessage(store, { subject: 'Eve held' }, { ownerId: eve.id, accountId: eveAccount.id, status: 'quarantine', auth: failing, receivedAt: new Date(base + 101 * 60_000) });

    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    const list = await agent.get('/?status=quarantine').expect(200);
    const form = /<form method="post" action="\/quarantine\/delete">([\s\S]*?)<\/form>/.exec(list.text)?.[1] ?? '';
    const ids = [...form.matchAll(/name="id" value="([0-9a-f]{24})"/g)].map((m) => m[1]);
    assert.equal(ids.length, 50, 'the form carries the page shown');
    assert.match(form, /Delete 50 messages/);

    // One of them turns out genuine and is released from another tab before the delete.
    await agent.post(`/messages/${ids[0]}/release`).type('form').send({ _csrf: csrf }).expect(303);
    const res = await agent.post('/quarantine/delete').type('form')
      .send(`_csrf=${encodeURIComponent(csrf)}&back=${encodeURIComponent('/?status=quarantine')}&${[...ids, eves.id, inbox.id].map((id) => `id=${id}`).join('&')}`)
      .expect(303);
    assert.equal(res.headers.location, '/?status=quarantine');
    const after = await agent.get('/?status=quarantine').expect(200);
    assert.match(after.text, /Deleted 49 quarantined messages\. 3 were no longer in quarantine and kept\./);

    assert.equal(await store.models.Message.countDocuments({ status: 'quarantine', accountId: account.id }), 5, 'the five older ones stay');
    assert.equal((await store.models.Message.findById(ids[0]).lean())?.status, 'inbox', 'the released one is kept');
    assert.ok(await store.models.Message.findById(inbox.id).lean(), 'inbox mail is never deleted from here');
    assert.ok(await store.models.Message.findById(eves.id).lean(), 'another user\'s mail is never deleted');
    assert.equal(await store.models.AuditEvent.countDocuments({ action: 'message.delete' }), 49);
    assert.equal(await store.models.Tombstone.countDocuments({}), 49);
  });
});
