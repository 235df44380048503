/**
 * "Sign in with …" in a real browser: Chromium (playwright-core) walks the
 * console and the test authorisation server's own login and consent pages.
 * An admin enters the OAuth client on Preferences → Business; Bob clicks
 * "Sign in with Test SSO" on IMAP Support, signs in at the provider, allows
 * access, and comes back authenticated (a real XOAUTH2/OAUTHBEARER login to
 * Dovecot, which asks the provider's introspection endpoint). The grant is
 * then revoked at the provider: the page says "Re-authorisation needed" and
 * one click re-authorises. Screenshots go to test-output/screenshots/.
 */
import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startAdmin, type RunningAdmin } from '../../admin/server';
import { createLogger } from '../../gateway/core/log';
import { fromRoot } from '../../gateway/core/paths';
import { getAccessToken, type OAuthDeps } from '../../gateway/oauth';
import { SecretBox } from '../../gateway/core/crypto';
import type { Config } from '../../gateway/core/config';
import { makeAccount, makeUser, PASSWORD, testConfig } from '../admin/fixtures';
import { ensureTestCertificates } from '../support/certs';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { startOidcServer, type OidcServer } from '../support/oidc';
import { openTestStore } from '../support/store';
import { LogCapture } from './helpers';

const SHOTS = fromRoot('test-output', 'screenshots');
const BOB = 'bob.oauth@acme.test';
const PROVIDER_PASSWORD = 'provider-password-of-bob';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** SPKI pin of the test certificate, so Chromium trusts the test provider and nothing else extra. */
function testCertificatePin(): string {
  const cert = new crypto.X509Certificate(fs.readFileSync(ensureTestCertificates().certFile));
  return crypto.createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

describe('OAuth2 sign-in in a real browser (Chromium)', function () {
  this.timeout(120_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let oidc: OidcServer;
  let dovecot: DovecotServer;
  let admin: RunningAdmin;
  let browser: Browser;
  let accountId: string;
  let config: Readonly<Config>;
  const capture = new LogCapture();
  const cspViolations: string[] = [];
  const requestsLog: string[] = [];

  before(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    store = await openTestStore('oauth_browser');
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    oidc = await startOidcServer({ redirectUris: [`${publicUrl}/oauth/callback`], users: { [BOB]: PROVIDER_PASSWORD } });
    dovecot = await startDovecot({ oauth2: { introspectionUrl: oidc.introspection.url, clientId: oidc.introspection.clientId, clientSecret: oidc.introspection.clientSecret } });
    await dovecot.addUser(BOB, crypto.randomBytes(9).toString('hex'));
    await makeUser(store, 'admin@acme.test', 'admin');
    const bob = await makeUser(store, 'bob@acme.test');
    accountId = (await makeAccount(store, bob, BOB)).id;
    // The mailbox's server (a custom one here): host/port/TLS as the IMAP form would save them.
    await store.models.MailAccount.updateOne({ _id: accountId }, { $set: { 'imap.service': 'custom', 'imap.host': dovecot.host, 'imap.port': dovecot.tlsPort, 'imap.tls': 'implicit', 'imap.username': BOB } });
    config = testConfig({ PUBLIC_URL: publicUrl });
    admin = await startAdmin({ config, log: createLogger({ level: 'debug', pretty: false, destination: capture }), store, port, host: '127.0.0.1', imapTimeoutMs: 10_000 });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
        `--ignore-certificate-errors-spki-list=${testCertificatePin()}`],
    });
  });

  after(async () => {
    await browser?.close();
    await admin?.close();
    await dovecot?.stop();
    await oidc?.stop();
    await store?.drop();
  });

  async function newPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, baseURL: admin.url });
    const page = await context.newPage();
    page.on('request', (r) => requestsLog.push(`> ${r.method()} ${r.url().replace(/([?&](code|state|_csrf)=)[^&]+/g, '$1…')}`));
    page.on('response', (r) => requestsLog.push(`< ${r.status()} ${r.url().replace(/([?&](code|state|_csrf)=)[^&]+/g, '$1…')}`));
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) cspViolations.push(`${page.url()}: ${message.text()}`);
    });
    return page;
  }

  async function signInToConsole(page: Page, email: string): Promise<void> {
    await page.goto('/login');
    await page.fill('#email', email);
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')), page.click('button[type=submit]')]);
  }

  /** Wait for a text on the page; on failure say what the page shows and what the browser requested. */
  async function waitText(page: Page, text: string): Promise<void> {
    try {
      await page.getByText(text).first().waitFor({ timeout: 10_000 });
    } catch (err) {
      throw new Error(`"${text}" did not appear on ${page.url()}; the page says: ${(await page.innerText('body')).slice(0, 600)}\nlast requests:\n${requestsLog.slice(-12).join('\n')}`, { cause: err });
    }
  }

  /** Click something that leads (through redirects) to a console page, and wait until that page has loaded. */
  async function clickAndLand(page: Page, selector: string, landing: RegExp): Promise<void> {
    const landed = page.waitForResponse((r) => r.request().method() === 'GET' && r.request().resourceType() === 'document' && landing.test(new URL(r.url()).pathname) && r.status() === 200, { timeout: 15_000 });
    await page.click(selector);
    try {
      await landed;
    } catch (err) {
      throw new Error(`clicking ${selector} did not lead to ${landing}; the page (${page.url()}) says: ${(await page.innerText('body')).slice(0, 600)}\nlast requests:\n${requestsLog.slice(-8).join('\n')}`, { cause: err });
    }
    await page.waitForLoadState('load');
  }

  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  it('an admin sets up the provider on Preferences → Business (the secret is never shown again)', async () => {
    const page = await newPage();
    await signInToConsole(page, 'admin@acme.test');
    await page.goto('/preferences/business');
    const form = page.locator('#oauth-oidc');
    await form.locator('[name=clientId]').fill(oidc.clientId);
    await form.locator('[name=clientSecret]').fill(oidc.clientSecret);
    await form.locator('[name=issuer]').fill(oidc.issuer);
    await form.locator('[name=scopes]').fill('openid email offline_access imap smtp');
    await form.locator('[name=label]').fill('Test SSO');
    await clickAndLand(page, '#oauth-oidc button[type=submit]', /^\/preferences\/business$/);
    await waitText(page, 'Sign-in with Test SSO saved');
    const html = await page.content();
    assert.ok(!html.includes(oidc.clientSecret), 'the client secret is not echoed');
    assert.match(await page.locator('#oauth-oidc').innerText(), /Ready/);
    await shot(page, 'oauth-business-settings');
    await page.context().close();
  });

  it('Bob signs in with the provider from IMAP Support, allows access, and comes back authenticated', async () => {
    const page = await newPage();
    await signInToConsole(page, 'bob@acme.test');
    await page.goto(`/preferences/email/${accountId}#imap`);
    await shot(page, 'oauth-imap-before');
    await page.click('#oauth-start-oidc');
    // The provider's own pages.
    await page.waitForURL((url) => url.origin === oidc.issuer && url.pathname.startsWith('/interaction/'));
    await page.fill('input[name=login]', BOB);
    await page.fill('input[name=password]', PROVIDER_PASSWORD);
    await shot(page, 'oauth-provider-login');
    await page.click('button:has-text("Sign in")');
    await page.waitForSelector('[data-prompt=consent]');
    await shot(page, 'oauth-provider-consent');
    await clickAndLand(page, 'button:has-text("Allow")', new RegExp(`^/preferences/email/${accountId}$`));
    await waitText(page, 'Authenticated with OAuth2');
    assert.match(await page.locator('#oauth-status').innerText(), /Signed in with Test SSO/);
    await shot(page, 'oauth-imap-connected');

    const stored = (await store.models.MailAccount.findById(accountId).lean())!;
    assert.equal(stored.oauth?.provider, 'oidc');
    assert.equal(stored.oauth?.status, 'ok');
    assert.equal(stored.imap?.status, 'authenticated', 'the real IMAP login with the token succeeded');
    assert.equal(stored.imap?.enabled, true);
    const logins = fs.readFileSync(dovecot.logFile, 'utf8').split('\n').filter((line) => line.includes(`Login: user=<${BOB}>`) && /method=(OAUTHBEARER|XOAUTH2)/.test(line));
    assert.equal(logins.length, 1, 'Dovecot saw one OAuth login');
    await page.context().close();
  });

  it('shows "re-authorisation needed" after the grant is revoked, and re-authorises in one click', async () => {
    await oidc.revokeGrants(BOB);
    // What the syncer's next pass does: the server refuses the token, a refresh gets invalid_grant.
    const deps: OAuthDeps = { store, log: createLogger({ level: 'silent' }), secretBox: new SecretBox(config.secretKey!), config };
    const { accessToken } = await getAccessToken(deps, accountId);
    await assert.rejects(getAccessToken(deps, accountId, { rejectedToken: accessToken }), /no longer accepts/);

    const page = await newPage();
    await signInToConsole(page, 'bob@acme.test');
    await page.goto(`/preferences/email/${accountId}#imap`);
    const banner = page.locator('#oauth-reauth');
    assert.match(await banner.innerText(), /Re-authorisation needed[\s\S]*invalid_grant/);
    await shot(page, 'oauth-reauth-needed');
    await page.click('#oauth-reauthorise');
    await page.waitForURL((url) => url.origin === oidc.issuer);
    // A fresh browser context: the provider asks Bob to sign in again, then to consent.
    await page.fill('input[name=login]', BOB);
    await page.fill('input[name=password]', PROVIDER_PASSWORD);
    await page.click('button:has-text("Sign in")');
    await page.waitForSelector('[data-prompt=consent]');
    await clickAndLand(page, 'button:has-text("Allow")', new RegExp(`^/preferences/email/${accountId}$`));
    await waitText(page, 'Authenticated with OAuth2');
    assert.equal(await page.locator('#oauth-reauth').count(), 0);
    const stored = (await store.models.MailAccount.findById(accountId).lean())!;
    assert.equal(stored.oauth?.status, 'ok');
    assert.equal(stored.imap?.status, 'authenticated');
    await shot(page, 'oauth-reauthorised');
    // The IMAP form's own Authenticate button works for an OAuth account too (token, not password).
    await clickAndLand(page, '#imap-authenticate', new RegExp(`^/preferences/email/${accountId}$`));
    await waitText(page, `Authenticated: signed in to ${dovecot.host} as ${BOB}`);
    await page.context().close();
  });

  it('reports a denied consent on the account\'s page, and disconnects on request', async () => {
    const page = await newPage();
    await signInToConsole(page, 'bob@acme.test');
    await page.goto(`/preferences/email/${accountId}#imap`);
    await clickAndLand(page, '#oauth-disconnect', new RegExp(`^/preferences/email/${accountId}$`));
    await waitText(page, 'Disconnected');
    await page.click('#oauth-start-oidc');
    await page.waitForURL((url) => url.origin === oidc.issuer);
    await page.fill('input[name=login]', BOB);
    await page.fill('input[name=password]', PROVIDER_PASSWORD);
    await page.click('button:has-text("Sign in")');
    await page.waitForSelector('[data-prompt=consent]');
    // Back on the page of the account being connected, where "Sign in with …" is one click away again.
    await clickAndLand(page, 'button:has-text("Deny")', new RegExp(`^/preferences/email/${accountId}$`));
    await waitText(page, 'Access was not granted at Test SSO');
    await shot(page, 'oauth-denied');
    const stored = (await store.models.MailAccount.findById(accountId).lean())!;
    assert.equal(stored.oauth?.provider, '');
    await page.context().close();
  });

  it('no CSP violations, and no token or client secret in the console’s log', async () => {
    assert.deepEqual(cspViolations, []);
    const stored = (await store.models.MailAccount.findById(accountId).lean())!;
    assert.equal(stored.oauth?.refreshTokenEnc, '');
    assert.ok(capture.lines.length > 5);
    assert.ok(!capture.text.includes(oidc.clientSecret));
    assert.ok(!/"(access|refresh)_token"|Bearer [A-Za-z0-9_-]{20,}/.test(capture.text));
    for (const line of capture.lines) assert.ok(!/[?&]code=[A-Za-z0-9_-]{20,}/.test(line), `an authorization code in the log: ${line.slice(0, 120)}`);
  });
});
