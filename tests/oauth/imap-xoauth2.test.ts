import assert from 'node:assert/strict';
import fs from 'node:fs';
import { ImapFlow } from 'imapflow';
import { SecretBox } from '../../gateway/core/crypto';
import { AppError } from '../../gateway/core/errors';
import { connectImapWithOAuth, getAccessToken, isImapAuthFailure, type OAuthDeps } from '../../gateway/oauth';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { startOidcServer, type OidcServer } from '../support/oidc';
import { openTestStore } from '../support/store';
import { CALLBACK_URL, LogCapture, TEST_SECRET_KEY, createAccount, oauthConfig, oauthDeps, signIn } from './helpers';

type TestStore = Awaited<ReturnType<typeof openTestStore>>;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The real chain: the test authorisation server issues tokens, Postroom
 * keeps and refreshes them, imapflow logs in to Dovecot with SASL XOAUTH2 or
 * OAUTHBEARER, and Dovecot's oauth2 passdb asks the server's introspection
 * endpoint whether the token is active and whose it is.
 */
describe('IMAP with OAuth2: XOAUTH2/OAUTHBEARER logins to Dovecot validated by introspection', () => {
  let store: TestStore;
  let oidc: OidcServer;
  let xoauth2: DovecotServer;
  let both: DovecotServer;
  let deps: OAuthDeps;
  const capture = new LogCapture();
  const secretBox = new SecretBox(TEST_SECRET_KEY);
  const secrets = new Set<string>();

  async function connectedAccount(options: { ttl?: number } = {}) {
    oidc.setAccessTokenTtl(options.ttl ?? 3600);
    const account = await createAccount(store);
    oidc.addUser(account.email, 'provider-password');
    // Harness-side mail delivery needs the user to exist in Dovecot's passwd files.
    for (const server of [xoauth2, both]) await server.addUser(account.email, `unused-${Math.random()}`);
    const { callback } = await signIn(deps, oidc, account, 'provider-password');
    secrets.add(callback.searchParams.get('code')!);
    await remember(account.accountId, account.email);
    return account;
  }

  async function remember(accountId: string, email: string) {
    const doc = await store.models.MailAccount.findById(accountId).lean();
    for (const sealed of [doc?.oauth?.accessTokenEnc, doc?.oauth?.refreshTokenEnc]) {
      if (!sealed) continue;
      const token = secretBox.open(sealed, accountId);
      secrets.add(token);
      // What goes over the wire: the SASL payloads, base64-encoded.
      secrets.add(Buffer.from(`user=${email}\x01auth=Bearer ${token}\x01\x01`).toString('base64'));
      secrets.add(Buffer.from(`auth=Bearer ${token}`).toString('base64').slice(0, 40));
    }
  }

  function imapOptions(server: DovecotServer) {
    return { host: server.host, port: server.tlsPort, secure: true, disableAutoIdle: true, logger: deps.log.child({ component: 'imapflow' }) as never };
  }

  /** A login with a given token, bypassing Postroom (to show what the server thinks of it). */
  async function rawLogin(server: DovecotServer, user: string, accessToken: string): Promise<'ok' | 'refused'> {
    const client = new ImapFlow({ ...imapOptions(server), logger: false, auth: { user, accessToken } });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.logout();
      return 'ok';
    } catch (err) {
      if (isImapAuthFailure(err)) return 'refused';
      throw err;
    } finally {
      client.close();
    }
  }

  /** SASL mechanisms of the user's logins, without the harness's own (master user, PLAIN) used by append(). */
  /** How the user logged in, from Dovecot's log (its log process writes the line a moment after the login is answered). */
  async function loginMethods(server: DovecotServer, email: string): Promise<string[]> {
    const read = () =>
      fs.readFileSync(server.logFile, 'utf8').split('\n').filter((line) => line.includes(`Login: user=<${email}>`))
        .map((line) => /method=(\w+)/.exec(line)?.[1] ?? '?').filter((method) => method !== 'PLAIN');
    for (let waited = 0; read().length === 0 && waited < 5000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    return read();
  }

  before(async () => {
    store = await openTestStore('oauth_imap');
    oidc = await startOidcServer({ redirectUris: [CALLBACK_URL] });
    secrets.add(oidc.clientSecret);
    const oauth2 = { introspectionUrl: oidc.introspection.url, clientId: oidc.introspection.clientId, clientSecret: oidc.introspection.clientSecret };
    xoauth2 = await startDovecot({ oauth2: { ...oauth2, mechanisms: ['xoauth2'] } });
    both = await startDovecot({ oauth2 });
    deps = oauthDeps(store, oauthConfig(oidc), { capture, tuning: { refreshSkewMs: 500, refreshPollMs: 20 } });
  });
  after(async () => {
    await xoauth2?.stop();
    await both?.stop();
    await oidc?.stop();
    await store?.drop();
  });

  it('logs in with XOAUTH2 (imapflow auth {user, accessToken}) and reads the mailbox', async () => {
    const account = await connectedAccount();
    const uid = await xoauth2.append(account.email, 'INBOX', 'From: a@customer.test\r\nTo: x@acme.test\r\nSubject: over oauth\r\nMessage-ID: <oauth-1@customer.test>\r\n\r\nhello\r\n');
    const client = await connectImapWithOAuth(deps, account.accountId, account.email, imapOptions(xoauth2));
    try {
      assert.equal(client.authenticated, true);
      const lock = await client.getMailboxLock('INBOX');
      try {
        const message = await client.fetchOne(String(uid), { envelope: true }, { uid: true });
        assert.ok(message);
        assert.equal(message.envelope?.subject, 'over oauth');
      } finally {
        lock.release();
      }
      await client.logout();
    } finally {
      client.close();
    }
    assert.deepEqual(await loginMethods(xoauth2, account.email), ['XOAUTH2']);
  });

  it('logs in with OAUTHBEARER (RFC 7628) where the server offers it', async () => {
    const account = await connectedAccount();
    const client = await connectImapWithOAuth(deps, account.accountId, account.email, imapOptions(both));
    await client.logout();
    client.close();
    assert.deepEqual(await loginMethods(both, account.email), ['OAUTHBEARER']);
  });

  it("is refused with another user's token (the server matches the token's username)", async () => {
    const alice = await connectedAccount();
    const bob = await connectedAccount();
    const { accessToken } = await getAccessToken(deps, alice.accountId);
    assert.equal(await rawLogin(xoauth2, bob.email, accessToken), 'refused');
    assert.equal(await rawLogin(xoauth2, alice.email, accessToken), 'ok');
  });

  it('refreshes an expired token before logging in', async () => {
    const account = await connectedAccount({ ttl: 2 });
    const { accessToken: first } = await getAccessToken(deps, account.accountId);
    await sleep(2300);
    assert.equal(await rawLogin(xoauth2, account.email, first), 'refused', 'the server no longer accepts the expired token');
    oidc.setAccessTokenTtl(3600);
    const refreshes = oidc.grants('refresh_token');
    const introspections = oidc.requests('/token/introspection');
    const client = await connectImapWithOAuth(deps, account.accountId, account.email, imapOptions(xoauth2));
    await remember(account.accountId, account.email);
    assert.equal(client.authenticated, true);
    await client.logout();
    client.close();
    assert.equal(oidc.grants('refresh_token'), refreshes + 1, 'one refresh');
    assert.equal(oidc.requests('/token/introspection'), introspections + 1, 'one login: the refresh came first');
  });

  it('refreshes on demand when the server refuses a token that had not expired by our clock', async () => {
    const account = await connectedAccount();
    assert.ok(oidc.dropAccessTokens(account.email) >= 1);
    const refreshes = oidc.grants('refresh_token');
    const introspections = oidc.requests('/token/introspection');
    const client = await connectImapWithOAuth(deps, account.accountId, account.email, imapOptions(xoauth2));
    await remember(account.accountId, account.email);
    assert.equal(client.authenticated, true);
    await client.logout();
    client.close();
    assert.equal(oidc.grants('refresh_token'), refreshes + 1);
    assert.equal(oidc.requests('/token/introspection'), introspections + 2, 'refused once, then accepted');
  });

  it('marks a revoked grant "re-authorisation needed", stops trying, and recovers after a new sign-in', async () => {
    const account = await connectedAccount();
    const client = await connectImapWithOAuth(deps, account.accountId, account.email, imapOptions(xoauth2));
    await client.logout();
    client.close();

    await oidc.revokeGrants(account.email); // the user removed Postroom's access at the provider
    const tokenRequests = oidc.requests('/token');
    const introspections = oidc.requests('/token/introspection');
    await assert.rejects(connectImapWithOAuth(deps, account.accountId, account.email, imapOptions(xoauth2)), (err: unknown) => {
      assert.ok(err instanceof AppError && err.code === 'OAUTH_REAUTH_NEEDED', String(err));
      return true;
    });
    const state = (await store.models.MailAccount.findById(account.accountId).lean())!.oauth!;
    assert.equal(state.status, 'reauth_needed');
    assert.match(state.lastError, /invalid_grant/);
    assert.equal(oidc.requests('/token'), tokenRequests + 1, 'one refresh attempt');
    assert.equal(oidc.requests('/token/introspection'), introspections + 1, 'one refused login');

    // A scheduler calling again and again: nothing reaches the provider or the IMAP server.
    for (let i = 0; i < 20; i += 1) {
      await assert.rejects(connectImapWithOAuth(deps, account.accountId, account.email, imapOptions(xoauth2)), (err: unknown) => (err as AppError).code === 'OAUTH_REAUTH_NEEDED');
    }
    assert.equal(oidc.requests('/token'), tokenRequests + 1, 'no retry storm at the provider');
    assert.equal(oidc.requests('/token/introspection'), introspections + 1, 'no retry storm at the IMAP server');

    await signIn(deps, oidc, account, 'provider-password');
    await remember(account.accountId, account.email);
    const again = await connectImapWithOAuth(deps, account.accountId, account.email, imapOptions(xoauth2));
    assert.equal(again.authenticated, true);
    await again.logout();
    again.close();
  });

  it('keeps every token and SASL payload out of the logs (imapflow at trace level included)', () => {
    assert.ok(capture.lines.some((line) => line.includes('"component":"imapflow"')), 'imapflow logged through our logger');
    assert.ok(capture.lines.some((line) => /AUTHENTICATE/.test(line)), 'the AUTHENTICATE exchange was logged (hidden)');
    assert.ok(secrets.size > 15);
    const text = capture.text;
    for (const secret of secrets) assert.ok(!text.includes(secret), `a secret value (${secret.slice(0, 6)}…) appeared in the log`);
  });
});
