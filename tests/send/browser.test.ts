/**
 * Sending in a real browser (Debian's Chromium driven by playwright-core):
 * the SMTP preset fills the Sending panel, Reply from a message page sends a
 * threaded reply, Compose sends a new message with an attachment, and the
 * Outbox lists both; screenshots in test-output/screenshots/.
 */
import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import path from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { createLogger } from '../../gateway/core/log';
import { fromRoot } from '../../gateway/core/paths';
import { startAdmin, type RunningAdmin } from '../../admin/server';
import { makeUser, storeMessage, testConfig } from '../admin/fixtures';
import type { DovecotServer } from '../support/dovecot';
import { openTestStore } from '../support/store';
import { SecretBox, resolveMasterKey } from '../../gateway/core/crypto';
import { sendMessage } from '../../gateway/send';
import { makeContact, sendableAccount, sendDeps, sharedDovecot, startRecordingSmtp, type RecordingSmtp, type SendFixture, type TestStore } from './support';
import { launchChromium } from '../support/browser';

const SHOTS = fromRoot('test-output', 'screenshots');

describe('send: in a real browser (Chromium)', function () {
  this.timeout(120_000);
  let store: TestStore;
  let dovecot: DovecotServer;
  let smtp: RecordingSmtp;
  let admin: RunningAdmin;
  let browser: Browser;
  let bob: SendFixture;
  let incomingId: string;
  let secretBox: SecretBox;
  const cspViolations: string[] = [];

  before(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    store = await openTestStore('send_browser');
    dovecot = await sharedDovecot();
    smtp = await startRecordingSmtp({ tls: 'starttls' });
    const config = testConfig();
    // The running console seals with the SecretBox startAdmin derives from SECRET_KEY: the fixture must use the same.
    secretBox = new SecretBox(resolveMasterKey(config.secretKey, config.dataDir).key, 'secrets');
    bob = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'starttls' }, { name: 'Bob Sender' });
    await makeContact(store, 'Alice Customer', 'alice@customer.test');
    incomingId = (await storeMessage(store, { from: 'Alice Customer <alice@customer.test>', to: bob.email, subject: 'Delivery date', text: 'When can you deliver?', messageId: '<delivery-1@customer.test>' },
      { ownerId: bob.user.id, accountId: bob.accountId, source: 'imap' })).id;
    admin = await startAdmin({ config, log: createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), store, port: 0, host: '127.0.0.1', imapTimeoutMs: 10_000 });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await admin?.close();
    await smtp?.stop();
    await store?.drop();
  });

  let lastPage: Page | undefined;
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && lastPage && !lastPage.isClosed()) {
      await lastPage.screenshot({ path: path.join(SHOTS, 'failure-send-browser.png'), fullPage: true }).catch(() => undefined);
    }
  });

  async function signedInPage(viewport = { width: 1366, height: 900 }): Promise<Page> {
    const context = await browser.newContext({ viewport, baseURL: admin.url });
    const page = await context.newPage();
    lastPage = page;
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) cspViolations.push(`${page.url()}: ${message.text()}`);
    });
    await page.goto('/login');
    await page.fill('#email', bob.user.email);
    await page.fill('#password', 'correct-horse-battery-staple');
    await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')), page.click('button[type=submit]')]);
    return page;
  }

  it('the Sending panel: choosing a service fills the SMTP server (JavaScript enhancement)', async () => {
    const page = await signedInPage();
    await page.goto(`/preferences/email/${bob.accountId}#smtp`);
    assert.match((await page.textContent('#smtp-status')) ?? '', /Sending: authenticated/);
    await page.selectOption('#smtp-service', 'outlook');
    assert.equal(await page.inputValue('#smtp-host'), 'smtp.office365.com');
    assert.equal(await page.inputValue('#smtp-port'), '587');
    assert.equal(await page.inputValue('#smtp-tls'), 'starttls');
    await page.locator('#smtp').screenshot({ path: path.join(SHOTS, 'smtp-panel-laptop.png') });
    await page.context().close();
  });

  it('Reply from a message page sends a threaded reply and shows the stored copy', async () => {
    const page = await signedInPage();
    await page.goto(`/messages/${incomingId}`);
    await Promise.all([page.waitForURL(/\/compose\?/), page.click('#reply')]);
    assert.equal(await page.inputValue('#compose-subject'), 'Re: Delivery date');
    assert.equal(await page.inputValue('#compose-to'), 'Alice Customer <alice@customer.test>');
    const quoted = await page.inputValue('#compose-text');
    assert.match(quoted, /wrote:\n> When can you deliver\?/);
    await page.locator('#compose-text').press('Control+Home');
    await page.keyboard.type('Next Tuesday.');
    await page.screenshot({ path: path.join(SHOTS, 'compose-reply-laptop.png'), fullPage: true });
    const before = smtp.received.length;
    await Promise.all([page.waitForURL(/\/messages\/[0-9a-f]{24}$/), page.click('#compose-send')]);
    assert.match((await page.textContent('.flash.success')) ?? '', /Sent from /);
    assert.match((await page.textContent('.msg-head h1')) ?? '', /Re: Delivery date/);
    await smtp.waitFor(before + 1);
    const got = smtp.received[before].parsed;
    assert.equal(got.inReplyTo, '<delivery-1@customer.test>');
    assert.match(got.text ?? '', /^Next Tuesday\.\n\nOn .+ wrote:\n> When can you deliver\?/);
    await page.context().close();
  });

  it('a session that ends mid-compose loses nothing: after signing in again the reply form has the typed text back, and forgets it once sent', async () => {
    const page = await signedInPage();
    const replyForm = `/compose?original=${incomingId}&action=reply`;
    await page.goto(replyForm);
    await page.locator('#compose-text').press('Control+Home');
    await page.keyboard.type('Thursday, by the morning truck.');
    await page.fill('#compose-subject', 'Re: Delivery date (Thursday)');
    await page.setInputFiles('#compose-attachments', { name: 'route.txt', mimeType: 'text/plain', buffer: Buffer.from('route') });
    // The session ends (expired, or signed out elsewhere) while the form is open.
    await store.models.Session.updateMany({}, { $set: { expiresAt: new Date(0) } });
    const before = smtp.received.length;
    await Promise.all([page.waitForURL(/\/login\?next=/), page.click('#compose-send')]);
    assert.match((await page.textContent('.flash.error')) ?? '', /Your session has ended/);
    await page.fill('#email', bob.user.email);
    await page.fill('#password', 'correct-horse-battery-staple');
    await Promise.all([page.waitForURL((url) => url.pathname === '/compose'), page.click('button[type=submit]')]);
    assert.match(await page.inputValue('#compose-text'), /^Thursday, by the morning truck\.\n\nOn .+ wrote:\n> When can you deliver\?/);
    assert.equal(await page.inputValue('#compose-subject'), 'Re: Delivery date (Thursday)');
    assert.match((await page.textContent('#compose-restored')) ?? '', /This is what you were sending\. If it already went out, Send shows it instead of sending it twice\. Attach again: route\.txt\./);
    await page.screenshot({ path: path.join(SHOTS, 'compose-restored-laptop.png'), fullPage: true });

    await Promise.all([page.waitForURL(/\/messages\/[0-9a-f]{24}$/), page.click('#compose-send')]);
    await smtp.waitFor(before + 1);
    assert.equal(smtp.received.length, before + 1);
    assert.match(smtp.received[before].parsed.text ?? '', /^Thursday, by the morning truck\./);
    // Sent: the next reply starts from the quote alone.
    await page.goto(replyForm);
    assert.match(await page.inputValue('#compose-text'), /^\n\nOn .+ wrote:/);
    assert.equal(await page.inputValue('#compose-subject'), 'Re: Delivery date');
    assert.equal(await page.locator('#compose-restored').count(), 0);
    await page.context().close();
  });

  /** Bob types a private draft, his session ends and Send takes the tab to the sign-in page, the draft kept in it; Carol is another user. */
  async function draftKeptAtSessionEnd() {
    const carol = await makeUser(store, `carol-${Date.now()}@acme.test`);
    const page = await signedInPage();
    await page.goto('/compose');
    await page.fill('#compose-subject', 'Salary review');
    await page.fill('#compose-text', 'For Bob only.');
    await store.models.Session.updateMany({}, { $set: { expiresAt: new Date(0) } });
    await Promise.all([page.waitForURL(/\/login\?next=/), page.click('#compose-send')]);
    return { carol, page };
  }

  it('a kept draft is not given to another user who signs in in the same tab', async () => {
    const { carol, page } = await draftKeptAtSessionEnd();
    await page.fill('#email', carol.email);
    await page.fill('#password', 'correct-horse-battery-staple');
    await Promise.all([page.waitForURL((url) => url.pathname === '/compose'), page.click('button[type=submit]')]);
    assert.equal(await page.inputValue('#compose-text'), '');
    assert.equal(await page.inputValue('#compose-subject'), '');
    assert.equal(await page.locator('#compose-restored').count(), 0);
    await page.context().close();
  });

  it('a kept draft does not stay in the tab\'s storage for another user who signs in there and never opens Compose', async () => {
    const { carol, page } = await draftKeptAtSessionEnd();
    // Carol signs in from the sign-in page without its "next" and works in the inbox.
    await page.goto('/login');
    await page.fill('#email', carol.email);
    await page.fill('#password', 'correct-horse-battery-staple');
    await Promise.all([page.waitForURL((url) => url.pathname === '/'), page.click('button[type=submit]')]);
    const kept = await page.evaluate(() => (globalThis as unknown as { sessionStorage: { getItem(key: string): string | null } }).sessionStorage.getItem('postroom.compose-draft'));
    assert.equal(kept, null, 'Bob\'s draft is readable in the tab (developer tools) while Carol is signed in');
    await page.context().close();
  });

  it('leaving the page while Send is under way, then sending the restored form again, sends the message once', async () => {
    const page = await signedInPage();
    await page.goto('/compose');
    await page.fill('#compose-to', 'alice@customer.test');
    await page.fill('#compose-subject', 'Left while sending');
    await page.fill('#compose-text', 'Only one copy, please.');
    const before = smtp.received.length;
    let release = () => undefined as void;
    smtp.behaviour.dataGate = new Promise<void>((resolve) => { release = resolve; });
    try {
      // The browser never gets the answer (a proxy timed out, the connection dropped): the request is passed
      // on to the real console by Playwright and the browser is told it failed. The server goes on and sends.
      let firstPress: Promise<unknown> = Promise.resolve();
      let intercepted = false;
      await page.route(/\/compose$/, async (route) => {
        if (intercepted || route.request().method() !== 'POST') return route.continue();
        intercepted = true;
        firstPress = route.fetch({ maxRedirects: 0 }).catch(() => undefined);
        await route.abort('timedout');
      });
      await page.click('#compose-send');
      await page.waitForURL(/^chrome-error:/);
      // Back to the form while the first press is still held at the SMTP server.
      await page.goto('/compose');
      assert.equal(await page.inputValue('#compose-text'), 'Only one copy, please.');
      assert.match((await page.textContent('#compose-restored')) ?? '', /If it already went out, Send shows it instead of sending it twice/);
      // The second press reaches the console while the first is still held, then the server answers the first.
      const secondPress = page.waitForRequest((request) => request.method() === 'POST' && request.url().endsWith('/compose'));
      const result = page.waitForURL(/\/messages\/[0-9a-f]{24}$/);
      const clicked = page.click('#compose-send');
      await secondPress;
      release();
      await Promise.all([clicked, result]);
      assert.match((await page.textContent('.flash')) ?? '', /Sent from /);
      await firstPress;
    } finally {
      release();
      smtp.behaviour.dataGate = undefined;
    }
    await smtp.waitFor(before + 1);
    // Both presses have been answered: a second copy would have reached the server by now.
    assert.equal(smtp.received.length, before + 1);
    assert.equal(await store.models.Outbox.countDocuments({ subject: 'Left while sending' }), 1);
    await page.context().close();
  });

  it('keyboard: Enter in To or Subject moves on instead of sending a half-written message; Ctrl+Enter in the text sends', async () => {
    const page = await signedInPage();
    await page.goto('/compose');
    const before = smtp.received.length;
    await page.focus('#compose-to');
    await page.keyboard.type('alice@customer.test');
    // Enter used to submit the form (HTML implicit submission): the message went out with no text. A navigation
    // would also end this page's script context, so the focus checks below fail if Enter submitted.
    const focused = () => page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } } }).document.activeElement.id);
    await page.keyboard.press('Enter');
    assert.equal(await focused(), 'compose-to', 'Enter in an address field stays there (more addresses may follow)');
    await page.focus('#compose-subject');
    await page.keyboard.type('Typed with the keyboard');
    await page.keyboard.press('Enter');
    assert.equal(await focused(), 'compose-text', 'Enter in Subject goes on to the text');
    await page.keyboard.type('Sent with Ctrl+Enter.');
    await Promise.all([page.waitForURL(/\/messages\/[0-9a-f]{24}$/), page.keyboard.press('Control+Enter')]);
    await smtp.waitFor(before + 1);
    assert.equal(smtp.received.length, before + 1, 'sent once, by Ctrl+Enter');
    assert.equal(smtp.received[before].parsed.subject, 'Typed with the keyboard');
    assert.equal(smtp.received[before].parsed.text?.trim(), 'Sent with Ctrl+Enter.');
    await page.context().close();
  });

  it('a subject or address of hundreds of characters, and 60 recipients, fit the window on the compose and Outbox pages', async () => {
    const subject = `Quarterly-report-${'X'.repeat(300)}`;
    const many = Array.from({ length: 60 }, (_, i) => `Person ${i} <person${i}@customer-with-a-long-domain-name.test>`).join(', ');
    const longId = (await storeMessage(store, { from: `Long Name <${'a'.repeat(60)}.${'b'.repeat(60)}@customer.test>`, to: `${bob.email}, ${many}`, subject, text: 'Numbers attached.' },
      { ownerId: bob.user.id, accountId: bob.accountId, source: 'imap' })).id;
    await sendMessage(sendDeps(store, secretBox), bob.viewer, bob.accountId, { to: many, subject, text: 'To everyone.' });
    for (const viewport of [{ width: 1366, height: 900 }, { width: 390, height: 844 }]) {
      const page = await signedInPage(viewport);
      for (const target of [`/compose?original=${longId}&action=reply-all`, `/compose?original=${longId}&action=forward`]) {
        await page.goto(target);
        // Runs in the page (no DOM types in this project's compilation).
        const widths = await page.evaluate(() => {
          const window = globalThis as unknown as { document: { documentElement: { scrollWidth: number } }; innerWidth: number };
          return { content: window.document.documentElement.scrollWidth, window: window.innerWidth };
        });
        assert.ok(widths.content <= widths.window, `${target} is ${widths.content} px wide in a ${widths.window} px window`);
      }
      await page.goto('/outbox');
      const row = page.locator('#outbox tbody tr', { hasText: 'Quarterly-report-' });
      assert.match((await row.locator('.outbox-to').innerText()).trim(), /^person0@customer-with-a-long-domain-name\.test, person1@\S+, person2@\S+ and 57 more$/);
      const table = await page.evaluate(() => {
        const doc = (globalThis as unknown as { document: { querySelector(s: string): { scrollWidth: number; clientWidth: number } } }).document;
        return { table: doc.querySelector('#outbox').scrollWidth, wrap: doc.querySelector('.table-wrap').clientWidth };
      });
      // At phone width the table may scroll inside its frame (six columns), but not because of one subject.
      if (viewport.width > 1000) assert.ok(table.table <= table.wrap, `the Outbox table is ${table.table} px wide in its ${table.wrap} px frame`);
      await page.screenshot({ path: path.join(SHOTS, `outbox-long-${viewport.width}.png`), fullPage: true });
      await page.context().close();
    }
  });

  it('Compose sends a new message with an attachment; the Outbox lists it as sent', async () => {
    const page = await signedInPage();
    await page.click('nav.sidebar >> text=Compose');
    await page.waitForURL('**/compose');
    await page.fill('#compose-to', 'alice@customer.test');
    await page.fill('#compose-subject', 'Catalogue');
    await page.fill('#compose-text', 'Hello Alice,\nthe catalogue is attached.\nBob');
    await page.setInputFiles('#compose-attachments', { name: 'catalogue.txt', mimeType: 'text/plain', buffer: Buffer.from('widgets and gadgets') });
    const before = smtp.received.length;
    await Promise.all([page.waitForURL(/\/messages\/[0-9a-f]{24}$/), page.click('#compose-send')]);
    await smtp.waitFor(before + 1);
    const got = smtp.received[before].parsed;
    assert.equal(got.subject, 'Catalogue');
    assert.equal(got.attachments[0].filename, 'catalogue.txt');
    assert.equal(got.attachments[0].content.toString(), 'widgets and gadgets');
    assert.ok(await page.isVisible('a:has-text("catalogue.txt")'));

    await page.click('nav.sidebar >> text=Outbox');
    await page.waitForURL('**/outbox');
    const rows = await page.locator('#outbox tbody tr').allTextContents();
    assert.ok(rows.some((row) => /Catalogue/.test(row) && /Sent/.test(row)), rows.join('\n'));
    assert.ok(rows.some((row) => /Re: Delivery date/.test(row) && /Sent/.test(row)), rows.join('\n'));
    await page.screenshot({ path: path.join(SHOTS, 'outbox-laptop.png'), fullPage: true });
    assert.deepEqual(cspViolations, []);
    await page.context().close();
  });
});
