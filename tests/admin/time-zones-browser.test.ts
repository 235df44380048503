/**
 * Time zones in a real browser (Debian's Chromium via playwright-core), on a computer set to Berlin: the
 * console says which zone its times are in, offers the computer's zone, and once it is saved shows the
 * mail's times and reads the search's days on the Berlin clock.
 */
import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import path from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { createLogger } from '../../gateway/core/log';
import { fromRoot } from '../../gateway/core/paths';
import { startAdmin, type RunningAdmin } from '../../admin/server';
import { openTestStore } from '../support/store';
import { makeUser, PASSWORD, storeMessage, testConfig, type TestStore } from './fixtures';
import { launchChromium } from '../support/browser';

const SHOTS = fromRoot('test-output', 'screenshots');

describe('admin: time zones in a real browser (Chromium set to Berlin, to Kolkata)', function () {
  this.timeout(120_000);
  let store: TestStore;
  let admin: RunningAdmin;
  let browser: Browser;

  before(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    store = await openTestStore('admin_time_zones_browser');
    const anna = await makeUser(store, 'anna@acme.test');
    // 23:30 UTC on 15 January is already 16 January in Berlin (CET, UTC+1).
    await storeMessage(store, { subject: 'Late order', from: 'Shop <shop@customer.test>' }, { ownerId: anna.id, receivedAt: new Date('2026-01-15T23:30:00Z') });
    await storeMessage(store, { subject: 'Morning order', from: 'Shop <shop@customer.test>' }, { ownerId: anna.id, receivedAt: new Date('2026-01-15T09:00:00Z') });
    admin = await startAdmin({ config: testConfig(), log: createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), store, port: 0, host: '127.0.0.1' });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await admin?.close();
    await store?.drop();
  });

  const subjects = (page: Page) => page.locator('.msg-row .subject').allTextContents();

  it('offers the computer\'s zone, and once saved shows and searches on the Berlin clock', async () => {
    const context = await browser.newContext({ baseURL: admin.url, timezoneId: 'Europe/Berlin', viewport: { width: 1366, height: 860 } });
    const page = await context.newPage();
    try {
      await page.goto('/login');
      await page.fill('#email', 'anna@acme.test');
      await page.fill('#password', PASSWORD);
      await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')), page.click('button[type=submit]')]);

      // Nobody chose a zone: UTC, said so, and the computer's zone offered.
      assert.equal(await page.locator('.msg-row:has-text("Late order") .when').textContent(), '2026-01-15 23:30 UTC');
      const note = page.locator('#time-zone-note');
      assert.match((await note.textContent()) ?? '', /Days and times in UTC.*this computer is set to Europe\/Berlin: use it/s);
      await Promise.all([page.waitForURL('**/preferences/profile?timeZone=*'), note.locator('text=use it').click()]);
      assert.equal(await page.locator('#timeZone').inputValue(), 'Europe/Berlin', 'preselected, not saved yet');
      assert.equal((await store.models.User.findOne({ email: 'anna@acme.test' }).lean())?.timeZone, '');
      await page.screenshot({ path: path.join(SHOTS, 'profile-time-zone.png'), fullPage: true });
      await Promise.all([page.waitForURL('**/preferences/profile'), page.click('form[action="/preferences/profile"] button[type=submit]')]);
      assert.equal((await store.models.User.findOne({ email: 'anna@acme.test' }).lean())?.timeZone, 'Europe/Berlin');
      assert.equal(await page.locator('#browser-zone-hint').count(), 0, 'no offer once the computer\'s zone is the one shown');

      await page.goto('/');
      assert.equal(await page.locator('.msg-row:has-text("Late order") .when').textContent(), '2026-01-16 00:30 GMT+1');
      assert.equal(await page.locator('#time-zone-note .browser-zone').count(), 0);

      // The date pickers' days are Berlin days: the late order is mail of 16 January.
      await page.fill('#since', '2026-01-16');
      await page.fill('#until', '2026-01-16');
      await Promise.all([page.waitForURL('**/?*since=2026-01-16*'), page.click('form.filters button[type=submit]')]);
      assert.deepEqual(await subjects(page), ['Late order']);
      await page.fill('#since', '2026-01-15');
      await page.fill('#until', '2026-01-15');
      await Promise.all([page.waitForURL('**/?*since=2026-01-15*'), page.click('form.filters button[type=submit]')]);
      assert.deepEqual(await subjects(page), ['Morning order']);
      await page.screenshot({ path: path.join(SHOTS, 'inbox-date-filter.png'), fullPage: true });
    } finally {
      await context.close();
    }
  });

  it('does not offer a zone the person has under another of its names (Asia/Kolkata = Asia/Calcutta)', async () => {
    // Node's zone data spells it Asia/Calcutta (what the Profile list offers and stores). Browsers that follow
    // the IANA primary names (newer Chrome and Firefox) say Asia/Kolkata; this Chromium's ICU says Calcutta,
    // so the page is given such a browser's spelling.
    await store.models.User.updateOne({ email: 'anna@acme.test' }, { $set: { timeZone: 'Asia/Calcutta' } });
    const context = await browser.newContext({ baseURL: admin.url, timezoneId: 'Asia/Kolkata' });
    await context.addInitScript(`(() => {
      const resolved = Intl.DateTimeFormat.prototype.resolvedOptions;
      Intl.DateTimeFormat.prototype.resolvedOptions = function () {
        const options = resolved.call(this);
        return options.timeZone === 'Asia/Calcutta' ? { ...options, timeZone: 'Asia/Kolkata' } : options;
      };
    })()`);
    const page = await context.newPage();
    try {
      await page.goto('/login');
      await page.fill('#email', 'anna@acme.test');
      await page.fill('#password', PASSWORD);
      await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')), page.click('button[type=submit]')]);
      const browserZone = await page.evaluate('Intl.DateTimeFormat().resolvedOptions().timeZone');
      assert.equal(browserZone, 'Asia/Kolkata');
      assert.match((await page.locator('#time-zone-note').textContent()) ?? '', /Days and times in Asia\/Calcutta/);
      assert.equal(await page.locator('#time-zone-note .browser-zone').count(), 0, `no offer of ${String(browserZone)}: it is the zone shown`);
      await page.goto('/preferences/profile');
      assert.equal(await page.locator('#browser-zone-hint').count(), 0);
    } finally {
      await context.close();
    }
  });
});
