import { strict as assert } from 'node:assert';
import { type Browser } from 'playwright-core';
import { createLogger } from '../../gateway/core/log';
import { startAdmin, type RunningAdmin } from '../../admin/server';
import * as wild from '../fixtures/wild';
import { openTestStore } from '../support/store';
import { makeAccount, makeUser, PASSWORD, storeMessage, testConfig, type TestStore } from './fixtures';
import { launchChromium } from '../support/browser';

/**
 * Everyday mail from real mailers (tests/fixtures/wild) in a real browser,
 * at laptop and phone width: the invitation, the attached message, the
 * encrypted-mail note, a mail to 300 and a 40-deep reply thread all fit the
 * window and say what they are.
 */
describe('admin in a real browser: mail as it arrives from the wild', function () {
  this.timeout(90_000);
  let store: TestStore;
  let admin: RunningAdmin;
  let browser: Browser;
  const ids = new Map<string, string>();

  before(async () => {
    store = await openTestStore('admin_wild_browser');
    const bob = await makeUser(store, 'bob@acme.test');
    const account = await makeAccount(store, bob, 'bob@acme.test');
    for (const message of [wild.outlookInvite(), wild.forwardedAsAttachment(), wild.smimeEncrypted(), wild.manyRecipients(), wild.longThread(), wild.exchangeNdr()]) {
      ids.set(message.name, (await storeMessage(store, { raw: message.raw }, { ownerId: bob.id, accountId: account.id })).id);
    }
    admin = await startAdmin({ config: testConfig(), log: createLogger({ level: 'silent' }), store, port: 0, host: '127.0.0.1' });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await admin?.close();
    await store?.drop();
  });

  const shows: Record<string, RegExp> = {
    'outlook-invite': /Invitation: Quarterly review[\s\S]*When\s+2025-07-14 12:00 – 13:00 UTC/,
    'forwarded-as-attachment': /Attached message: Complaint about order 1234[\s\S]*The delivery arrived damaged\./,
    'smime-encrypted': /This message is encrypted with S\/MIME\./,
    'many-recipients': /and 138 more/,
    'long-thread': /Reply number 40\./,
    'exchange-ndr': /Not linked: this is a delivery report \(a bounce\)/,
  };
  for (const viewport of [{ width: 1366, height: 860 }, { width: 390, height: 844 }]) {
    it(`shows each of them, within the window, at ${viewport.width} px`, async () => {
      const context = await browser.newContext({ viewport, baseURL: admin.url });
      try {
        const page = await context.newPage();
        await page.goto('/login');
        await page.fill('#email', 'bob@acme.test');
        await page.fill('#password', PASSWORD);
        await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')), page.click('button[type=submit]')]);
        for (const [name, expected] of Object.entries(shows)) {
          await page.goto(`/messages/${ids.get(name)}`);
          assert.match(await page.locator('main').innerText(), expected, name);
          // Runs in the page (no DOM types in this project's compilation).
          const widths = await page.evaluate(() => {
            const page = globalThis as unknown as { document: { documentElement: { scrollWidth: number } }; innerWidth: number };
            return { content: page.document.documentElement.scrollWidth, window: page.innerWidth };
          });
          assert.ok(widths.content <= widths.window, `${name}: the page is ${widths.content} px wide in a ${widths.window} px window`);
        }
      } finally {
        await context.close();
      }
    });
  }
});
