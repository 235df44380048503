import { strict as assert } from 'node:assert';
import { type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { createLogger } from '../../gateway/core/log';
import { startAdmin, type RunningAdmin } from '../../admin/server';
import { launchChromium } from '../support/browser';
import { openTestStore } from '../support/store';
import { makeAccount, makeUser, PASSWORD, storeMessage, testConfig, type TestStore } from './fixtures';

/**
 * Read state in a real browser, as Bob uses it: new mail is bold and named "Unread" to a screen reader,
 * with the count beside the heading; opening it reads it; "Mark as unread" makes it bold again; an admin
 * opening Bob's mail leaves it unread for Bob.
 */
describe('admin in a real browser: unread mail', function () {
  this.timeout(90_000);
  let store: TestStore;
  let admin: RunningAdmin;
  let browser: Browser;
  let messageId: string;
  const contexts: BrowserContext[] = [];

  before(async () => {
    store = await openTestStore('admin_read_state_browser');
    const bob = await makeUser(store, 'bob@acme.test');
    await makeUser(store, 'it@acme.test', 'admin');
    const account = await makeAccount(store, bob, 'bob@acme.test');
    await storeMessage(store, { subject: 'Lunch on Friday', from: 'Carol <carol@customer.test>' }, { ownerId: bob.id, accountId: account.id, receivedAt: new Date(Date.now() - 60_000) });
    messageId = (await storeMessage(store, { subject: 'Contract draft', from: 'Jane Roe <jane@globex.test>', text: 'Please review.' }, { ownerId: bob.id, accountId: account.id })).id;
    // Read already: stored by a version before read state (no field at all).
    await store.models.Message.collection.updateOne({ subject: 'Lunch on Friday' }, { $unset: { unread: '' } });
    admin = await startAdmin({ config: testConfig(), log: createLogger({ level: 'silent' }), store, port: 0, host: '127.0.0.1' });
    browser = await launchChromium();
  });

  after(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await admin?.close();
    await store?.drop();
  });

  async function signedIn(email: string): Promise<Page> {
    const context = await browser.newContext({ baseURL: admin.url });
    contexts.push(context);
    const page = await context.newPage();
    await page.goto('/login');
    await page.fill('#email', email);
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')), page.click('button[type=submit]')]);
    return page;
  }

  const weight = (locator: Locator) => locator.evaluate((element) =>
    Number((globalThis as unknown as { getComputedStyle(e: unknown): { fontWeight: string } }).getComputedStyle(element).fontWeight));
  const row = (page: Page, subject: string) => page.locator('a.msg-row', { hasText: subject });

  /** Bold sender and subject, and a link a screen reader announces as unread (not weight alone). */
  async function shownUnread(page: Page, subject: string): Promise<boolean> {
    const link = row(page, subject);
    const bold = (await weight(link.locator('.subject'))) >= 700 && (await weight(link.locator('.from'))) >= 700;
    const announced = await page.getByRole('link', { name: new RegExp(`^Unread: .*${subject}`) }).count() === 1;
    assert.equal(bold, announced, `${subject}: bold and the "Unread" marker go together`);
    return bold;
  }

  it('opening reads it, Mark as unread brings it back, and an admin looking changes nothing', async () => {
    const bob = await signedIn('bob@acme.test');
    await bob.goto('/');
    assert.equal(await shownUnread(bob, 'Contract draft'), true);
    assert.equal(await shownUnread(bob, 'Lunch on Friday'), false, 'mail stored before read state is read');
    assert.equal((await bob.locator('#unread-count').innerText()).trim(), '1 unread');

    await Promise.all([bob.waitForURL(`**/messages/${messageId}`), row(bob, 'Contract draft').click()]);
    await bob.locator('#back').click();
    await bob.waitForURL((url) => url.pathname === '/');
    assert.equal(await shownUnread(bob, 'Contract draft'), false, 'read once opened');
    assert.equal((await bob.locator('#unread-count').innerText()).trim(), '0 unread');

    await bob.goto(`/messages/${messageId}`);
    await Promise.all([bob.waitForURL((url) => url.pathname === '/'), bob.locator('#mark-unread').click()]);
    assert.match(await bob.locator('main').innerText(), /Marked as unread/);
    assert.equal(await shownUnread(bob, 'Contract draft'), true, 'bold again');

    // "Unread only" narrows the list to it.
    await bob.locator('#unread').check();
    await Promise.all([bob.waitForURL(/unread=true/), bob.getByRole('button', { name: 'Filter' }).click()]);
    assert.equal(await bob.locator('a.msg-row').count(), 1);

    // The admin opens Bob's message: it says whose state it is, and Bob still has it unread.
    const it = await signedIn('it@acme.test');
    await it.goto(`/messages/${messageId}`);
    assert.equal((await it.locator('#owner-read-state').innerText()).trim(), 'unread by its owner');
    await it.goto('/');
    assert.equal(await shownUnread(it, 'Contract draft'), false, 'not the admin\'s own unread mail');
    assert.equal(await row(it, 'Contract draft').locator('.unread-by-owner').count(), 1);
    await bob.goto('/');
    assert.equal(await shownUnread(bob, 'Contract draft'), true, 'still unread for Bob');

    // "Mark … as read" on the list.
    await Promise.all([bob.waitForURL((url) => url.pathname === '/'), bob.locator('#mark-shown-read button').click()]);
    assert.equal(await shownUnread(bob, 'Contract draft'), false);
    assert.equal(await bob.locator('#mark-shown-read').count(), 0, 'nothing left to mark');
  });
});
