import { strict as assert } from 'node:assert';
import type { PublicUser } from '../../gateway/accounts';
import { buildApp, makeAccount, makeUser, signIn, storeMessage, type TestApp, type TestStore } from './fixtures';
import { openTestStore } from '../support/store';

/**
 * Display-name spoofing: `"ceo@acme.test" <boss.acme@gmail.test>` authenticates fine (it really is from
 * gmail.test) and lands in the inbox, where a list that shows display names showed "ceo@acme.test" as the
 * sender. The real address must be what the employee reads, in the list and on the message.
 */
describe('admin: a display name that is another address is never shown as the sender', () => {
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;

  before(async () => {
    store = await openTestStore('admin_display_name_spoof');
    testApp = buildApp(store);
    bob = await makeUser(store, 'bob@acme.test');
  });
  after(async () => store?.drop());

  it('lists and shows the real address of "ceo@acme.test" <boss.acme@gmail.test>, and keeps ordinary names', async () => {
    const account = await makeAccount(store, bob, 'bob@acme.test');
    const passing = { verdict: 'pass' as const, reason: 'came through the mailbox\'s provider', results: '', sender: 'pass' };
    const spoof = await storeMessage(store, { subject: 'Payment today', from: '"ceo@acme.test" <boss.acme@gmail.test>' }, { ownerId: bob.id, accountId: account.id, auth: passing });
    const plain = await storeMessage(store, { subject: 'Lunch', from: 'Carol Customer <carol@customer.test>' }, { ownerId: bob.id, accountId: account.id, auth: passing });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');

    const list = await agent.get('/').expect(200);
    const row = (id: string) => new RegExp(`href="/messages/${id}">([\\s\\S]*?)</a>`).exec(list.text)?.[1] ?? '';
    const spoofFrom = /<span class="from"[^>]*>([^<]*)<\/span>/.exec(row(spoof.id))?.[1];
    assert.equal(spoofFrom, 'boss.acme@gmail.test', 'the row names the real sender, not the address in the display name');
    assert.equal(/<span class="from"[^>]*>([^<]*)<\/span>/.exec(row(plain.id))?.[1], 'Carol Customer', 'an ordinary display name is still shown');

    const page = await agent.get(`/messages/${spoof.id}`).expect(200);
    assert.match(page.text, /<dt>From<\/dt><dd[^>]*>boss\.acme@gmail\.test \(calling itself “ceo@acme\.test”\)<\/dd>/);
  });
});
