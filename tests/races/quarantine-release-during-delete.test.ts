/**
 * Quarantine → "Delete these" removes a page of held messages one after
 * the other, which takes a while for a page of spoofs. A message released
 * meanwhile (by a colleague, from another tab) is genuine mail in the
 * inbox by then, and must not be deleted with the spam.
 */
import { strict as assert } from 'node:assert';
import { buildApp, makeAccount, makeUser, signIn, storeMessage, type TestApp, type TestStore } from '../admin/fixtures';
import { openTestStore } from '../support/store';

const failing = { verdict: 'fail' as const, reason: 'nothing shows it came through the mailbox\'s provider', results: 'gw.test; spf=fail', spf: 'fail', dkim: 'none', dmarc: 'fail', explanation: '' };

describe('a held message released while Quarantine\'s page is being deleted', function () {
  this.timeout(60_000);
  let store: TestStore;
  let testApp: TestApp;

  before(async () => {
    store = await openTestStore('race_quarantine_delete');
    testApp = buildApp(store);
  });
  after(async () => store.drop());

  it('stays in the inbox; the others are deleted, and the page says one was kept', async () => {
    const bob = await makeUser(store, 'bob-q@acme.test');
    await makeUser(store, 'ann-q@acme.test', 'admin');
    const account = await makeAccount(store, bob, 'bob-q@acme.test');
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push((await storeMessage(store, { subject: `Held ${i}`, from: 'ceo@acme.test' }, { ownerId: bob.id, accountId: account.id, status: 'quarantine', quarantineReason: 'authentication failed', auth: failing })).id);
    }
    const bobTab = await signIn(testApp.app, 'bob-q@acme.test');
    const annTab = await signIn(testApp.app, 'ann-q@acme.test');

    // Fault injection: the first deletion's first write waits, so the release lands while the page is being deleted.
    const collection = store.models.Tombstone.collection;
    const updateOne = collection.updateOne.bind(collection);
    let entered!: () => void;
    const deleting = new Promise<void>((resolve) => (entered = resolve));
    let go!: () => void;
    const gate = new Promise<void>((resolve) => (go = resolve));
    let calls = 0;
    collection.updateOne = (async (...args: Parameters<typeof updateOne>) => {
      if (++calls === 1) {
        entered();
        await gate;
      }
      return updateOne(...args);
    }) as typeof collection.updateOne;
    let response;
    try {
      const pending = bobTab.agent.post('/quarantine/delete').type('form')
        .send(`_csrf=${encodeURIComponent(bobTab.csrf)}&${ids.map((id) => `id=${id}`).join('&')}`).then((res) => res);
      await deleting;
      await annTab.agent.post(`/messages/${ids[3]}/release`).type('form').send({ _csrf: annTab.csrf }).expect(303);
      go();
      response = await pending;
    } finally {
      collection.updateOne = updateOne;
      go();
    }
    assert.equal(response.status, 303);
    const released = await store.models.Message.findById(ids[3]).lean();
    assert.equal(released?.status, 'inbox', 'the released message is still there, in the inbox');
    assert.equal(await store.models.Tombstone.countDocuments({ dedupeKey: released?.dedupeKey }), 0, 'and not marked deleted');
    assert.equal(await store.models.Message.countDocuments({ _id: { $in: ids.slice(0, 3) } }), 0, 'the others are deleted');
    const page = await bobTab.agent.get('/?status=quarantine').expect(200);
    assert.match(page.text, /Deleted 3 quarantined messages\. 1 was no longer in quarantine and kept\./);
    assert.equal(await store.models.AuditEvent.countDocuments({ action: 'message.delete' }), 3);
  });
});
