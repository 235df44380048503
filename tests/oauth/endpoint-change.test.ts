/**
 * A user's OAuth grant (the refresh token) goes only to the token endpoint
 * that issued it. An admin who points a provider's token or revocation URL
 * (Preferences → Business) at a server they run must not receive the users'
 * refresh tokens at the next refresh or Disconnect: with them and the
 * client's credentials, the admin could read those mailboxes for good.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { SYSTEM_ACTOR } from '../../gateway/accounts';
import { AppError } from '../../gateway/core/errors';
import { getAccessToken, revokeAuthorization, updateOAuthSettings, type OAuthDeps } from '../../gateway/oauth';
import { startOidcServer, type OidcServer } from '../support/oidc';
import { openTestStore } from '../support/store';
import { CALLBACK_URL, createAccount, oauthConfig, oauthDeps, signIn } from './helpers';

type TestStore = Awaited<ReturnType<typeof openTestStore>>;

/** An http server on loopback that keeps every request body and refuses everything. */
async function startRecorder(): Promise<{ url: string; bodies: string[]; close: () => Promise<void> }> {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      bodies.push(`${req.url} ${body}`);
      res.writeHead(400, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: 'invalid_grant' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, bodies, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('oauth: a grant is sent only to the token endpoint that issued it', function () {
  this.timeout(60_000);
  let store: TestStore;
  let oidc: OidcServer;
  let deps: OAuthDeps;
  let recorder: Awaited<ReturnType<typeof startRecorder>>;

  async function connected() {
    const account = await createAccount(store);
    oidc.addUser(account.email, 'pw');
    await signIn(deps, oidc, account, 'pw');
    const doc = await store.models.MailAccount.findById(account.accountId).lean();
    const refreshToken = deps.secretBox.open(doc!.oauth!.refreshTokenEnc!, account.accountId);
    const { accessToken } = await getAccessToken(deps, account.accountId);
    return { ...account, refreshToken, accessToken };
  }

  const pointProviderAt = (url: string, which: Array<'tokenUrl' | 'revocationUrl'> = ['tokenUrl', 'revocationUrl']) =>
    updateOAuthSettings({ ...deps, actor: SYSTEM_ACTOR }, 'oidc', Object.fromEntries(which.map((field) => [field, `${url}/${field}`])));

  before(async () => {
    store = await openTestStore('oauth_endpoint_change');
    oidc = await startOidcServer({ redirectUris: [CALLBACK_URL] });
    deps = oauthDeps(store, oauthConfig(oidc));
    recorder = await startRecorder();
  });
  afterEach(async () => {
    // Back to the provider's own endpoints (discovered from the issuer) for the next test.
    await updateOAuthSettings({ ...deps, actor: SYSTEM_ACTOR }, 'oidc', { tokenUrl: '', revocationUrl: '' });
  });
  after(async () => {
    await recorder?.close();
    await oidc?.stop();
    await store?.drop();
  });

  it('a refresh after the token URL changed does not send the refresh token there; the user is asked to sign in again', async () => {
    const bob = await connected();
    await pointProviderAt(recorder.url);
    const refreshed = await getAccessToken(deps, bob.accountId, { rejectedToken: bob.accessToken }).then(() => null, (err: unknown) => err);
    assert.equal(recorder.bodies.some((body) => body.includes(bob.refreshToken)), false, 'Bob\'s refresh token reached the new token URL');
    assert.ok(refreshed instanceof AppError);
    assert.equal(refreshed.code, 'OAUTH_REAUTH_NEEDED');
    assert.match(refreshed.message, /sign-in settings changed since this mailbox signed in/);
    assert.equal((await store.models.MailAccount.findById(bob.accountId).lean())!.oauth!.status, 'reauth_needed');
  });

  it('Disconnect after the revocation URL changed does not send the refresh token there', async () => {
    const carol = await connected();
    await pointProviderAt(recorder.url, ['revocationUrl']);
    const { revokedAtProvider } = await revokeAuthorization(deps, carol.accountId);
    assert.equal(recorder.bodies.some((body) => body.includes(carol.refreshToken)), false, 'Carol\'s refresh token reached the new revocation URL');
    assert.equal(revokedAtProvider, false);
    assert.equal((await store.models.MailAccount.findById(carol.accountId).lean())!.oauth!.provider, '');
  });

  it('with the endpoints unchanged, a refresh and a Disconnect go to the provider as before', async () => {
    const dave = await connected();
    // A grant from before the endpoints were recorded is bound to the ones its next refresh used.
    const { tokenEndpoint } = (await store.models.MailAccount.findById(dave.accountId).lean())!.oauth!;
    assert.match(tokenEndpoint, /^https:\/\/127\.0\.0\.1:\d+\//);
    await store.models.MailAccount.updateOne({ _id: dave.accountId }, { $set: { 'oauth.tokenEndpoint': '', 'oauth.revocationEndpoint': '' } });
    const fresh = await getAccessToken(deps, dave.accountId, { rejectedToken: dave.accessToken });
    assert.notEqual(fresh.accessToken, dave.accessToken);
    assert.equal((await store.models.MailAccount.findById(dave.accountId).lean())!.oauth!.tokenEndpoint, tokenEndpoint);
    assert.equal((await revokeAuthorization(deps, dave.accountId)).revokedAtProvider, true);
  });
});
