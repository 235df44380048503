import { strict as assert } from 'node:assert';
import { type Browser, type BrowserContext, type Frame } from 'playwright-core';
import { createLogger } from '../../gateway/core/log';
import { startAdmin, type RunningAdmin } from '../../admin/server';
import { openTestStore } from '../support/store';
import { makeAccount, makeUser, PASSWORD, storeMessage, testConfig, type TestStore } from './fixtures';
import { launchChromium } from '../support/browser';

/**
 * HTML mail as a reader sees it in the sandboxed message frame (Chromium):
 * a dark mail keeps the colours it is written for, a newsletter's table of
 * contents scrolls the mail, and a relative link (which has no base in a
 * mail) does not lead into the console.
 */
describe('admin in a real browser: HTML mail in the message frame', function () {
  this.timeout(60_000);
  let store: TestStore;
  let admin: RunningAdmin;
  let browser: Browser;
  let context: BrowserContext;
  let darkId: string;
  let newsletterId: string;
  let outlookId: string;

  before(async () => {
    store = await openTestStore('admin_message_frame');
    const bob = await makeUser(store, 'bob@acme.test');
    const account = await makeAccount(store, bob, 'bob@acme.test');
    darkId = (await storeMessage(store, {
      subject: 'Game night', from: 'events@arcade.test', text: 'Game night on Friday.',
      html: '<html><head><title>Game night</title></head><body bgcolor="#101018" style="margin:0"><table width="100%"><tr><td><p style="color:#ffffff">Game night on Friday, 8 pm.</p></td></tr></table></body></html>',
    }, { ownerId: bob.id, accountId: account.id })).id;
    const sections = Array.from({ length: 3 }, (_, i) => `<h2 id="part-${i + 1}">Part ${i + 1}</h2>${'<p>Filler paragraph of a long newsletter.</p>'.repeat(40)}`).join('');
    newsletterId = (await storeMessage(store, {
      subject: 'Monthly digest', from: 'digest@news.test', text: 'Digest',
      html: `<p><a href="#part-3">Jump to part 3</a> · <a href="/preferences/profile">Manage your profile</a> · <a href="https://news.test/web">View online</a></p>${sections}`,
    }, { ownerId: bob.id, accountId: account.id })).id;
    // What Outlook sends: every line a <p class=MsoNormal>, its margin zeroed in the head's style sheet.
    outlookId = (await storeMessage(store, {
      subject: 'Delivery', from: 'Jane Roe <jane@globex.test>', text: 'Hi Bob,\nThe pallets leave on Monday.\nJane',
      html: '<html><head><meta charset="utf-8"><style><!-- p.MsoNormal, li.MsoNormal, div.MsoNormal {margin:0cm; font-size:11.0pt; font-family:"Calibri",sans-serif;} --></style></head>' +
        '<body lang="EN-GB" link="#0563C1"><div class="WordSection1"><p class="MsoNormal">Hi Bob,</p><p class="MsoNormal">The pallets leave on Monday.</p><p class="MsoNormal">Jane</p></div></body></html>',
    }, { ownerId: bob.id, accountId: account.id })).id;
    admin = await startAdmin({ config: testConfig(), log: createLogger({ level: 'silent' }), store, port: 0, host: '127.0.0.1' });
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1366, height: 860 }, baseURL: admin.url });
    const page = await context.newPage();
    await page.goto('/login');
    await page.fill('#email', 'bob@acme.test');
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')), page.click('button[type=submit]')]);
    await page.close();
  });

  after(async () => {
    await browser?.close();
    await admin?.close();
    await store?.drop();
  });

  async function messageFrame(id: string): Promise<Frame> {
    const page = await context.newPage();
    await page.goto(`/messages/${id}`);
    return (await (await page.waitForSelector('iframe.msg-body-frame')).contentFrame())!;
  }

  it('shows white text written for a dark body on that dark background, not white on white', async () => {
    const frame = await messageFrame(darkId);
    const text = frame.locator('p', { hasText: 'Game night on Friday' });
    await text.waitFor();
    // Plain JavaScript in a string, run in the frame: the text colour and the first opaque background behind it
    // (what tsx compiles for evaluate() refers to helpers the frame does not have).
    const colours = await frame.evaluate(`(() => {
      const element = [...document.querySelectorAll('p')].find((p) => p.textContent.includes('Game night on Friday'));
      let background = 'rgb(255, 255, 255)';
      for (let node = element; node; node = node.parentElement) {
        const colour = getComputedStyle(node).backgroundColor;
        if (colour !== 'rgba(0, 0, 0, 0)' && colour !== 'transparent') { background = colour; break; }
      }
      return { text: getComputedStyle(element).color, background };
    })()`) as { text: string; background: string };
    assert.equal(colours.text, 'rgb(255, 255, 255)');
    assert.equal(colours.background, 'rgb(16, 16, 24)', 'the body colour of the mail is behind its text');
    await frame.page().close();
  });

  it('lays out a mail from Outlook with its own style sheet: one line after the other, not double-spaced', async () => {
    const frame = await messageFrame(outlookId);
    await frame.locator('p', { hasText: 'Jane' }).waitFor();
    const lines = await frame.locator('p.MsoNormal').evaluateAll((paragraphs) => paragraphs.map((p) => {
      const box = (p as unknown as { getBoundingClientRect(): { top: number; bottom: number } }).getBoundingClientRect();
      return { top: box.top, bottom: box.bottom };
    }));
    assert.equal(lines.length, 3);
    for (let i = 1; i < lines.length; i++) assert.ok(lines[i].top - lines[i - 1].bottom < 1, `line ${i + 1} starts ${lines[i].top - lines[i - 1].bottom} px below line ${i}`);
    await frame.page().close();
  });

  it('scrolls to a section from the mail\'s own table of contents, in the frame, and gives a relative link no address', async () => {
    const frame = await messageFrame(newsletterId);
    const popups: string[] = [];
    context.on('page', (page) => popups.push(page.url()));
    const scrollTop = () => frame.evaluate(() => (globalThis as unknown as { document: { scrollingElement: { scrollTop: number } } }).document.scrollingElement.scrollTop);
    await frame.locator('a', { hasText: 'Jump to part 3' }).click();
    await frame.waitForFunction(() => (globalThis as unknown as { document: { scrollingElement: { scrollTop: number } } }).document.scrollingElement.scrollTop > 0);
    assert.ok((await scrollTop()) > 0);
    assert.deepEqual(popups, [], 'no new tab with the mail alone');
    assert.equal(await frame.locator('a', { hasText: 'Manage your profile' }).getAttribute('href'), null, 'a relative link does not point into the console');
    const online = frame.locator('a', { hasText: 'View online' });
    assert.equal(await online.getAttribute('href'), 'https://news.test/web');
    assert.equal(await online.getAttribute('target'), '_blank', 'links to the web still open outside the console');
    await frame.page().close();
  });
});
