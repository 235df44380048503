import { strict as assert } from 'node:assert';
import { type Browser } from 'playwright-core';
import { createLogger } from '../../gateway/core/log';
import { startAdmin, type RunningAdmin } from '../../admin/server';
import { openTestStore } from '../support/store';
import { makeAccount, makeUser, PASSWORD, storeMessage, testConfig, type TestStore } from './fixtures';
import { launchChromium } from '../support/browser';

/**
 * A message's page in a real browser must wrap, not push the page sideways
 * at laptop or phone width: a quarantined message's reason (a sentence or
 * two, with domains and results), and an attachment with a long name.
 */
describe('admin in a real browser: a message page fits the window', function () {
  this.timeout(60_000);
  let store: TestStore;
  let admin: RunningAdmin;
  let browser: Browser;
  let messageId: string;
  let longNameId: string;

  before(async () => {
    store = await openTestStore('admin_message_width');
    const bob = await makeUser(store, 'bob@acme.test');
    const account = await makeAccount(store, bob, 'bob.personal@gmailish.test');
    const reason = 'authentication failed: nothing shows it came through the mailbox\'s provider or the business: no SPF pass, DKIM signature or ' +
      'trusted forwarder\'s ARC seal for gmailish.test, acme.test (spf=fail (gmailish.test); dkim=pass d=globex.test; dmarc=pass; arc=none); ' +
      'the sender\'s domain globex.test is authenticated (DMARC pass)';
    messageId = (await storeMessage(store, { subject: 'Quote for the renewal', from: 'Jane Roe <jane@globex.test>', text: 'Please find our quote.' }, {
      ownerId: bob.id, accountId: account.id, status: 'quarantine', quarantineReason: reason,
      auth: { verdict: 'fail', reason: reason.replace('authentication failed: ', ''), results: 'gw.test; spf=fail; dkim=pass header.d=globex.test; dmarc=pass', spf: 'fail', dkim: 'pass', dmarc: 'pass', sender: 'pass' },
    })).id;
    // Scanners and scripts name files like this; the download list showed it on one line 2,400 px wide.
    longNameId = (await storeMessage(store, {
      subject: 'Scan', from: 'scanner@acme.test', text: 'Scanned document attached.',
      attachments: [{ filename: `${'Scan_20261128_Buchhaltung_Rechnungen_'.repeat(6)}.pdf`, content: Buffer.from('%PDF-1.4 scan'), contentType: 'application/pdf' }],
    }, { ownerId: bob.id, accountId: account.id })).id;
    admin = await startAdmin({ config: testConfig(), log: createLogger({ level: 'silent' }), store, port: 0, host: '127.0.0.1' });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await admin?.close();
    await store?.drop();
  });

  const pages = [
    { what: 'the quarantine reason', id: () => messageId, shows: /quarantined: authentication failed: nothing shows it came through/ },
    { what: 'a long attachment name', id: () => longNameId, shows: /Scan_20261128_Buchhaltung_Rechnungen_Scan/ },
  ];
  for (const viewport of [{ width: 1366, height: 860 }, { width: 390, height: 844 }]) for (const shown of pages) {
    it(`wraps ${shown.what} at ${viewport.width} px`, async () => {
      const context = await browser.newContext({ viewport, baseURL: admin.url });
      try {
        const page = await context.newPage();
        await page.goto('/login');
        await page.fill('#email', 'bob@acme.test');
        await page.fill('#password', PASSWORD);
        await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')), page.click('button[type=submit]')]);
        await page.goto(`/messages/${shown.id()}`);
        assert.match(await page.locator('main').innerText(), shown.shows);
        // Runs in the page (no DOM types in this project's compilation).
        const widths = await page.evaluate(() => {
          const page = globalThis as unknown as { document: { documentElement: { scrollWidth: number } }; innerWidth: number };
          return { content: page.document.documentElement.scrollWidth, window: page.innerWidth };
        });
        assert.ok(widths.content <= widths.window, `the page is ${widths.content} px wide in a ${widths.window} px window`);
      } finally {
        await context.close();
      }
    });
  }
});
