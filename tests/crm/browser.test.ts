/**
 * CRM pages in a real browser (Debian's Chromium via playwright-core):
 * create a customer, see linked mail with its reasons, upload a CSV file
 * through the file picker (the JavaScript upload path under the strict
 * CSP), commit it. Screenshots go to test-output/screenshots/crm-*.png.
 */
import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Browser, type Page, type Route } from 'playwright-core';
import type { PublicUser } from '../../gateway/accounts';
import { createLogger } from '../../gateway/core/log';
import { fromRoot } from '../../gateway/core/paths';
import { runPendingJobs } from '../../gateway/crm/backfill';
import { startAdmin, type RunningAdmin } from '../../admin/server';
import { openTestStore } from '../support/store';
import { makeAccount, makeUser, PASSWORD, storeMessage, testConfig, type TestStore } from '../admin/fixtures';
import { testLog } from './support';
import { launchChromium } from '../support/browser';

const SHOTS = fromRoot('test-output', 'screenshots');

describe('crm: objects pages in a real browser (Chromium)', function () {
  this.timeout(120_000);
  let store: TestStore;
  let admin: RunningAdmin;
  let browser: Browser;
  let bob: PublicUser;
  const cspViolations: string[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crm-browser-'));

  before(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    store = await openTestStore('crm_browser');
    await makeUser(store, 'admin@acme.test', 'admin');
    bob = await makeUser(store, 'bob@acme.test');
    const account = await makeAccount(store, bob, 'bob@acme.test');
    for (let i = 0; i < 6; i++) {
      await storeMessage(store, { subject: `Order ${100 + i}`, from: `Buyer ${i} <buyer${i}@globex.test>`, to: 'bob@acme.test' },
        { ownerId: bob.id, accountId: account.id, receivedAt: new Date(Date.now() - i * 3600_000) });
    }
    admin = await startAdmin({ config: testConfig(), log: createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), store, port: 0, host: '127.0.0.1' });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await admin?.close();
    await store?.drop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function signedInPage(email: string): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1366, height: 860 }, baseURL: admin.url });
    const page = await context.newPage();
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) cspViolations.push(`${page.url()}: ${message.text()}`);
    });
    await page.goto('/login');
    await page.fill('#email', email);
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')), page.click('button[type=submit]')]);
    return page;
  }

  it('creates a customer, links existing mail in the background and shows why each message is linked', async () => {
    const page = await signedInPage('bob@acme.test');
    await page.click('nav.sidebar >> text=Objects');
    await page.waitForURL('**/objects');
    await page.click('a.button:has-text("New object")');
    await page.selectOption('#type', 'customer');
    await page.fill('#name', 'Globex');
    await page.fill('#domains', 'globex.test');
    await Promise.all([page.waitForURL(/\/objects\/[0-9a-f]{24}$/), page.click('#object-form button[type=submit]')]);
    assert.match(await page.textContent('.flash') ?? '', /being linked in the background/);
    await runPendingJobs({ store, log: testLog, settings: { businessDomains: ['acme.test'] } });
    await page.reload();
    const rows = await page.locator('#timeline tbody tr').count();
    assert.equal(rows, 6);
    assert.match(await page.textContent('#timeline tbody tr:first-child') ?? '', /Order 100[\s\S]*domain[\s\S]*buyer0@globex\.test/);
    await page.screenshot({ path: path.join(SHOTS, 'crm-object.png'), fullPage: true });
  });

  it('uploads a CSV file through the file picker, previews problems per row and commits', async () => {
    const file = path.join(tmp, 'contacts.csv');
    fs.writeFileSync(file, 'type,name,emails,customer,external_id\ncontact,Jane Roe,jane@globex.test,Globex,c-1\ncontact,Bad Row,not-an-address,,c-2\n');
    const page = await signedInPage('admin@acme.test');
    await page.goto('/objects/import');
    assert.equal(await page.isVisible('#csv-upload'), true, 'the upload form appears once its script runs');
    await page.setInputFiles('#csv-file', file);
    await Promise.all([page.waitForURL(/\/objects\/import\/[0-9a-f]{24}$/), page.click('#csv-upload button[type=submit]')]);
    assert.match(await page.textContent('#import-counts') ?? '', /Will be created\s*1/);
    assert.match(await page.textContent('#import-problems') ?? '', /Bad Row\s*emails "not-an-address" is not an email address/);
    await page.screenshot({ path: path.join(SHOTS, 'crm-import-preview.png'), fullPage: true });
    // A slow import (fault injection: the request is held until the button has been seen): the button says so
    // and takes no second press. The page reports its button itself: Playwright waits for the held navigation.
    let hold: (route: Route) => void = () => undefined;
    const held = new Promise<Route>((resolve) => (hold = resolve));
    await page.route((url) => url.pathname.endsWith('/commit'), (route) => hold(route));
    let report: (state: { text: string; disabled: boolean }) => void = () => undefined;
    const reported = new Promise<{ text: string; disabled: boolean }>((resolve) => (report = resolve));
    await page.exposeFunction('reportImportButton', (state: { text: string; disabled: boolean }) => report(state));
    await page.evaluate(() => {
      type Button = { textContent: string | null; disabled: boolean };
      const view = globalThis as unknown as { reportImportButton(state: unknown): void; document: { querySelector(s: string): Button }; MutationObserver: new (cb: () => void) => { observe(node: Button, options: object): void } };
      const pressed = view.document.querySelector('form[data-busy-text] button');
      new view.MutationObserver(() => view.reportImportButton({ text: pressed.textContent, disabled: pressed.disabled })).observe(pressed, { attributes: true, childList: true });
    });
    await page.locator('button:has-text("Import 1 row")').click({ noWaitAfter: true });
    assert.deepEqual(await reported, { text: 'Importing…', disabled: true });
    await (await held).continue();
    await page.waitForSelector('#import-result');
    assert.match(await page.textContent('#import-result') ?? '', /Created\s*1/);
    const jane = await store.models.CrmObject.findOne({ externalId: 'c-1' }).lean();
    assert.ok(jane?.customerId, 'linked to the customer Globex');
  });

  it('says on the page why an uploaded file is refused', async () => {
    const file = path.join(tmp, 'no-name.csv');
    fs.writeFileSync(file, 'type,emails\ncontact,jane@globex.test\n');
    const page = await signedInPage('admin@acme.test');
    await page.goto('/objects/import');
    await page.setInputFiles('#csv-file', file);
    await page.click('#csv-upload button[type=submit]');
    // A function, not a string: a string is compiled in the page with eval, which the console's CSP forbids.
    await page.waitForFunction(() => (globalThis as unknown as { document: { getElementById(id: string): { textContent: string } } }).document.getElementById('csv-upload-error').textContent !== '');
    assert.match(await page.textContent('#csv-upload-error') ?? '', /the header row has no "name" column/);
    assert.equal(new URL(page.url()).pathname, '/objects/import');
    assert.equal(await page.isEnabled('#csv-upload button[type=submit]'), true, 'the user can pick another file');
  });

  it('previews an Excel export (semicolons, Windows-1252) with its names intact', async () => {
    const file = path.join(tmp, 'excel.csv');
    fs.writeFileSync(file, Buffer.from('Type;Name;E-Mail;Domain\r\ncustomer;M\xfcller GmbH;;mueller.test\r\ncontact;J\xfcrgen Stra\xdfe;juergen@mueller.test;\r\n', 'latin1'));
    const page = await signedInPage('admin@acme.test');
    await page.goto('/objects/import');
    await page.setInputFiles('#csv-file', file);
    await Promise.all([page.waitForURL(/\/objects\/import\/[0-9a-f]{24}$/), page.click('#csv-upload button[type=submit]')]);
    assert.match(await page.textContent('#import-counts') ?? '', /Will be created\s*2/);
    assert.match(await page.textContent('#import-encoding') ?? '', /Windows-1252/);
    const preview = await page.textContent('main') ?? '';
    assert.match(preview, /Müller GmbH/);
    assert.match(preview, /Jürgen Straße/);
    await page.screenshot({ path: path.join(SHOTS, 'crm-import-excel.png'), fullPage: true });
  });

  it('shows no Content-Security-Policy violations', () => {
    assert.deepEqual(cspViolations, []);
  });
});
