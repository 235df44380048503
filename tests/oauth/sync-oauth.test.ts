import assert from 'node:assert/strict';
import mongoose from 'mongoose';
import { SecretBox } from '../../gateway/core/crypto';
import { createLogger } from '../../gateway/core/log';
import { verifyOAuthImap, type OAuthDeps } from '../../gateway/oauth';
import { startSyncer, type PassReport, type Syncer } from '../../gateway/sync/schedule';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { startOidcServer, type OidcServer } from '../support/oidc';
import { openTestStore } from '../support/store';
import { makeMessage } from '../sync/helpers';
import { CALLBACK_URL, LogCapture, TEST_SECRET_KEY, createAccount, oauthConfig, oauthDeps, signIn } from './helpers';

type TestStore = Awaited<ReturnType<typeof openTestStore>>;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The syncer on an OAuth2 account, end to end: sync with the token; the
 * token expires → refresh → sync continues; the grant is revoked → the
 * account shows "re-authorisation needed" and no pass retries it; mail that
 * arrives meanwhile (the gap) is backfilled after the user signs in again,
 * with nothing missed and nothing stored twice.
 */
describe('IMAP sync of an OAuth2 account (syncer + Dovecot oauth2 passdb + test provider)', function () {
  this.timeout(60_000);
  let store: TestStore;
  let oidc: OidcServer;
  let dovecot: DovecotServer;
  let deps: OAuthDeps;
  let syncer: Syncer;
  const capture = new LogCapture();
  const secretBox = new SecretBox(TEST_SECRET_KEY);
  const tokens = new Set<string>();
  let account: Awaited<ReturnType<typeof createAccount>>;

  const messages = () => store.models.Message.find({ accountId: new mongoose.Types.ObjectId(account.accountId) }).lean();
  const pass = async (): Promise<PassReport> => syncer.runPassNow();
  const resultOf = (report: PassReport) => report.accounts.find((a) => a.accountId === account.accountId);

  async function remember(): Promise<void> {
    const doc = await store.models.MailAccount.findById(account.accountId).lean();
    for (const sealed of [doc?.oauth?.accessTokenEnc, doc?.oauth?.refreshTokenEnc]) if (sealed) tokens.add(secretBox.open(sealed, account.accountId));
  }

  async function deliver(count: number, label: string): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i += 1) {
      const message = makeMessage({ to: account.email, subject: `${label} ${i}` });
      await dovecot.append(account.email, 'INBOX', message.raw, { date: new Date() });
      ids.push(message.messageId);
    }
    return ids;
  }

  before(async () => {
    store = await openTestStore('oauth_sync');
    oidc = await startOidcServer({ redirectUris: [CALLBACK_URL] });
    dovecot = await startDovecot({ oauth2: { introspectionUrl: oidc.introspection.url, clientId: oidc.introspection.clientId, clientSecret: oidc.introspection.clientSecret } });
    const config = oauthConfig(oidc);
    const log = createLogger({ level: 'debug', pretty: false, destination: capture });
    deps = { ...oauthDeps(store, config, { capture }), log };
    account = await createAccount(store);
    oidc.addUser(account.email, 'provider-pw');
    await dovecot.addUser(account.email, 'unused-harness-password');
    await store.models.MailAccount.updateOne({ _id: account.accountId }, { $set: { 'imap.host': dovecot.host, 'imap.port': dovecot.tlsPort, 'imap.status': 'unverified' } });
    syncer = startSyncer({ config, log, store, secretBox, schedule: false, associate: null, options: { backoffBaseMs: 60_000 } });
  });
  after(async () => {
    await syncer?.stop();
    await dovecot?.stop();
    await oidc?.stop();
    await store?.drop();
  });

  it('signs in, checks the IMAP login, and syncs with the token', async () => {
    oidc.setAccessTokenTtl(2);
    await signIn(deps, oidc, account, 'provider-pw');
    const check = await verifyOAuthImap(deps, account.accountId);
    assert.equal(check.ok, true, check.error?.message);
    await remember();
    const first = await deliver(3, 'before');
    const report = await pass();
    assert.equal(resultOf(report)?.outcome, 'synced', resultOf(report)?.error);
    assert.deepEqual((await messages()).map((m) => m.messageId).sort(), first.sort());
  });

  it('refreshes the expired token and keeps syncing', async () => {
    oidc.setAccessTokenTtl(3600);
    await sleep(2200); // the 2-second token has expired
    const refreshes = oidc.grants('refresh_token');
    await deliver(2, 'after expiry');
    const report = await pass();
    await remember();
    assert.equal(resultOf(report)?.outcome, 'synced', resultOf(report)?.error);
    assert.equal(resultOf(report)?.stored, 2);
    assert.equal(oidc.grants('refresh_token'), refreshes + 1);
    assert.equal((await messages()).length, 5);
  });

  let gap: string[] = [];
  it('stops on a revoked grant with "re-authorisation needed", and later passes leave it alone', async () => {
    await oidc.revokeGrants(account.email);
    gap = await deliver(2, 'during the outage');
    const tokenRequests = oidc.requests('/token');
    const introspections = oidc.requests('/token/introspection');
    const report = await pass();
    const result = resultOf(report);
    assert.equal(result?.outcome, 'auth_failed');
    assert.equal(result?.errorCode, 'OAUTH_REAUTH_NEEDED');
    const doc = (await store.models.MailAccount.findById(account.accountId).lean())!;
    assert.equal(doc.oauth?.status, 'reauth_needed');
    assert.equal(doc.imap?.status, 'failing');
    assert.match(doc.imap?.lastError ?? '', /Sign in with Test SSO again/);
    assert.equal(oidc.requests('/token'), tokenRequests + 1, 'one refresh attempt');
    assert.equal(oidc.requests('/token/introspection'), introspections + 1, 'one refused login');

    for (let i = 0; i < 5; i += 1) {
      const later = await pass();
      assert.equal(resultOf(later), undefined, 'the account is not picked while it needs the user');
    }
    assert.equal(oidc.requests('/token'), tokenRequests + 1, 'no retry storm at the provider');
    assert.equal(oidc.requests('/token/introspection'), introspections + 1, 'no retry storm at the IMAP server');
    assert.equal((await messages()).length, 5);
  });

  it('after re-authorisation resumes from its cursor and backfills the gap, without duplicates', async () => {
    await signIn(deps, oidc, account, 'provider-pw');
    const check = await verifyOAuthImap(deps, account.accountId);
    assert.equal(check.ok, true, check.error?.message);
    await remember();
    const report = await pass();
    assert.equal(resultOf(report)?.outcome, 'synced', resultOf(report)?.error);
    assert.equal(resultOf(report)?.stored, 2, 'exactly the gap');
    const stored = await messages();
    assert.equal(stored.length, 7);
    assert.equal(new Set(stored.map((m) => m.messageId)).size, 7, 'nothing stored twice');
    for (const id of gap) assert.ok(stored.some((m) => m.messageId === id), `gap message ${id} backfilled`);
    const again = await pass();
    assert.equal(resultOf(again)?.stored ?? 0, 0);
  });

  it('logged the passes without any token', () => {
    assert.ok(capture.lines.some((line) => line.includes('imap sync pass')));
    assert.ok(tokens.size >= 4);
    for (const token of tokens) assert.ok(!capture.text.includes(token), 'a token appeared in the log');
  });
});
