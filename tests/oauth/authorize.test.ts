import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { SecretBox, sha256Hex } from '../../gateway/core/crypto';
import { AppError } from '../../gateway/core/errors';
import { accountOfFailedCallback, completeAuthorization, startAuthorization, type OAuthDeps } from '../../gateway/oauth';
import { startOidcServer, type OidcServer } from '../support/oidc';
import { openTestStore } from '../support/store';
import { CALLBACK_URL, LogCapture, TEST_SECRET_KEY, createAccount, oauthConfig, oauthDeps, signIn } from './helpers';

type TestStore = Awaited<ReturnType<typeof openTestStore>>;

function isAppError(code: string, status?: number) {
  return (err: unknown) => {
    assert.ok(err instanceof AppError, `expected AppError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (status !== undefined) assert.equal(err.status, status);
    return true;
  };
}

function callbackParams(url: URL) {
  const p = url.searchParams;
  return { state: p.get('state') ?? undefined, code: p.get('code') ?? undefined, iss: p.get('iss') ?? undefined, error: p.get('error') ?? undefined, errorDescription: p.get('error_description') ?? undefined };
}

describe('oauth authorization-code flow with PKCE (against a real OIDC server)', () => {
  let store: TestStore;
  let oidc: OidcServer;
  let deps: OAuthDeps;
  const capture = new LogCapture();
  const secretBox = new SecretBox(TEST_SECRET_KEY);

  before(async () => {
    store = await openTestStore('oauth_authorize');
    oidc = await startOidcServer({ redirectUris: [CALLBACK_URL] });
    deps = oauthDeps(store, oauthConfig(oidc), { capture });
  });
  after(async () => {
    await oidc?.stop();
    await store?.drop();
  });

  it('redirects with S256 PKCE, a server-side state bound to user and account, and stores sealed tokens', async () => {
    const account = await createAccount(store);
    oidc.addUser(account.email, 'correct horse');
    const { redirectUrl } = await startAuthorization(deps, { userId: account.userId, accountId: account.accountId, provider: 'oidc' });
    const url = new URL(redirectUrl);
    assert.equal(url.origin + url.pathname, `${oidc.issuer}/auth`, 'the discovered authorization endpoint');
    const q = url.searchParams;
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('client_id'), oidc.clientId);
    assert.equal(q.get('redirect_uri'), CALLBACK_URL);
    assert.equal(q.get('scope'), 'openid email offline_access imap smtp');
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.equal(q.get('prompt'), 'consent');
    assert.equal(q.get('login_hint'), account.email);
    const state = q.get('state')!;
    assert.ok(state.length >= 32, 'state is long and random');

    // The state row: stored under its hash, bound to the user and the account, verifier sealed.
    const row = await store.models.OAuthState.findById(sha256Hex(state)).lean();
    assert.ok(row, 'state stored server-side under its SHA-256');
    assert.equal(row.userId.toHexString(), account.userId);
    assert.equal(row.accountId.toHexString(), account.accountId);
    assert.ok(!(await store.models.OAuthState.findById(state).lean()), 'never under the state itself');
    const verifier = secretBox.open(row.codeVerifierEnc, `oauth-state:${row._id}`);
    assert.equal(q.get('code_challenge'), crypto.createHash('sha256').update(verifier).digest('base64url'), 'challenge = BASE64URL(SHA256(verifier)) (RFC 7636 §4.2)');
    assert.ok(!redirectUrl.includes(verifier), 'the verifier never leaves the server');
    assert.ok(row.expiresAt.getTime() - Date.now() <= 10 * 60_000 && row.expiresAt.getTime() - Date.now() > 9 * 60_000, 'valid for ten minutes');

    const callback = await oidc.authorize(redirectUrl, { login: account.email, password: 'correct horse' });
    assert.equal(callback.origin + callback.pathname, CALLBACK_URL);
    const result = await completeAuthorization(deps, { userId: account.userId, ...callbackParams(callback) });
    assert.equal(result.accountId, account.accountId);
    assert.equal(result.provider, 'oidc');

    assert.equal(await store.models.OAuthState.countDocuments({ _id: row._id }), 0, 'the state is consumed');
    const stored = await store.models.MailAccount.findById(account.accountId).lean();
    assert.equal(stored?.oauth?.provider, 'oidc');
    assert.equal(stored?.oauth?.status, 'ok');
    assert.ok(stored?.oauth?.expiresAt && stored.oauth.expiresAt.getTime() > Date.now());
    const accessToken = secretBox.open(stored!.oauth!.accessTokenEnc, account.accountId);
    const refreshToken = secretBox.open(stored!.oauth!.refreshTokenEnc, account.accountId);
    assert.throws(() => secretBox.open(stored!.oauth!.refreshTokenEnc, '000000000000000000000000'), 'sealed under the account id');

    // Tokens are real: the server vouches for the access token, for this user and the mail resource.
    const introspection = await oidc.introspect(accessToken);
    assert.equal(introspection.active, true);
    assert.equal(introspection.username, account.email);

    // At rest: the raw document holds neither token.
    const raw = JSON.stringify(await store.conn.collection('mail_accounts').findOne({ _id: stored!._id }));
    assert.ok(!raw.includes(accessToken) && !raw.includes(refreshToken), 'tokens are sealed at rest');
  });

  it('uses a state once: a replayed callback is refused without another code exchange', async () => {
    const account = await createAccount(store);
    oidc.addUser(account.email, 'pw');
    const { callback } = await signIn(deps, oidc, account, 'pw');
    const exchanges = oidc.grants('authorization_code');
    await assert.rejects(completeAuthorization(deps, { userId: account.userId, ...callbackParams(callback) }), isAppError('OAUTH_STATE_INVALID', 400));
    assert.equal(oidc.grants('authorization_code'), exchanges, 'no second exchange');
  });

  it('lets exactly one of two racing callbacks with the same state exchange the code', async () => {
    const account = await createAccount(store);
    oidc.addUser(account.email, 'pw');
    const { redirectUrl } = await startAuthorization(deps, { userId: account.userId, accountId: account.accountId, provider: 'oidc' });
    const callback = await oidc.authorize(redirectUrl, { login: account.email, password: 'pw' });
    const exchanges = oidc.grants('authorization_code');
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => completeAuthorization(deps, { userId: account.userId, ...callbackParams(callback) })));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    for (const r of results) if (r.status === 'rejected') isAppError('OAUTH_STATE_INVALID')(r.reason);
    assert.equal(oidc.grants('authorization_code'), exchanges + 1, 'the code went to the provider once');
  });

  it('binds the state to the user who started: another user cannot complete it, the right one still can', async () => {
    const account = await createAccount(store);
    const intruder = await createAccount(store);
    oidc.addUser(account.email, 'pw');
    const { redirectUrl } = await startAuthorization(deps, { userId: account.userId, accountId: account.accountId, provider: 'oidc' });
    const callback = await oidc.authorize(redirectUrl, { login: account.email, password: 'pw' });
    await assert.rejects(completeAuthorization(deps, { userId: intruder.userId, ...callbackParams(callback) }), isAppError('OAUTH_STATE_INVALID'));
    const intruderAccount = await store.models.MailAccount.findById(intruder.accountId).lean();
    assert.equal(intruderAccount?.oauth?.provider, '', "the intruder's account got nothing");
    const result = await completeAuthorization(deps, { userId: account.userId, ...callbackParams(callback) });
    assert.equal(result.accountId, account.accountId);
  });

  it('binds the flow to an account its user owns (admins may connect any)', async () => {
    const account = await createAccount(store);
    const other = await createAccount(store);
    await assert.rejects(startAuthorization(deps, { userId: other.userId, accountId: account.accountId, provider: 'oidc' }), isAppError('NOT_FOUND', 404));
    const asAdmin = await startAuthorization(deps, { userId: other.userId, accountId: account.accountId, provider: 'oidc', actingAsAdmin: true });
    assert.match(asAdmin.redirectUrl, /^https:\/\/127\.0\.0\.1:\d+\/auth\?/);
    await assert.rejects(startAuthorization(deps, { userId: account.userId, accountId: 'not-an-id', provider: 'oidc' }), isAppError('NOT_FOUND', 404));
    await assert.rejects(startAuthorization(deps, { userId: account.userId, accountId: account.accountId, provider: 'yahoo' }), isAppError('OAUTH_UNKNOWN_PROVIDER', 400));
  });

  it('expires a state after ten minutes and sweeps expired ones', async () => {
    const account = await createAccount(store);
    oidc.addUser(account.email, 'pw');
    const { redirectUrl } = await startAuthorization(deps, { userId: account.userId, accountId: account.accountId, provider: 'oidc' });
    const callback = await oidc.authorize(redirectUrl, { login: account.email, password: 'pw' });
    const later = { ...deps, clock: () => new Date(Date.now() + 10 * 60_000 + 1000) };
    await assert.rejects(completeAuthorization(later, { userId: account.userId, ...callbackParams(callback) }), isAppError('OAUTH_STATE_INVALID'));

    const stale = await startAuthorization(deps, { userId: account.userId, accountId: account.accountId, provider: 'oidc' });
    const staleHash = sha256Hex(new URL(stale.redirectUrl).searchParams.get('state')!);
    await startAuthorization(later, { userId: account.userId, accountId: account.accountId, provider: 'oidc' });
    assert.equal(await store.models.OAuthState.countDocuments({ _id: staleHash }), 0, 'expired states are swept');
  });

  it('reports a user who denies access, and leaves the account as it was', async () => {
    const account = await createAccount(store);
    oidc.addUser(account.email, 'pw');
    const { redirectUrl } = await startAuthorization(deps, { userId: account.userId, accountId: account.accountId, provider: 'oidc' });
    const callback = await oidc.authorize(redirectUrl, { login: account.email, password: 'pw', deny: true });
    assert.equal(callback.searchParams.get('error'), 'access_denied');
    await assert.rejects(completeAuthorization(deps, { userId: account.userId, ...callbackParams(callback) }), (err: unknown) => {
      assert.ok(err instanceof AppError && err.code === 'OAUTH_DENIED' && err.status === 400);
      assert.match(err.message, /^Access was not granted at Test SSO \(The user denied access\)\. Nothing changed/);
      assert.equal(accountOfFailedCallback(err), account.accountId, 'the console can send the user back to this account');
      return true;
    });
    const stored = await store.models.MailAccount.findById(account.accountId).lean();
    assert.equal(stored?.oauth?.provider, '');
    await assert.rejects(completeAuthorization(deps, { userId: account.userId, ...callbackParams(callback) }), (err: unknown) => {
      assert.ok(err instanceof AppError && err.code === 'OAUTH_STATE_INVALID', String(err));
      assert.equal(accountOfFailedCallback(err), undefined, 'a used state tells nothing about an account');
      return true;
    }, 'the state was consumed');
  });

  it('refuses a forged or altered code with the provider’s reason', async () => {
    const account = await createAccount(store);
    oidc.addUser(account.email, 'pw');
    const { redirectUrl } = await startAuthorization(deps, { userId: account.userId, accountId: account.accountId, provider: 'oidc' });
    const callback = await oidc.authorize(redirectUrl, { login: account.email, password: 'pw' });
    const params = callbackParams(callback);
    await assert.rejects(completeAuthorization(deps, { userId: account.userId, ...params, code: `${params.code}x` }), (err: unknown) => {
      assert.ok(err instanceof AppError && err.code === 'OAUTH_EXCHANGE_FAILED', String(err));
      assert.match(err.message, /invalid_grant/);
      return true;
    });
  });

  it('refuses a callback whose iss is another server (RFC 9207 mix-up defence)', async () => {
    const account = await createAccount(store);
    oidc.addUser(account.email, 'pw');
    const { redirectUrl } = await startAuthorization(deps, { userId: account.userId, accountId: account.accountId, provider: 'oidc' });
    const callback = await oidc.authorize(redirectUrl, { login: account.email, password: 'pw' });
    const before = oidc.grants('authorization_code');
    await assert.rejects(completeAuthorization(deps, { userId: account.userId, ...callbackParams(callback), iss: 'https://attacker.example' }), (err: unknown) => {
      assert.ok(err instanceof AppError && err.code === 'OAUTH_EXCHANGE_FAILED', String(err));
      assert.match(err.message, /iss/);
      return true;
    });
    assert.equal(oidc.grants('authorization_code'), before, 'the code was not sent anywhere');
  });

  it('says plainly when a provider is not set up', async () => {
    const account = await createAccount(store);
    await assert.rejects(startAuthorization(deps, { userId: account.userId, accountId: account.accountId, provider: 'google' }), (err: unknown) => {
      assert.ok(err instanceof AppError && err.code === 'OAUTH_NOT_CONFIGURED' && err.status === 409);
      assert.match(err.message, /OAUTH_GOOGLE_CLIENT_ID/);
      return true;
    });
  });

  it('names the variable to correct when the provider refuses the client secret at the code exchange', async () => {
    const account = await createAccount(store);
    oidc.addUser(account.email, 'pw');
    const wrongSecret = oauthDeps(store, oauthConfig(oidc, { OAUTH_OIDC_CLIENT_SECRET: 'not-the-registered-secret' }), { capture });
    const { redirectUrl } = await startAuthorization(wrongSecret, { userId: account.userId, accountId: account.accountId, provider: 'oidc' });
    const callback = await oidc.authorize(redirectUrl, { login: account.email, password: 'pw' });
    await assert.rejects(completeAuthorization(wrongSecret, { userId: account.userId, ...callbackParams(callback) }), (err: unknown) => {
      assert.ok(err instanceof AppError && err.code === 'OAUTH_CLIENT_REJECTED' && err.status === 502, String(err));
      assert.match(err.message, /^Test SSO refused Postroom's client credentials \(invalid_client.*\)\. An admin must check the client id and secret \(set in OAUTH_OIDC_CLIENT_ID, OAUTH_OIDC_CLIENT_SECRET\)\.$/);
      assert.doesNotMatch(err.message, /not-the-registered-secret/);
      return true;
    });
  });

  it('gives up on an issuer that does not answer after one discovery request, not one per well-known path', async () => {
    const connections: net.Socket[] = [];
    const silent = net.createServer((socket) => connections.push(socket)); // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}/realms/silent`;
    try {
      const account = await createAccount(store);
      const hanging = oauthDeps(store, oauthConfig(oidc, { OAUTH_OIDC_ISSUER: issuer }), { capture, tuning: { httpTimeoutS: 1 } });
      await assert.rejects(startAuthorization(hanging, { userId: account.userId, accountId: account.accountId, provider: 'oidc' }), (err: unknown) => {
        assert.ok(err instanceof AppError && err.code === 'OAUTH_PROVIDER_UNAVAILABLE' && err.status === 503, String(err));
        assert.match(err.message, /could not be discovered from .*\/realms\/silent \(OAUTH_TIMEOUT\)/);
        return true;
      });
      assert.equal(connections.length, 1, 'one request, then the user is told');
    } finally {
      for (const socket of connections) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  describe('a Microsoft-shaped provider (explicit endpoints, no openid scope)', () => {
    let msOidc: OidcServer;
    const msEnv = (server: OidcServer) => ({
      OAUTH_MICROSOFT_CLIENT_ID: server.clientId, OAUTH_MICROSOFT_CLIENT_SECRET: server.clientSecret,
      OAUTH_MICROSOFT_ISSUER: server.issuer, OAUTH_MICROSOFT_AUTHORIZATION_URL: `${server.issuer}/auth`, OAUTH_MICROSOFT_TOKEN_URL: server.tokenEndpoint,
    });
    before(async () => {
      msOidc = await startOidcServer({ redirectUris: [CALLBACK_URL], offlineAccessWithoutConsent: true });
    });
    after(async () => msOidc?.stop());

    it('requests the IMAP, SMTP and offline_access scopes and stores the grant', async () => {
      const msDeps = oauthDeps(store, oauthConfig(oidc, msEnv(msOidc)), { capture });
      const account = await createAccount(store);
      msOidc.addUser(account.email, 'pw');
      const { redirectUrl } = await startAuthorization(msDeps, { userId: account.userId, accountId: account.accountId, provider: 'microsoft' });
      assert.equal(new URL(redirectUrl).searchParams.get('scope'), 'https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access');
      const callback = await msOidc.authorize(redirectUrl, { login: account.email, password: 'pw' });
      const result = await completeAuthorization(msDeps, { userId: account.userId, ...callbackParams(callback) });
      assert.equal(result.provider, 'microsoft');
      assert.equal(result.scope, 'https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send');
    });

    it('refuses a grant without a refresh token (it would stop working within the hour)', async () => {
      // The standard OIDC server drops offline_access without prompt=consent, as OIDC Core §11 says.
      const msDeps = oauthDeps(store, oauthConfig(oidc, msEnv(oidc)), { capture });
      const account = await createAccount(store);
      oidc.addUser(account.email, 'pw');
      const { redirectUrl } = await startAuthorization(msDeps, { userId: account.userId, accountId: account.accountId, provider: 'microsoft' });
      const callback = await oidc.authorize(redirectUrl, { login: account.email, password: 'pw' });
      await assert.rejects(completeAuthorization(msDeps, { userId: account.userId, ...callbackParams(callback) }), isAppError('OAUTH_NO_REFRESH_TOKEN'));
      const stored = await store.models.MailAccount.findById(account.accountId).lean();
      assert.equal(stored?.oauth?.provider, '', 'nothing half-stored');
    });

    it('refuses a grant that lacks the mail scopes (unticked at consent)', async () => {
      const msDeps = oauthDeps(store, oauthConfig(oidc, { ...msEnv(msOidc), OAUTH_MICROSOFT_SCOPES: 'https://outlook.office.com/IMAP.AccessAsUser.All offline_access calendar' }), { capture });
      const account = await createAccount(store);
      msOidc.addUser(account.email, 'pw');
      const { redirectUrl } = await startAuthorization(msDeps, { userId: account.userId, accountId: account.accountId, provider: 'microsoft' });
      const callback = await msOidc.authorize(redirectUrl, { login: account.email, password: 'pw' });
      await assert.rejects(completeAuthorization(msDeps, { userId: account.userId, ...callbackParams(callback) }), (err: unknown) => {
        assert.ok(err instanceof AppError && err.code === 'OAUTH_SCOPE_MISSING');
        assert.match(err.message, /calendar/);
        return true;
      });
    });
  });
});
