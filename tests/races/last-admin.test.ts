/**
 * Postroom never leaves the business without an enabled admin: demoting or
 * disabling the last one is refused. Two admins doing that to each other (or
 * each stepping down) at the same moment each saw the other still an admin,
 * and both changes went through.
 */
import { strict as assert } from 'node:assert';
import { buildApp, makeUser, signIn, type TestApp, type TestStore } from '../admin/fixtures';
import { openTestStore } from '../support/store';

describe('the last admin, changed by two admins at once', function () {
  this.timeout(60_000);
  let store: TestStore;
  let testApp: TestApp;

  before(async () => {
    store = await openTestStore('race_last_admin');
    testApp = buildApp(store);
  });
  after(async () => store.drop());

  /** Fault injection: the first user write waits a moment, so the second request runs while the first is under way. */
  async function withSlowFirstUserWrite<T>(work: () => Promise<T>): Promise<T> {
    const collection = store.models.User.collection;
    const updateOne = collection.updateOne.bind(collection);
    let writes = 0;
    collection.updateOne = (async (...args: Parameters<typeof updateOne>) => {
      if (++writes === 1) await new Promise((resolve) => setTimeout(resolve, 300));
      return updateOne(...args);
    }) as typeof collection.updateOne;
    try {
      return await work();
    } finally {
      collection.updateOne = updateOne;
    }
  }

  const admins = () => store.models.User.countDocuments({ role: 'admin', disabled: false });

  it('keeps one admin when two admins demote each other at the same moment', async () => {
    const ann = await makeUser(store, 'ann-roles@acme.test', 'admin');
    const ben = await makeUser(store, 'ben-roles@acme.test', 'admin');
    const annTab = await signIn(testApp.app, 'ann-roles@acme.test');
    const benTab = await signIn(testApp.app, 'ben-roles@acme.test');
    const demote = (tab: typeof annTab, id: string) => tab.agent.post(`/users/${id}/role`).type('form').send({ _csrf: tab.csrf, role: 'employee' });
    await withSlowFirstUserWrite(async () => {
      const first = demote(annTab, ben.id);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await Promise.all([first, demote(benTab, ann.id)]);
    });
    assert.equal(await admins(), 1, 'one admin is left');
  });

  it('keeps one admin when two admins disable each other at the same moment', async () => {
    await store.models.User.deleteMany({});
    const cy = await makeUser(store, 'cy-roles@acme.test', 'admin');
    const di = await makeUser(store, 'di-roles@acme.test', 'admin');
    const cyTab = await signIn(testApp.app, 'cy-roles@acme.test');
    const diTab = await signIn(testApp.app, 'di-roles@acme.test');
    const disable = (tab: typeof cyTab, id: string) => tab.agent.post(`/users/${id}/disable`).type('form').send({ _csrf: tab.csrf });
    await withSlowFirstUserWrite(async () => {
      const first = disable(cyTab, di.id);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await Promise.all([first, disable(diTab, cy.id)]);
    });
    assert.equal(await admins(), 1, 'one admin is left');
  });
});
