import { strict as assert } from 'node:assert';
import request from 'supertest';
import mongoose from 'mongoose';
import { createApiToken, expireOldMail, SYSTEM_ACTOR, type PublicUser } from '../../gateway/accounts';
import { ensureIndexes } from '../../gateway/models';
import { openTestStore } from '../support/store';
import { buildApp, makeAccount, makeUser, signIn, storeMessage, type TestApp, type TestStore } from './fixtures';

/**
 * A store as the previous release (3b8bcc8) left it, read by this one: the
 * fields added since (users' and the business's timeZone, tokens' access,
 * messages' attachedText, tombstones' contentHash) are absent rather than
 * defaulted, and the {ownerId, dedupeKey} index does not exist yet. What the
 * operator checks after `git pull && npm start` on the same DATA_DIR.
 */
describe('admin: a store written by the previous release', () => {
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;
  let token: string;

  before(async function () {
    this.timeout(60_000);
    store = await openTestStore('admin_upgraded_store');
    await makeUser(store, 'it@acme.test', 'admin');
    bob = await makeUser(store, 'bob@acme.test');
    const main = await makeAccount(store, bob, 'bob@acme.test');
    const personal = await makeAccount(store, bob, 'bob.personal@acme.test');
    const both = Buffer.from('From: Carol <carol@customer.test>\r\nTo: bob@acme.test, bob.personal@acme.test\r\nSubject: Quote for 40 widgets\r\nMessage-ID: <quote-1@customer.test>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nPlease send a quote.\r\n');
    await storeMessage(store, { raw: both }, { ownerId: bob.id, accountId: main.id });
    await storeMessage(store, { raw: both }, { ownerId: bob.id, accountId: personal.id });
    await storeMessage(store, { subject: 'Invoice 2026-11', text: 'Attached.' }, { ownerId: bob.id, accountId: main.id });
    ({ token } = await createApiToken(store, 'bob@acme.test', { name: 'crm' }, SYSTEM_ACTOR));
    // What the previous release wrote: none of the fields added since, and not the index.
    const db = store.models.Message.db;
    await db.collection('users').updateMany({}, { $unset: { timeZone: '' } });
    await db.collection('api_tokens').updateMany({}, { $unset: { access: '' } });
    await db.collection('messages').updateMany({}, { $unset: { attachedText: '' } });
    await db.collection('messages').dropIndex('ownerId_1_dedupeKey_1');
    testApp = buildApp(store);
  });
  after(async () => store.drop());

  it('builds the new index at start', async () => {
    await ensureIndexes(store.models);
    const names = (await store.models.Message.collection.indexes()).map((index) => index.name);
    assert.ok(names.includes('ownerId_1_dedupeKey_1'), names.join(', '));
  });

  it('signs in, shows times and lists the mail of two mailboxes once', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const inbox = (await agent.get('/').expect(200)).text;
    assert.equal(inbox.split('Quote for 40 widgets</span>').length - 1, 1, 'listed once');
    assert.match(inbox, /in 2 mailboxes/);
    assert.match(inbox, /Last 30 days <span class="muted small">· 2 messages<\/span>/, 'the chart counts it once');
    const profile = (await agent.get('/preferences/profile').expect(200)).text;
    assert.match(profile, /<label for="timeZone">Time zone<\/label>/);
    assert.equal((await agent.get('/?q=widgets').expect(200)).text.split('Quote for 40 widgets</span>').length - 1, 1, 'found once');
  });

  it('lets an API token made before access levels change things, as it always could', async () => {
    const list = await request(testApp.app).get('/api/v1/messages').set('Authorization', `Bearer ${token}`).expect(200);
    assert.deepEqual((list.body.messages as Array<{ subject: string; copies: number }>).map((m) => [m.subject, m.copies]), [['Invoice 2026-11', 1], ['Quote for 40 widgets', 2]]);
    const created = await request(testApp.app).post('/api/v1/objects').set('Authorization', `Bearer ${token}`).send({ type: 'customer', name: 'Customer Inc', domains: ['customer.test'] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });

  it('drops the deletion records the previous release left for mail retention expired, once no sync reaches back; keeps a person\'s', async () => {
    // The previous release wrote tombstones without expiredReceivedAt: retention's with deletedBy null, a person's with their id.
    const DAY = 86_400_000;
    const now = new Date();
    const old = (key: string, daysAgo: number, deletedBy: mongoose.Types.ObjectId | null) => ({
      mailboxKey: `legacy-${key}`, dedupeKey: `legacy-${key}`, contentHash: '', deletedAt: new Date(now.getTime() - daysAgo * DAY), deletedBy,
    });
    const bobId = new mongoose.Types.ObjectId(bob.id);
    await store.models.Tombstone.collection.insertMany([
      old('expired-long-ago', 200, null), old('expired-40-days-ago', 40, null), old('expired-10-days-ago', 10, null), old('deleted-by-bob', 200, bobId),
    ]);
    const result = await expireOldMail(store, { now, backfillDays: 30 });
    assert.equal(result.tombstonesDropped, 2);
    const left = (await store.models.Tombstone.find({ mailboxKey: /^legacy-/ }, { mailboxKey: 1 }).lean()).map((t) => t.mailboxKey).sort();
    assert.deepEqual(left, ['legacy-deleted-by-bob', 'legacy-expired-10-days-ago']);
  });
});
