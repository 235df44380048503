import assert from 'node:assert/strict';
import net from 'node:net';
import { loadConfig } from '../../gateway/core/config';
import { SecretBox } from '../../gateway/core/crypto';
import { AppError } from '../../gateway/core/errors';
import { createLogger } from '../../gateway/core/log';
import { getAccessToken, markAuthFailure, revokeAuthorization, withAccessToken, type OAuthDeps } from '../../gateway/oauth';
import { openStore } from '../../gateway/store';
import { startOidcServer, type OidcServer } from '../support/oidc';
import { openTestStore, testMongoUri } from '../support/store';
import { CALLBACK_URL, LogCapture, PUBLIC_URL, TEST_SECRET_KEY, createAccount, oauthConfig, oauthDeps, signIn } from './helpers';

type TestStore = Awaited<ReturnType<typeof openTestStore>>;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const tuning = { refreshSkewMs: 1000, refreshLockMs: 2000, refreshPollMs: 20, backoffBaseMs: 60_000, backoffCapMs: 600_000 };

function rejectsWith(code: string) {
  return (err: unknown) => {
    assert.ok(err instanceof AppError, `expected AppError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  };
}

describe('oauth access tokens: refresh, single flight, revoked grants', () => {
  let store: TestStore;
  let oidc: OidcServer;
  let deps: OAuthDeps;
  const capture = new LogCapture();
  const secretBox = new SecretBox(TEST_SECRET_KEY);
  /** Every token value the tests saw, for the log scan at the end. */
  const secrets = new Set<string>();

  async function connected(options: { ttl?: number } = {}) {
    oidc.setAccessTokenTtl(options.ttl ?? 3600);
    const account = await createAccount(store);
    oidc.addUser(account.email, 'pw');
    const { callback } = await signIn(deps, oidc, account, 'pw');
    for (const key of ['code', 'state']) secrets.add(callback.searchParams.get(key)!);
    await rememberTokens(account.accountId);
    return account;
  }

  async function rememberTokens(accountId: string) {
    const doc = await store.models.MailAccount.findById(accountId).lean();
    for (const sealed of [doc?.oauth?.accessTokenEnc, doc?.oauth?.refreshTokenEnc]) {
      if (sealed) secrets.add(secretBox.open(sealed, accountId));
    }
  }

  async function oauthOf(accountId: string) {
    return (await store.models.MailAccount.findById(accountId).lean())!.oauth!;
  }

  before(async () => {
    store = await openTestStore('oauth_tokens');
    oidc = await startOidcServer({ redirectUris: [CALLBACK_URL] });
    secrets.add(oidc.clientSecret);
    deps = oauthDeps(store, oauthConfig(oidc), { capture, tuning });
  });
  after(async () => {
    await oidc?.stop();
    await store?.drop();
  });

  it('hands out the stored token while it is fresh, without asking the provider', async () => {
    const account = await connected();
    const before = oidc.grants('refresh_token');
    const first = await getAccessToken(deps, account.accountId);
    const second = await getAccessToken(deps, account.accountId);
    assert.equal(first.accessToken, second.accessToken);
    assert.equal(oidc.grants('refresh_token'), before);
    assert.equal((await oidc.introspect(first.accessToken)).active, true);
  });

  it('refreshes shortly before expiry, storing the rotated refresh token', async () => {
    const account = await connected({ ttl: 3 });
    const old = await getAccessToken(deps, account.accountId);
    const oldRefreshEnc = (await oauthOf(account.accountId)).refreshTokenEnc;
    const oldRefresh = secretBox.open(oldRefreshEnc, account.accountId);
    await sleep(2100); // within the 1 s skew of the 3 s lifetime
    const before = oidc.grants('refresh_token');
    const fresh = await getAccessToken(deps, account.accountId);
    await rememberTokens(account.accountId);
    assert.equal(oidc.grants('refresh_token'), before + 1);
    assert.notEqual(fresh.accessToken, old.accessToken);
    assert.ok(fresh.expiresAt.getTime() > old.expiresAt.getTime());
    assert.equal((await oidc.introspect(fresh.accessToken)).active, true);
    const state = await oauthOf(account.accountId);
    assert.notEqual(state.refreshTokenEnc, oldRefreshEnc, 'the rotated refresh token is stored');
    assert.equal((await oidc.introspect(oldRefresh)).active, false, 'the server rotated the old one out');
    await sleep(1000);
    assert.equal((await oidc.introspect(old.accessToken)).active, false, 'the old access token really expired');
  });

  it('refreshes on demand when a server rejected the stored token, once for many concurrent callers', async () => {
    const account = await connected();
    const { accessToken: rejected } = await getAccessToken(deps, account.accountId);
    const before = oidc.grants('refresh_token');
    const results = await Promise.all(Array.from({ length: 10 }, () => getAccessToken(deps, account.accountId, { rejectedToken: rejected })));
    await rememberTokens(account.accountId);
    assert.equal(oidc.grants('refresh_token'), before + 1, 'one refresh for ten callers');
    assert.equal(new Set(results.map((r) => r.accessToken)).size, 1);
    assert.notEqual(results[0].accessToken, rejected);
    // A late caller still holding the old rejected token gets the new one without another refresh.
    const late = await getAccessToken(deps, account.accountId, { rejectedToken: rejected });
    assert.equal(late.accessToken, results[0].accessToken);
    assert.equal(oidc.grants('refresh_token'), before + 1);
  });

  it('lets only one of two processes refresh (store lock), even with rotating refresh tokens', async () => {
    const account = await connected({ ttl: 1 });
    await sleep(1100);
    oidc.setAccessTokenTtl(3600); // the refreshed token then stays fresh for the waiting callers
    // A second "process": its own connection and in-process state.
    const other = await openStore({ uri: testMongoUri(), dbName: store.dbName, log: createLogger({ level: 'silent' }) });
    try {
      const otherDeps: OAuthDeps = { ...deps, store: other };
      const before = oidc.grants('refresh_token');
      const results = await Promise.all([
        ...Array.from({ length: 5 }, () => getAccessToken(deps, account.accountId)),
        ...Array.from({ length: 5 }, () => getAccessToken(otherDeps, account.accountId)),
      ]);
      await rememberTokens(account.accountId);
      assert.equal(oidc.grants('refresh_token'), before + 1, 'exactly one refresh across both processes');
      assert.equal(new Set(results.map((r) => r.accessToken)).size, 1);
      assert.equal((await oauthOf(account.accountId)).status, 'ok', 'no reuse of a rotated refresh token, so the grant survives');
      assert.equal((await oidc.introspect(results[0].accessToken)).active, true);
      assert.equal(await store.models.OAuthRefreshLock.countDocuments({ _id: account.accountId }), 0, 'the lock is released');
    } finally {
      await other.close();
    }
  });

  it('waits out the lock of a process that died mid-refresh, then refreshes', async () => {
    const account = await connected({ ttl: 1 });
    await sleep(1100);
    oidc.setAccessTokenTtl(3600); // the refreshed token must outlive the introspection below
    const lockUntil = new Date(Date.now() + 600);
    await store.models.OAuthRefreshLock.create({ _id: account.accountId, lockId: 'dead-process', until: lockUntil });
    const before = oidc.grants('refresh_token');
    const token = await getAccessToken(deps, account.accountId);
    await rememberTokens(account.accountId);
    assert.ok(Date.now() >= lockUntil.getTime(), 'it did not steal a live lock');
    assert.equal(oidc.grants('refresh_token'), before + 1);
    assert.equal((await oidc.introspect(token.accessToken)).active, true);
  });

  it('marks a revoked grant "re-authorisation needed" and never retries it (no retry storm)', async () => {
    const account = await connected();
    const { accessToken } = await getAccessToken(deps, account.accountId);
    assert.equal(await oidc.revokeGrants(account.email), 1);
    const before = { refresh: oidc.grants('refresh_token'), all: oidc.requests('/token') };
    await assert.rejects(getAccessToken(deps, account.accountId, { rejectedToken: accessToken }), (err: unknown) => {
      assert.ok(err instanceof AppError && err.code === 'OAUTH_REAUTH_NEEDED' && err.status === 409);
      assert.match(err.message, /invalid_grant/);
      assert.match(err.message, /Sign in with Test SSO again/);
      return true;
    });
    const state = await oauthOf(account.accountId);
    assert.equal(state.status, 'reauth_needed');
    assert.equal(state.lastErrorCode, 'OAUTH_REAUTH_NEEDED');
    assert.equal(state.refreshTokenEnc, '', 'the dead refresh token is dropped');
    assert.equal(state.accessTokenEnc, '');

    const attempts = await Promise.allSettled(Array.from({ length: 25 }, () => getAccessToken(deps, account.accountId)));
    assert.ok(attempts.every((a) => a.status === 'rejected' && (a.reason as AppError).code === 'OAUTH_REAUTH_NEEDED'));
    for (let i = 0; i < 5; i += 1) await getAccessToken(deps, account.accountId, { rejectedToken: accessToken }).catch(() => undefined);
    assert.equal(oidc.grants('refresh_token'), before.refresh + 1, 'one refresh attempt in total');
    assert.equal(oidc.requests('/token'), before.all + 1);

    // Re-authorising brings the account back.
    await signIn(deps, oidc, account, 'pw');
    await rememberTokens(account.accountId);
    const again = await getAccessToken(deps, account.accountId);
    assert.equal((await oauthOf(account.accountId)).status, 'ok');
    assert.equal((await oidc.introspect(again.accessToken)).active, true);
  });

  it('backs off after a provider outage instead of hammering it, then recovers', async () => {
    const account = await connected({ ttl: 1 });
    await sleep(1100);
    oidc.failTokenEndpoint({ status: 503, body: null });
    try {
      const before = oidc.grants('refresh_token');
      await assert.rejects(getAccessToken(deps, account.accountId), (err: unknown) => {
        assert.ok(err instanceof AppError && err.code === 'OAUTH_PROVIDER_UNAVAILABLE' && err.status === 503, String(err));
        assert.match(err.message, /retries later/);
        return true;
      });
      let state = await oauthOf(account.accountId);
      assert.equal(state.status, 'ok', 'an outage is not the user’s problem');
      assert.equal(state.failures, 1);
      assert.ok(state.retryAfter && state.retryAfter.getTime() - Date.now() > 50_000, 'backoff starts at a minute here');
      for (let i = 0; i < 10; i += 1) await assert.rejects(getAccessToken(deps, account.accountId), rejectsWith('OAUTH_PROVIDER_UNAVAILABLE'));
      assert.equal(oidc.grants('refresh_token'), before + 1, 'nothing is sent during the backoff');

      // A second outage answer (JSON temporarily_unavailable) doubles the wait.
      oidc.failTokenEndpoint({ status: 503, body: { error: 'temporarily_unavailable' } });
      const later = { ...deps, clock: () => new Date(Date.now() + 61_000) };
      await assert.rejects(getAccessToken(later, account.accountId), (err: unknown) => rejectsWith('OAUTH_PROVIDER_UNAVAILABLE')(err) && /HTTP 503/.test((err as Error).message));
      state = await oauthOf(account.accountId);
      assert.equal(state.failures, 2);
      assert.ok(state.retryAfter!.getTime() - (Date.now() + 61_000) > 110_000);

      oidc.failTokenEndpoint(null);
      // The recovered token must outlive its introspection below: at 1 s it expired first on a loaded CI machine.
      oidc.setAccessTokenTtl(3600);
      const muchLater = { ...deps, clock: () => new Date(Date.now() + 200_000) };
      const token = await getAccessToken(muchLater, account.accountId);
      await rememberTokens(account.accountId);
      assert.equal((await oidc.introspect(token.accessToken)).active, true);
      state = await oauthOf(account.accountId);
      assert.equal(state.failures, 0);
      assert.equal(state.retryAfter, null);
      assert.equal(state.lastError, '');
    } finally {
      oidc.failTokenEndpoint(null);
    }
  });

  it('tells the admin when the provider refuses the client credentials, without blaming the user', async () => {
    const account = await connected({ ttl: 1 });
    await sleep(1100);
    oidc.failTokenEndpoint({ status: 401, body: { error: 'invalid_client', error_description: 'client authentication failed' } });
    try {
      await assert.rejects(getAccessToken(deps, account.accountId), (err: unknown) => {
        assert.ok(err instanceof AppError && err.code === 'OAUTH_CLIENT_REJECTED', String(err));
        // Set from the environment here: the message names the variables to correct.
        assert.match(err.message, /An admin must check the client id and secret \(set in OAUTH_OIDC_CLIENT_ID, OAUTH_OIDC_CLIENT_SECRET\)\.$/);
        return true;
      });
      const state = await oauthOf(account.accountId);
      assert.equal(state.status, 'ok');
      assert.equal(state.lastErrorCode, 'OAUTH_CLIENT_REJECTED');
      await assert.rejects(getAccessToken(deps, account.accountId), rejectsWith('OAUTH_CLIENT_REJECTED'));
    } finally {
      oidc.failTokenEndpoint(null);
    }
  });

  it('says what an admin removed from the provider settings (the issuer here, not the client id) and where to set it', async () => {
    const account = await connected({ ttl: 1 });
    await sleep(1100);
    const noIssuer = oauthDeps(store, oauthConfig(oidc, { OAUTH_OIDC_ISSUER: '' }), { capture, tuning });
    await assert.rejects(getAccessToken(noIssuer, account.accountId), (err: unknown) => {
      assert.ok(err instanceof AppError && err.code === 'OAUTH_CLIENT_REJECTED', String(err));
      assert.match(err.message, /^Sign-in with Test SSO is not set up: it needs an issuer or the authorization and token endpoints\. An admin enters it in Preferences → Business \(or sets OAUTH_OIDC_ISSUER and related variables\)\./);
      return true;
    });
    assert.equal((await oauthOf(account.accountId)).status, 'ok', 'the user has nothing to redo');
  });

  it('names the network failure when the token endpoint cannot be reached', async () => {
    const account = await connected({ ttl: 1 });
    await sleep(1100);
    const closedPort = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const unreachable = loadConfig({
      NODE_ENV: 'test', SECRET_KEY: TEST_SECRET_KEY.toString('hex'), PUBLIC_URL,
      OAUTH_OIDC_CLIENT_ID: oidc.clientId, OAUTH_OIDC_CLIENT_SECRET: oidc.clientSecret, OAUTH_OIDC_ISSUER: oidc.issuer,
      OAUTH_OIDC_AUTHORIZATION_URL: `${oidc.issuer}/auth`, OAUTH_OIDC_TOKEN_URL: `https://127.0.0.1:${closedPort}/token`, OAUTH_OIDC_LABEL: 'Test SSO',
    });
    // The provider's own token endpoint is down (a grant is sent only to the endpoint that issued it).
    await store.models.MailAccount.updateOne({ _id: account.accountId }, { $set: { 'oauth.tokenEndpoint': `https://127.0.0.1:${closedPort}/token` } });
    await assert.rejects(getAccessToken({ ...deps, config: unreachable }, account.accountId), (err: unknown) => {
      assert.ok(err instanceof AppError && err.code === 'OAUTH_PROVIDER_UNAVAILABLE', String(err));
      assert.match(err.message, /Test SSO could not be reached \(ECONNREFUSED\)/);
      return true;
    });
  });

  it('asks for a new sign-in when the stored refresh token cannot be decrypted (SECRET_KEY changed)', async () => {
    const account = await connected();
    const otherKey = { ...deps, secretBox: new SecretBox(Buffer.alloc(32, 9)) };
    await assert.rejects(getAccessToken(otherKey, account.accountId), (err: unknown) => rejectsWith('OAUTH_REAUTH_NEEDED')(err) && /SECRET_KEY/.test((err as Error).message));
    assert.equal((await oauthOf(account.accountId)).status, 'reauth_needed');
  });

  it('refuses password accounts and unknown ids clearly', async () => {
    const account = await createAccount(store);
    await assert.rejects(getAccessToken(deps, account.accountId), rejectsWith('OAUTH_NOT_CONNECTED'));
    await assert.rejects(getAccessToken(deps, '0123456789abcdef01234567'), rejectsWith('NOT_FOUND'));
    await assert.rejects(getAccessToken(deps, 'nonsense'), rejectsWith('NOT_FOUND'));
  });

  describe('withAccessToken + markAuthFailure (what the IMAP/SMTP login wraps)', () => {
    const authFailure = Object.assign(new Error('Authentication failed.'), { authenticationFailed: true, responseText: 'Authentication failed.' });
    const isAuthFailure = (err: unknown) => (err as { authenticationFailed?: boolean }).authenticationFailed === true;

    it('refreshes once and retries when the server refuses the first token', async () => {
      const account = await connected();
      const seen: string[] = [];
      const before = oidc.grants('refresh_token');
      const result = await withAccessToken(deps, account.accountId, async (token) => {
        seen.push(token);
        if (seen.length === 1) throw authFailure;
        return 'logged in';
      }, { isAuthFailure });
      await rememberTokens(account.accountId);
      assert.equal(result, 'logged in');
      assert.equal(seen.length, 2);
      assert.notEqual(seen[0], seen[1]);
      assert.equal(oidc.grants('refresh_token'), before + 1);
      assert.equal((await oauthOf(account.accountId)).status, 'ok');
    });

    it('marks the account when a fresh token is refused too, and stops there', async () => {
      const account = await connected();
      let logins = 0;
      const before = oidc.grants('refresh_token');
      await assert.rejects(withAccessToken(deps, account.accountId, async () => {
        logins += 1;
        throw authFailure;
      }, { isAuthFailure, describe: (err) => (err as { responseText: string }).responseText }), (err: unknown) => err === authFailure);
      assert.equal(logins, 2, 'two logins, no more');
      assert.equal(oidc.grants('refresh_token'), before + 1);
      const state = await oauthOf(account.accountId);
      assert.equal(state.status, 'reauth_needed');
      assert.match(state.lastError, /refused a fresh Test SSO access token \("Authentication failed\."\)/);
      await assert.rejects(withAccessToken(deps, account.accountId, async () => 'never', { isAuthFailure }), rejectsWith('OAUTH_REAUTH_NEEDED'));
      assert.equal(logins, 2);
    });

    it('passes other errors through untouched (no refresh for a network problem)', async () => {
      const account = await connected();
      const before = oidc.grants('refresh_token');
      const network = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      await assert.rejects(withAccessToken(deps, account.accountId, async () => { throw network; }, { isAuthFailure }), (err: unknown) => err === network);
      assert.equal(oidc.grants('refresh_token'), before);
      assert.equal((await oauthOf(account.accountId)).status, 'ok');
    });

    it('does not mark an account that was re-authorised meanwhile', async () => {
      const account = await connected();
      const { accessToken: old } = await getAccessToken(deps, account.accountId);
      await signIn(deps, oidc, account, 'pw');
      await rememberTokens(account.accountId);
      assert.deepEqual(await markAuthFailure(deps, account.accountId, { accessToken: old, reason: 'late failure' }), { marked: false });
      assert.equal((await oauthOf(account.accountId)).status, 'ok');
    });
  });

  it('disconnects: revokes at the provider and forgets the tokens', async () => {
    const account = await connected();
    const { accessToken } = await getAccessToken(deps, account.accountId);
    const result = await revokeAuthorization({ ...deps, actor: { email: 'admin@acme.test', ip: '192.0.2.7' } }, account.accountId);
    assert.deepEqual(result, { revokedAtProvider: true });
    const audited = await store.models.AuditEvent.findOne({ action: 'account.oauth.disconnect', targetId: account.accountId }).lean();
    assert.equal(audited?.actorEmail, 'admin@acme.test', 'who ended the mailbox\'s sync is on record');
    assert.deepEqual(audited?.details, { email: account.email, provider: 'oidc', revokedAtProvider: true });
    assert.equal((await oidc.introspect(accessToken)).active, false, 'revoking the refresh token ended the grant');
    const state = await oauthOf(account.accountId);
    assert.equal(state.provider, '');
    assert.equal(state.refreshTokenEnc, '');
    assert.equal(state.accessTokenEnc, '');
    await assert.rejects(getAccessToken(deps, account.accountId), rejectsWith('OAUTH_NOT_CONNECTED'));
  });

  it('never writes a token, code, state or client secret to the log', () => {
    assert.ok(capture.lines.length > 20, 'the code under test did log');
    assert.ok(secrets.size > 20, 'the scan has tokens to look for');
    const text = capture.text;
    for (const secret of secrets) assert.ok(!text.includes(secret), `a secret value (${secret.slice(0, 4)}…) appeared in the log`);
    const messages = new Set(capture.records().map((r) => r.msg));
    for (const expected of ['oauth access token refreshed', 'oauth grant refused: re-authorisation needed', 'oauth token refresh failed; backing off', 'oauth authorization completed']) {
      assert.ok(messages.has(expected), `logged "${expected}"`);
    }
  });
});
