/**
 * The console in a real browser: Debian's Chromium driven by playwright-core.
 * Sign-in, Preferences → Email → Add → Save → Edit, IMAP Authenticate
 * against the test Dovecot, hostile HTML that must not run, and screenshots
 * of the main pages at laptop and phone widths (test-output/screenshots/).
 */
import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import path from 'node:path';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { PublicUser } from '../../gateway/accounts';
import { createLogger } from '../../gateway/core/log';
import { fromRoot } from '../../gateway/core/paths';
import { startAdmin, type RunningAdmin } from '../../admin/server';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';
import { solidPng } from '../support/png';
import { openTestStore } from '../support/store';
import { makeAccount, makeUser, PASSWORD, storeMessage, testConfig, type TestStore } from './fixtures';
import { launchChromium } from '../support/browser';

const SHOTS = fromRoot('test-output', 'screenshots');
const LAPTOP = { width: 1366, height: 860 };
const PHONE = { width: 390, height: 844 };
const IMAP_USER = 'browser-imap@acme.test';
const IMAP_PASSWORD = 'browser-app-password';

/** WCAG contrast ratio of two CSS rgb()/rgba() colours (opaque); 1 when either is missing. */
function contrastRatio(first: string, second: string): number {
  const luminance = (colour: string) => {
    const channels = /rgba?\(([^)]+)\)/.exec(colour)?.[1].split(',').slice(0, 3).map((part) => Number(part) / 255);
    if (!channels) return NaN;
    const [r, g, b] = channels.map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [a, b] = [luminance(first), luminance(second)];
  if (Number.isNaN(a) || Number.isNaN(b)) return 1;
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}

// Text whose contrast with its background is below WCAG AA (4.5:1, or 3:1 for large text). Plain JavaScript in
// a string: what tsx compiles for page.evaluate() refers to its own helpers, which the page does not have.
const LOW_CONTRAST_TEXT = `(() => {
  const parse = (colour) => { const [r, g, b, a = 1] = (/rgba?\\(([^)]+)\\)/.exec(colour) || [0, '0,0,0,0'])[1].split(',').map(Number); return { r, g, b, a }; };
  const luminance = (c) => [c.r, c.g, c.b].map((v) => v / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (element) => {
    for (; element; element = element.parentElement) { const colour = parse(getComputedStyle(element).backgroundColor); if (colour.a > 0.5) return colour; }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  const found = [];
  for (const element of document.querySelectorAll('body *')) {
    if (![...element.childNodes].some((child) => child.nodeType === 3 && child.textContent.trim())) continue;
    const css = getComputedStyle(element);
    if (element.getClientRects().length === 0 || css.visibility === 'hidden') continue;
    const [a, b] = [luminance(parse(css.color)), luminance(background(element))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(css.fontSize);
    const large = size >= 24 || (Number(css.fontWeight) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) found.push('"' + element.textContent.trim().slice(0, 30) + '" (' + element.tagName + ') ' + ratio.toFixed(2) + ':1');
  }
  return found;
})()`;

const XSS_HTML = [
  '<p id="greeting">Hello from a hostile sender</p>',
  '<script>window.top.__pwned = "script"; alert("script")</script>',
  '<img id="broken" src="x:" onerror="window.top.__pwned = \'onerror\'; alert(\'onerror\')">',
  '<a id="jslink" href="javascript:window.top.__pwned=\'javascript\';alert(\'javascript\')">Click me</a>',
  '<svg onload="window.top.__pwned=\'svg\'"><circle r="4"/></svg>',
  '<iframe src="javascript:window.top.__pwned=\'iframe\'"></iframe>',
  '<form action="javascript:alert(1)"><button id="formbtn">Go</button></form>',
  '<img src="https://tracker.example/open.gif" alt="tracker">',
].join('\n');

describe('admin in a real browser (Chromium)', function () {
  this.timeout(120_000);
  let store: TestStore;
  let admin: RunningAdmin;
  let browser: Browser;
  let dovecot: DovecotServer;
  let bob: PublicUser;
  let xssMessageId: string;
  let plainMessageId: string;
  let inlineLogoMessageId: string;
  let longNewsletterId: string;
  const cspViolations: string[] = [];
  const dialogs: string[] = [];

  before(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    store = await openTestStore('admin_browser');
    dovecot = await shared('dovecot', () => startDovecot());
    await dovecot.addUser(IMAP_USER, IMAP_PASSWORD);
    await makeUser(store, 'admin@acme.test', 'admin');
    bob = await makeUser(store, 'bob@acme.test');
    const account = await makeAccount(store, bob, 'bob@acme.test');
    const base = Date.now() - 10 * 86_400_000;
    for (let i = 0; i < 40; i++) {
      await storeMessage(store, { subject: `Quote request #${1000 + i}`, from: `Customer ${i} <buyer${i}@customer${i % 5}.test>`, text: `Hello Bob, we would like a quote for ${i + 1} units of the usual.` },
        { ownerId: bob.id, accountId: account.id, source: i % 3 === 0 ? 'imap' : 'forward', receivedAt: new Date(base + i * 5 * 3600_000) });
    }
    plainMessageId = (await storeMessage(store, {
      subject: 'Invoice 2026-0042', from: 'Accounts <billing@supplier.test>', text: 'Please find the invoice attached.\n\nKind regards,\nSupplier',
      html: '<h2>Invoice 2026-0042</h2><p>Please find the invoice attached.</p><table border="1" cellpadding="6"><tr><th>Item</th><th>Amount</th></tr><tr><td>Widgets</td><td>€ 1,200.00</td></tr></table>',
      attachments: [{ filename: 'invoice-2026-0042.pdf', content: Buffer.from('%PDF-1.4 invoice'), contentType: 'application/pdf' }],
    }, { ownerId: bob.id, accountId: account.id, receivedAt: new Date(Date.now() - 3600_000),
      auth: { verdict: 'pass', reason: 'DKIM aligned with supplier.test', results: 'postroom.test; spf=pass smtp.mailfrom=supplier.test; dkim=pass header.d=supplier.test; dmarc=pass header.from=supplier.test', spf: 'pass', dkim: 'pass', dmarc: 'pass' } })).id;
    inlineLogoMessageId = (await storeMessage(store, {
      subject: 'Re: delivery dates', from: 'Carol <carol@supplier.test>', text: 'Thursday works.\n\nCarol',
      html: '<p>Thursday works.</p><p>Carol<br><img src="cid:logo123" alt="Supplier logo" width="48" height="24"></p>',
      attachments: [
        { cid: 'logo123', content: solidPng(48, 24), contentType: 'image/png', filename: false },
        { filename: 'delivery-note.pdf', content: Buffer.from('%PDF-1.4 note'), contentType: 'application/pdf' },
      ],
    }, { ownerId: bob.id, accountId: account.id, receivedAt: new Date(Date.now() - 1800_000) })).id;
    longNewsletterId = (await storeMessage(store, {
      subject: 'Winter newsletter', from: 'News <news@supplier.test>', text: 'plain part',
      html: Array.from({ length: 120 }, (_, i) => `<p>Paragraph ${i + 1} of a long newsletter with no links in it.</p>`).join(''),
    }, { ownerId: bob.id, accountId: account.id, receivedAt: new Date(Date.now() - 7200_000) })).id;
    xssMessageId = (await storeMessage(store, { subject: 'Totally harmless newsletter', html: XSS_HTML, text: 'plain part' }, { ownerId: bob.id, accountId: account.id, receivedAt: new Date() })).id;
    await storeMessage(store, { subject: '(#638294017) Gmail Forwarding Confirmation - Receive Mail from bob@acme.test', from: 'Gmail Team <forwarding-noreply@google.com>', text: 'Confirmation code: 638294017' },
      { ownerId: bob.id, accountId: account.id, receivedAt: new Date(), classify: { kind: 'forwarding-confirmation', confirmation: { provider: 'Gmail', code: '638294017', link: '', requester: 'bob@acme.test' } } });
    await storeMessage(store, { subject: 'Your account is suspended', from: 'security@paypa1.test' },
      { ownerId: bob.id, accountId: account.id, status: 'quarantine', quarantineReason: 'authentication failed', auth: { verdict: 'fail', reason: 'SPF fail, DMARC fail', results: 'postroom.test; spf=fail; dmarc=fail' }, receivedAt: new Date() });
    // With the plain-words reason in the row and "Delete the 2 messages shown" under the list (the screenshot test checks neither overflows).
    await storeMessage(store, { subject: 'Urgent: wire transfer before noon', from: 'CEO <ceo@acme.test>' },
      { ownerId: bob.id, accountId: account.id, status: 'quarantine', quarantineReason: 'authentication failed: nothing shows it came through the mailbox\'s provider', receivedAt: new Date(),
        auth: { verdict: 'fail', reason: 'no SPF pass', results: 'postroom.test; spf=pass smtp.mailfrom=evil.test; dmarc=fail header.from=acme.test', sender: 'fail',
          explanation: 'It claims to come from your own domain acme.test, but it was not sent through your mail provider: it is most likely forged. Do not release it, reply to it or follow its links unless you have checked with the sender another way.' } });

    const config = testConfig({ PUBLIC_URL: 'http://127.0.0.1:8080' });
    admin = await startAdmin({ config, log: createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), store, port: 0, host: '127.0.0.1', imapTimeoutMs: 10_000 });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await admin?.close();
    await store?.drop();
  });

  // On a failure, a screenshot of the last page opened shows what the browser saw.
  let lastPage: Page | undefined;
  const requestLog: string[] = [];
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && lastPage && !lastPage.isClosed()) {
      const name = `failure-${this.currentTest.title.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}`;
      await lastPage.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true }).catch(() => undefined);
      console.error(`browser test failed at ${lastPage.url()}; screenshot test-output/screenshots/${name}.png`);
      console.error(requestLog.slice(-40).join('\n'));
    }
  });

  async function newPage(viewport = LAPTOP): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport, baseURL: admin.url });
    const page = await context.newPage();
    lastPage = page;
    page.on('request', (request) => requestLog.push(`${Date.now()} ${request.method()} ${request.url()}`));
    page.on('response', (response) => requestLog.push(`${Date.now()} <- ${response.status()} ${response.url()}`));
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) cspViolations.push(`${page.url()}: ${message.text()}`);
    });
    page.on('dialog', async (dialog) => {
      dialogs.push(dialog.message());
      await dialog.dismiss();
    });
    return { context, page };
  }

  async function signIn(page: Page, email: string): Promise<void> {
    await page.goto('/login');
    await page.fill('#email', email);
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')), page.click('button[type=submit]')]);
  }

  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  it('signs in, then Preferences → Email → Add → Save → Edit shows the forwarding address', async () => {
    const { context, page } = await newPage();
    await page.goto('/login');
    await shot(page, 'login-laptop');
    await signIn(page, 'bob@acme.test');
    await page.click('nav.sidebar >> text=Preferences');
    await page.waitForURL('**/preferences/email');
    await page.click('a.button:has-text("Add")');
    await page.waitForURL('**/preferences/email/new');
    await page.fill('#email', 'bob.sales@gmail.com');
    await Promise.all([page.waitForURL(/\/preferences\/email\/[0-9a-f]{24}$/), page.click('button:has-text("Save")')]);
    const stored = (await store.models.MailAccount.findOne({ email: 'bob.sales@gmail.com' }).lean())!;
    assert.ok(stored);
    const shown = (await page.textContent('#forwarding-address'))?.trim();
    assert.equal(shown, stored.forwardingAddress);
    assert.match(shown!, /^bob-sales-gmail-com\.[a-z2-9]{16}@in\.postroom\.test$/);
    assert.ok(await page.isVisible('button[data-copy]:has-text("Copy")'), 'the copy button is shown once JavaScript runs');
    assert.match((await page.textContent('.flash.success')) ?? '', /Added bob\.sales@gmail\.com/);
    await shot(page, 'account-edit-laptop');
    await context.close();
  });

  it('keyboard: arrow keys on an inbox filter move through its choices without reloading the page; Enter applies the choice', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'bob@acme.test');
    await page.goto('/');
    await page.focus('#source');
    const focused = () => page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } } }).document.activeElement.id);
    // Each arrow press used to submit the filter: the page reloaded at the first choice and the focus was gone.
    for (let i = 0; i < 4; i++) await page.keyboard.press('ArrowDown');
    assert.equal(await focused(), 'source');
    assert.equal(new URL(page.url()).search, '');
    const chosen = await page.inputValue('#source');
    assert.equal(chosen, 'sent');
    await Promise.all([page.waitForURL((url) => url.searchParams.get('source') === 'sent'), page.keyboard.press('Enter')]);
    // With the mouse (or a picker), a choice still applies at once.
    await Promise.all([page.waitForURL((url) => url.searchParams.get('source') === 'imap'), page.selectOption('#source', 'imap')]);
    await context.close();
  });

  it('keyboard: the first Tab shows a "Skip to content" link that jumps past the top bar and the menu; the menu says which page is open', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'bob@acme.test');
    await page.goto('/');
    const active = () => page.evaluate(() => {
      const element = (globalThis as unknown as { document: { activeElement: { textContent: string; id: string } } }).document.activeElement;
      return element.id || element.textContent.trim();
    });
    await page.keyboard.press('Tab');
    // Without it, a keyboard user tabbed through the top bar and the whole menu on every page before reaching it.
    assert.equal(await active(), 'Skip to content');
    const box = (await page.locator('a.skip-link').boundingBox())!;
    assert.ok(box.y >= 0 && box.height > 0, 'the focused link is on screen');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Tab');
    assert.equal(await active(), 'Mail accounts', 'the next Tab is the first control of the page itself');
    assert.deepEqual(await page.locator('nav.sidebar [aria-current="page"]').allTextContents(), ['Emails']);
    assert.deepEqual(await page.locator('nav.view-tabs [aria-current="page"]').allTextContents(), ['Inbox']);
    await page.goto('/preferences/profile');
    assert.deepEqual(await page.locator('nav.sidebar [aria-current="page"]').allTextContents(), ['Preferences']);
    assert.deepEqual(await page.locator('nav.prefs-nav [aria-current="page"]').allTextContents(), ['Profile']);

    // The focus ring on the dark top bar stands out from it (3:1), as it does on the white page.
    await page.focus('a.brand');
    await page.keyboard.press('Tab');
    assert.equal(await active(), 'Sign out');
    const [ring, bar] = await page.evaluate(() => {
      const doc = (globalThis as unknown as { document: { activeElement: unknown; querySelector(selector: string): unknown } }).document;
      const style = (globalThis as unknown as { getComputedStyle(element: unknown): { outlineColor: string; outlineStyle: string; backgroundColor: string } }).getComputedStyle;
      const focused = style(doc.activeElement);
      return [focused.outlineStyle === 'none' ? '' : focused.outlineColor, style(doc.querySelector('.topbar')).backgroundColor];
    });
    assert.ok(contrastRatio(ring, bar) >= 3, `focus ring ${ring} on ${bar}: ${contrastRatio(ring, bar).toFixed(2)}:1`);
    await context.close();
  });

  it('all text on the inbox, a message, Preferences and Users has WCAG AA contrast against its background', async () => {
    // The green badges ("auth pass", "active") and the menu's "Admin" label were too pale to read for many people.
    const pages: Array<[string, string]> = [['/', 'bob@acme.test'], [`/messages/${plainMessageId}`, 'bob@acme.test'], ['/preferences/email', 'bob@acme.test'], ['/users', 'admin@acme.test']];
    const lowContrast: string[] = [];
    for (const [url, who] of pages) {
      const { context, page } = await newPage();
      await signIn(page, who);
      await page.goto(url);
      lowContrast.push(...(await page.evaluate(LOW_CONTRAST_TEXT) as string[]).map((found) => `${url}: ${found}`));
      await context.close();
    }
    assert.deepEqual(lowContrast, []);
  });

  it('phone width: every menu entry and Preferences tab is on screen, none hidden past the edge', async () => {
    const { context, page } = await newPage(PHONE);
    await signIn(page, 'admin@acme.test');
    await page.goto('/preferences/profile');
    const offScreen = await page.locator('nav.sidebar a, nav.prefs-nav a').evaluateAll((links) => links
      .map((link) => ({ text: (link.textContent ?? '').trim(), box: (link as unknown as { getBoundingClientRect(): { left: number; right: number } }).getBoundingClientRect() }))
      .filter(({ box }) => box.left < 0 || box.right > 390)
      .map(({ text }) => text));
    // "API tokens" and "Audit log" sat past the right edge of a sideways-scrolling strip, with nothing to show they were there.
    assert.deepEqual(offScreen, []);
    await context.close();
  });

  it('Users: each row\'s buttons say whom they act on, to a screen reader as well', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'admin@acme.test');
    await page.goto('/users');
    // Every row had a "Set" and a "Disable": read out of the table, nothing said whose.
    assert.equal(await page.getByRole('button', { name: 'Disable bob@acme.test', exact: true }).count(), 1);
    assert.equal(await page.getByRole('button', { name: 'Set role of bob@acme.test', exact: true }).count(), 1);
    assert.equal(await page.getByRole('button', { name: 'Set role of admin@acme.test', exact: true }).count(), 1);
    assert.equal(await page.getByRole('columnheader', { name: 'Access' }).count(), 1, 'the buttons\' column has a name');
    assert.ok(await page.getByRole('button', { name: 'Disable bob@acme.test' }).isVisible(), 'and shows the same short word on screen');
    const hidden = (await page.getByRole('button', { name: 'Disable bob@acme.test' }).locator('.sr-only').boundingBox())!;
    assert.ok(hidden.width <= 1, 'the added words are for screen readers only');
    await context.close();
  });

  it('Copy says what it copies and announces that it did, to a screen reader too', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'bob@acme.test');
    await page.goto('/preferences/profile');
    const copy = page.locator('button[data-copy]').first();
    const address = (await page.textContent('#dropbox-address'))!.trim();
    assert.equal(await copy.evaluate((button) => button.getAttribute('aria-describedby')), 'dropbox-address');
    await copy.click();
    // The button's label turning into "Copied" is not read out; a status message is.
    await page.waitForFunction(() => (globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } }).document.querySelector('[role=status]#announcer')?.textContent === 'Copied to the clipboard.');
    assert.ok(address.includes('@'));
    await context.close();
  });

  it('keyboard: Tab reaches a long HTML mail without links, and Page Down scrolls it', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'bob@acme.test');
    await page.goto(`/messages/${longNewsletterId}`);
    const frame = (await (await page.waitForSelector('iframe.msg-body-frame')).contentFrame())!;
    await frame.locator('p', { hasText: 'Paragraph 120 ' }).waitFor({ state: 'attached' });
    const scrolled = () => frame.evaluate(() => (globalThis as unknown as { document: { scrollingElement: { scrollTop: number } } }).document.scrollingElement.scrollTop);
    await page.focus('a[download]');
    // Tab went from "Download .eml" straight past the frame: the rest of the mail was out of a keyboard's reach.
    await page.keyboard.press('Tab');
    assert.equal(await frame.evaluate(() => (globalThis as unknown as { document: { activeElement: { className: string } } }).document.activeElement.className), 'postroom-message');
    await page.keyboard.press('PageDown');
    await frame.waitForFunction(() => (globalThis as unknown as { document: { scrollingElement: { scrollTop: number } } }).document.scrollingElement.scrollTop > 0);
    assert.ok(await scrolled() > 0);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { textContent: string } } }).document.activeElement.textContent), 'Plain-text part', 'and the next Tab leaves it');
    await context.close();
  });

  it('the provider\'s confirmation code shows up on the open account page without a reload, and what is being typed stays', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'bob@acme.test');
    const account = await makeAccount(store, bob, 'bob.waiting@gmail.com');
    await page.goto(`/preferences/email/${account.id}`);
    assert.equal(await page.locator('#confirmation-code').count(), 0);
    await page.fill('#imap-username', 'typed but not saved');
    let reloads = 0;
    page.on('framenavigated', () => reloads++);
    // What the gateway records when Gmail's confirmation mail arrives at the forwarding address.
    await store.models.MailAccount.updateOne({ _id: account.id }, {
      $set: { 'forwarding.status': 'code_received', 'forwarding.provider': 'google', 'forwarding.confirmationCode': '638294017', 'forwarding.confirmationAt': new Date() },
    });
    await page.waitForSelector('#confirmation-code', { timeout: 15_000 });
    assert.equal((await page.textContent('#confirmation-code'))?.trim(), '638294017');
    assert.ok(await page.isVisible('#forwarding-state button[data-copy]:has-text("Copy code")'), 'the new copy button works like the others');
    assert.match((await page.textContent('#forwarding-state')) ?? '', /Forwarding: confirmation received/, 'the status moved on too');
    assert.equal(await page.inputValue('#imap-username'), 'typed but not saved');
    assert.equal(reloads, 0, 'the page was not reloaded');

    // Verified: the page stops asking.
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { 'forwarding.status': 'verified', 'forwarding.verifiedAt': new Date() } });
    const asked = (timeout: number) => page.waitForResponse((response) => response.url().endsWith(`/preferences/email/${account.id}/forwarding-state`), { timeout });
    const last = await asked(15_000);
    assert.equal(last.headers()['x-poll'], 'stop');
    const after = await asked(7_000).then(() => 'asked again', () => 'no more requests'); // more than one 5 s tick
    assert.equal(after, 'no more requests');
    await context.close();
  });

  it('the account page\'s live Forwarding panel does not turn into the sign-in page when the session ends', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'bob@acme.test');
    const account = await makeAccount(store, bob, 'bob.expiring@gmail.com');
    await page.goto(`/preferences/email/${account.id}`);
    const shown = await page.textContent('#forwarding-state');
    // Signed out in another tab, expired, or ended by a password change: the next poll is sent to sign in.
    await store.models.Session.deleteMany({});
    const asked = await page.waitForResponse((response) => response.url().includes('/forwarding-state') || response.url().includes('/login'), { timeout: 15_000 });
    assert.ok(asked);
    await page.waitForTimeout(500);
    assert.equal(await page.locator('#forwarding-state input[type=password], #forwarding-state form[action="/login"]').count(), 0, 'a sign-in form inside the panel');
    assert.equal(await page.textContent('#forwarding-state'), shown);
    await context.close();
  });

  it('IMAP Authenticate: succeeds against Dovecot with the right password, reports AUTH_FAILED with a wrong one', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'bob@acme.test');
    const account = { _id: (await makeAccount(store, bob, 'bob.imap@gmail.com')).id };
    await page.goto(`/preferences/email/${account._id}`);
    await page.selectOption('#imap-service', 'gmail');
    assert.equal(await page.inputValue('#imap-host'), 'imap.gmail.com', 'the preset fills the host (JavaScript enhancement)');
    assert.equal(await page.inputValue('#imap-port'), '993');
    assert.match((await page.textContent('#imap-password-service-hint')) ?? '', /Google Account → Security/);
    await page.selectOption('#imap-service', 'yahoo');
    assert.match((await page.textContent('#imap-password-service-hint')) ?? '', /^Generate an app password under Account Info/, 'the password hint follows the chosen service');
    // The TLS mode carries its standard port along: no STARTTLS attempt on 993.
    await page.selectOption('#imap-tls', 'starttls');
    assert.equal(await page.inputValue('#imap-port'), '143', 'STARTTLS moves 993 to 143');
    await page.selectOption('#imap-tls', 'implicit');
    assert.equal(await page.inputValue('#imap-port'), '993');
    await page.fill('#imap-port', '10993');
    await page.selectOption('#imap-tls', 'starttls');
    assert.equal(await page.inputValue('#imap-port'), '10993', 'a port the user typed is left alone');
    await page.selectOption('#imap-service', 'custom');
    await page.check('#imap-enabled');
    await page.fill('#imap-username', IMAP_USER);
    await page.fill('#imap-password', 'wrong-password-here');
    await page.fill('#imap-host', dovecot.host);
    await page.fill('#imap-port', String(dovecot.tlsPort));
    await page.selectOption('#imap-tls', 'implicit');
    // A refused save opens at the IMAP form with the problem in view, not at the top of a long page.
    await page.fill('#imap-port', '70000');
    await Promise.all([page.waitForResponse((response) => response.request().method() === 'POST' && response.status() === 400), page.click('button[value="save"]')]);
    await page.waitForSelector('#imap-form-errors');
    const box = (await page.locator('#imap-form-errors').boundingBox())!;
    assert.ok(box.y >= 0 && box.y + box.height <= page.viewportSize()!.height, `the error summary is in view (at y=${box.y})`);
    assert.match((await page.textContent('#imap-port-error')) ?? '', /must be a whole number from 1 to 65535/);
    assert.equal(await page.inputValue('#imap-username'), IMAP_USER, 'what was typed is kept');
    await page.fill('#imap-password', 'wrong-password-here');
    await page.fill('#imap-port', String(dovecot.tlsPort));
    const reloaded = () => page.waitForResponse((response) => response.request().method() === 'GET' && response.url().includes(`/preferences/email/${account._id}`));
    await Promise.all([reloaded(), page.click('#imap-authenticate')]);
    const failure = (await page.textContent('#imap-last-error')) ?? '';
    assert.match(failure, /AUTH_FAILED/);
    assert.match(failure, /Authentication failed\./, 'the server text is shown');
    assert.equal(await page.locator('.flash.error').count(), 0, 'said once, in the IMAP panel');
    await shot(page, 'imap-failed-laptop');

    await page.fill('#imap-password', IMAP_PASSWORD);
    await Promise.all([reloaded(), page.click('#imap-authenticate')]);
    await page.waitForLoadState();
    assert.match((await page.textContent('.flash.success')) ?? '', new RegExp(`Authenticated: signed in to ${dovecot.host.replace(/\./g, '\\.')} as ${IMAP_USER}`));
    assert.match((await page.textContent('#imap .status-line')) ?? '', /IMAP: authenticated/);
    assert.equal(await page.isVisible('#imap-last-error'), false);
    assert.equal(await page.inputValue('#imap-password'), '', 'the password is never sent back to the browser');
    const stored = (await store.models.MailAccount.findById(account._id).lean())!;
    assert.equal(stored.imap?.status, 'authenticated');
    await shot(page, 'imap-authenticated-laptop');
    await context.close();
  });

  it('renders hostile HTML mail with none of its script, onerror or javascript: payloads running', async () => {
    // Control: the same payloads in an undefended page do run, so the assertions below can fail.
    const control = await newPage();
    await control.page.setContent(XSS_HTML);
    await control.page.waitForFunction(() => (globalThis as unknown as { __pwned?: string }).__pwned !== undefined, null, { timeout: 5000 });
    await control.context.close();
    dialogs.length = 0;

    const { context, page } = await newPage();
    await signIn(page, 'bob@acme.test');
    await page.goto(`/messages/${xssMessageId}`);
    const frameElement = await page.waitForSelector('iframe.msg-body-frame');
    assert.equal(await frameElement.getAttribute('sandbox'), 'allow-popups allow-popups-to-escape-sandbox');
    const frame = (await frameElement.contentFrame())!;
    // The frame is searched by text, as a reader sees it.
    await frame.locator('p', { hasText: 'Hello from a hostile sender' }).waitFor();
    assert.equal(await frame.locator('script').count(), 0);
    assert.equal(await frame.locator('iframe, form, svg').count(), 0);
    assert.equal(await frame.locator('[onerror], [onload]').count(), 0);
    const link = frame.locator('a', { hasText: 'Click me' });
    assert.equal(await link.getAttribute('href'), null, 'the javascript: URL is gone');
    await link.click();
    assert.equal(await frame.locator('img[src^="https://tracker"]').count(), 0, 'remote images wait for "load images"');
    await page.waitForTimeout(500);
    assert.equal(await page.evaluate(() => (globalThis as unknown as { __pwned?: string }).__pwned), undefined);
    assert.deepEqual(dialogs, [], 'no alert() fired');
    assert.ok(await page.isVisible('a:has-text("Load images (1)")'));
    await shot(page, 'message-hostile-laptop');
    await context.close();
  });

  it('draws an inline (cid:) logo in the message frame without "load images", and lists only the real attachment', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'bob@acme.test');
    await page.goto(`/messages/${inlineLogoMessageId}`);
    const frame = page.frameLocator('iframe.msg-body-frame');
    const logo = frame.locator('img[alt="Supplier logo"]');
    await logo.waitFor();
    // Decoded and drawn: a broken image (the defect) has naturalWidth 0.
    await logo.evaluate((img) => (img as unknown as { decode(): Promise<void> }).decode());
    assert.deepEqual(await logo.evaluate((img) => {
      const image = img as unknown as { naturalWidth: number; naturalHeight: number; complete: boolean };
      return [image.complete, image.naturalWidth, image.naturalHeight];
    }), [true, 48, 24]);
    assert.equal(await page.locator('a:has-text("Load images")').count(), 0);
    assert.deepEqual(await page.locator('ul.attachments li a').allTextContents(), ['delivery-note.pdf']);
    await shot(page, 'message-inline-image-laptop');
    await context.close();
    assert.deepEqual(cspViolations, [], 'the data: image is within the frame policy');
  });

  it('takes screenshots of the main pages at laptop and phone widths, with no CSP violations', async () => {
    const account = (await store.models.MailAccount.findOne({ email: 'bob@acme.test' }).lean())!;
    const pages: Array<[string, string, string]> = [
      ['inbox', '/', 'bob@acme.test'],
      ['quarantine', '/?status=quarantine', 'bob@acme.test'],
      ['message', `/messages/${plainMessageId}`, 'bob@acme.test'],
      ['preferences-email', '/preferences/email', 'bob@acme.test'],
      ['account-edit', `/preferences/email/${account._id}`, 'bob@acme.test'],
      ['business', '/preferences/business', 'admin@acme.test'],
      ['profile', '/preferences/profile', 'bob@acme.test'],
      ['users', '/users', 'admin@acme.test'],
      ['tokens', '/tokens', 'admin@acme.test'],
      ['audit', '/audit', 'admin@acme.test'],
    ];
    for (const [label, viewport] of [['laptop', LAPTOP], ['phone', PHONE]] as const) {
      const sessions = new Map<string, { context: BrowserContext; page: Page }>();
      for (const [name, url, who] of pages) {
        if (!sessions.has(who)) {
          const opened = await newPage(viewport);
          await signIn(opened.page, who);
          sessions.set(who, opened);
        }
        const { page } = sessions.get(who)!;
        const response = await page.goto(url);
        assert.equal(response?.status(), 200, `${url} answered ${response?.status()}`);
        if (name === 'message') await page.frameLocator('iframe.msg-body-frame').locator('h2').waitFor();
        // Nothing sticks out sideways on a phone.
        const overflow = await page.evaluate(() => {
          const root = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document.documentElement;
          return root.scrollWidth - root.clientWidth;
        });
        assert.ok(overflow <= 1, `${name} overflows horizontally by ${overflow}px at ${label} width`);
        // Laptop: the whole page; phone: the first screen, as a person sees it.
        if (label === 'laptop') await shot(page, `${name}-${label}`);
        else await page.screenshot({ path: path.join(SHOTS, `${name}-${label}.png`) });
      }
      for (const { context } of sessions.values()) await context.close();
    }
    const files = fs.readdirSync(SHOTS).filter((file) => file.endsWith('.png'));
    assert.ok(files.length >= 20, `only ${files.length} screenshots`);
    assert.deepEqual(cspViolations, [], 'our own pages must not trip our CSP (no inline styles or scripts)');
  });
});
