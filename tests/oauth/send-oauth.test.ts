import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import { ImapFlow } from 'imapflow';
import mongoose from 'mongoose';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import request from 'supertest';
import { createApiToken, getMailAccount, SYSTEM_ACTOR, type Viewer } from '../../gateway/accounts';
import type { Config } from '../../gateway/core/config';
import { SecretBox } from '../../gateway/core/crypto';
import { AppError } from '../../gateway/core/errors';
import { createLogger } from '../../gateway/core/log';
import { verifyOAuthImap, type OAuthDeps } from '../../gateway/oauth';
import { authenticateMailAccountSmtp, sendMessage, type SendDeps } from '../../gateway/send';
import { buildApp } from '../admin/fixtures';
import { sendDeps } from '../send/support';
import { ensureTestCertificates } from '../support/certs';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { startOidcServer, type OidcServer } from '../support/oidc';
import { openTestStore, storedRaw } from '../support/store';
import { CALLBACK_URL, LogCapture, TEST_SECRET_KEY, createAccount, oauthConfig, oauthDeps, signIn } from './helpers';

type TestStore = Awaited<ReturnType<typeof openTestStore>>;

/**
 * Sending from an account signed in with OAuth2, through the real send code
 * (gateway/send: Authenticate SMTP, sendMessage, the outbox attempt, the
 * Sent append, ingest) against real servers on loopback: the test
 * authorisation server, a submission server (npm smtp-server, implicit TLS)
 * that accepts only SASL XOAUTH2 and checks each token at the provider's
 * introspection endpoint like Gmail/Outlook do, and a Dovecot whose oauth2
 * passdb does the same for the IMAP Sent append. The account has no password
 * anywhere. Also the API's Authenticate (IMAP) branching to the token login.
 */
describe('sending from an OAuth2 account (gateway/send + XOAUTH2 + Dovecot oauth2 passdb)', function () {
  this.timeout(60_000);
  let store: TestStore;
  let oidc: OidcServer;
  let dovecot: DovecotServer;
  let smtp: SMTPServer;
  let smtpPort: number;
  let config: Config;
  let oauth: OAuthDeps;
  let deps: SendDeps;
  const capture = new LogCapture();
  const secretBox = new SecretBox(TEST_SECRET_KEY);
  const received: Array<{ user: string; raw: Buffer }> = [];
  /** Every token seen anywhere (at the SMTP server, in the store): none may reach a log line. */
  const tokens = new Set<string>();

  type Fixture = Awaited<ReturnType<typeof createAccount>> & { viewer: Viewer; imapPassword: string };

  async function remember(accountId: string): Promise<void> {
    const doc = await store.models.MailAccount.findById(accountId).lean();
    for (const sealed of [doc?.oauth?.accessTokenEnc, doc?.oauth?.refreshTokenEnc]) if (sealed) tokens.add(secretBox.open(sealed, accountId));
  }

  /** Signed in with the provider, IMAP checked with the token, sending on and Authenticate SMTP done — never a password. */
  async function oauthSender(): Promise<Fixture> {
    const account = await createAccount(store);
    const imapPassword = `harness-${account.accountId}`;
    oidc.addUser(account.email, 'provider-pw');
    // Only the test's own reading of the Sent folder uses this password; Postroom never has it.
    await dovecot.addUser(account.email, imapPassword);
    await store.models.MailAccount.updateOne({ _id: account.accountId }, {
      $set: {
        'imap.host': dovecot.host, 'imap.port': dovecot.tlsPort, 'imap.status': 'unverified',
        smtp: { enabled: true, service: 'custom', host: '127.0.0.1', port: smtpPort, tls: 'implicit', sameCredentials: true, status: 'unverified' },
      },
    });
    await signIn(oauth, oidc, account, 'provider-pw');
    const imap = await verifyOAuthImap(oauth, account.accountId);
    assert.equal(imap.ok, true, imap.error?.message);
    const viewer: Viewer = { id: new mongoose.Types.ObjectId(account.userId), role: 'employee' };
    const check = await authenticateMailAccountSmtp({ store, secretBox, actor: SYSTEM_ACTOR, log: oauth.log, timeoutMs: 10_000, oauthConfig: config }, viewer, account.accountId);
    assert.equal(check.error, null, check.error?.message);
    assert.equal(check.account.smtp.status, 'authenticated');
    await remember(account.accountId);
    return { ...account, viewer, imapPassword };
  }

  async function sentFolder(account: Fixture): Promise<Buffer[]> {
    const client = new ImapFlow({ ...dovecot.clientOptions(account.email, account.imapPassword), logger: false });
    await client.connect();
    try {
      const lock = await client.getMailboxLock('Sent');
      try {
        const out: Buffer[] = [];
        if ((client.mailbox as { exists: number }).exists === 0) return out;
        for await (const message of client.fetch('1:*', { source: true })) out.push(message.source!);
        return out;
      } finally {
        lock.release();
      }
    } finally {
      await client.logout();
    }
  }

  const sentMessages = (accountId: string) => store.models.Message.find({ accountId: new mongoose.Types.ObjectId(accountId), 'sources.kind': 'sent' }).lean();
  const subjects = (user: string) => received.filter((m) => m.user === user).map((m) => /^Subject: (.*)$/m.exec(m.raw.toString('utf8'))?.[1]?.trim());

  before(async () => {
    store = await openTestStore('oauth_send');
    oidc = await startOidcServer({ redirectUris: [CALLBACK_URL] });
    dovecot = await startDovecot({ oauth2: { introspectionUrl: oidc.introspection.url, clientId: oidc.introspection.clientId, clientSecret: oidc.introspection.clientSecret } });
    config = oauthConfig(oidc);
    const log = createLogger({ level: 'trace', pretty: false, destination: capture });
    oauth = { ...oauthDeps(store, config, { capture }), log };
    deps = sendDeps(store, secretBox, { log, oauthConfig: config, associate: undefined });
    const certs = ensureTestCertificates();
    smtp = new SMTPServer({
      secure: true,
      key: fs.readFileSync(certs.keyFile),
      cert: fs.readFileSync(certs.certFile),
      // XOAUTH2 only: a password could not log in here even if Postroom had one.
      authMethods: ['XOAUTH2'],
      logger: false,
      onAuth(auth, _session, callback) {
        if (auth.accessToken) tokens.add(auth.accessToken);
        oidc.introspect(auth.accessToken ?? '').then((answer) => {
          if (answer.active === true && answer.username === auth.username) return callback(null, { user: auth.username });
          // RFC 7628 §3.2.2 error payload; the client's empty reply then gets 535 (as with Gmail).
          callback(null, { data: { status: '401', schemes: 'bearer', scope: 'smtp' } } as never);
        }, (err: Error) => callback(err));
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          received.push({ user: String(session.user), raw: Buffer.concat(chunks) });
          callback();
        });
      },
    });
    smtp.on('error', () => undefined);
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', () => resolve()));
    smtpPort = (smtp.server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise<void>((resolve) => (smtp ? smtp.close(() => resolve()) : resolve()));
    await dovecot?.stop();
    await oidc?.stop();
    await store?.drop();
  });

  it('sends with an access token (no password): received by the XOAUTH2 server, appended to Sent over IMAP with the token, stored with source "sent"', async () => {
    const bob = await oauthSender();
    const doc = await store.models.MailAccount.findById(bob.accountId).lean();
    assert.equal(doc?.imap?.passwordEnc ?? '', '', 'the account holds no IMAP password');
    assert.equal(doc?.smtp?.passwordEnc ?? '', '', 'nor an SMTP one');

    const result = await sendMessage(deps, bob.viewer, bob.accountId, { to: 'alice@customer.test', subject: 'Quote via OAuth', text: 'Hello Alice' });
    assert.equal(result.status, 'sent');
    assert.deepEqual(subjects(bob.email), ['Quote via OAuth'], 'the server received it, authenticated as the mailbox');
    const got = await simpleParser(received.find((m) => m.user === bob.email)!.raw);
    assert.equal(got.messageId, `<${result.messageId}>`);

    const stored = await store.models.Message.findById(result.storedMessageId).lean();
    assert.ok(stored);
    assert.deepEqual(stored.sources.map((s) => s.kind), ['sent']);
    assert.equal(stored.accountId?.toString(), bob.accountId);

    const entry = await store.models.Outbox.findById(result.outboxId).lean();
    assert.equal(entry?.status, 'sent');
    assert.equal(entry?.sentFolder?.state, 'appended', entry?.sentFolder?.error);
    const sent = await sentFolder(bob);
    assert.equal(sent.length, 1);
    assert.ok(sent[0].equals(await storedRaw(store, stored._id)), 'the Sent folder holds exactly the stored bytes');
  });

  it('refreshes an expired access token before sending, and a token the server refuses once, and the send succeeds', async () => {
    const carol = await oauthSender();
    // Expired by the clock: refreshed before the SMTP session.
    await store.models.MailAccount.updateOne({ _id: carol.accountId }, { $set: { 'oauth.expiresAt': new Date(Date.now() - 1000) } });
    let refreshes = oidc.grants('refresh_token');
    const first = await sendMessage(deps, carol.viewer, carol.accountId, { to: 'dave@buyer.test', subject: 'After expiry', text: 'one' });
    assert.equal(first.status, 'sent');
    assert.equal(oidc.grants('refresh_token'), refreshes + 1, 'one refresh');
    await remember(carol.accountId);

    // Expired at the provider while our clock still trusts it: the server refuses it → one refresh → the session is repeated.
    oidc.dropAccessTokens(carol.email);
    refreshes = oidc.grants('refresh_token');
    const second = await sendMessage(deps, carol.viewer, carol.accountId, { to: 'dave@buyer.test', subject: 'After refusal', text: 'two' });
    assert.equal(second.status, 'sent', second.queuedBecause);
    assert.equal(oidc.grants('refresh_token'), refreshes + 1, 'exactly one refresh');
    await remember(carol.accountId);

    assert.deepEqual(subjects(carol.email), ['After expiry', 'After refusal']);
    assert.equal((await sentMessages(carol.accountId)).length, 2);
    const view = await getMailAccount(store, carol.viewer, carol.accountId);
    assert.deepEqual(view?.oauth, { provider: 'oidc', status: 'ok' });
  });

  it('queues the message (202-style "queued") while the provider cannot hand out a token, nothing sent or stored yet', async () => {
    const erin = await oauthSender();
    // What a failed refresh leaves behind (tokens.ts backoff): the token expired, the next refresh not before retryAfter.
    await store.models.MailAccount.updateOne({ _id: erin.accountId }, {
      $set: { 'oauth.expiresAt': new Date(Date.now() - 1000), 'oauth.failures': 1, 'oauth.retryAfter': new Date(Date.now() + 3_600_000), 'oauth.lastError': 'Test SSO could not be reached (ECONNREFUSED). Postroom retries later.' },
    });
    const before = received.length;
    const result = await sendMessage(deps, erin.viewer, erin.accountId, { to: 'frank@buyer.test', subject: 'Later', text: 'x' });
    assert.equal(result.status, 'queued');
    assert.match(result.queuedBecause, /could not be reached/);
    assert.ok(result.nextAttemptAt && result.nextAttemptAt.getTime() > Date.now());
    assert.equal(received.length, before);
    assert.equal((await sentMessages(erin.accountId)).length, 0);
    const entry = await store.models.Outbox.findById(result.outboxId).lean();
    assert.equal(entry?.lastErrorCode, 'OAUTH_PROVIDER_UNAVAILABLE');
    assert.deepEqual(entry?.recipients.map((r) => r.state), ['deferred']);
    const account = await store.models.MailAccount.findById(erin.accountId).lean();
    assert.equal(account?.smtp?.status, 'authenticated', 'a provider outage does not fail the SMTP login');
    assert.equal(account?.oauth?.status, 'ok');
  });

  it('a revoked grant fails the send with 422 OAUTH_REAUTH_NEEDED, stores nothing as sent, and does not keep asking the provider', async () => {
    const dave = await oauthSender();
    await oidc.revokeGrants(dave.email);
    const before = received.length;
    await assert.rejects(
      sendMessage(deps, dave.viewer, dave.accountId, { to: 'erin@buyer.test', subject: 'Never sent', text: 'x' }),
      (err: unknown) => err instanceof AppError && err.code === 'OAUTH_REAUTH_NEEDED' && err.status === 422 && /again/i.test(err.message),
    );
    assert.equal(received.length, before, 'nothing reached the server');
    assert.equal((await sentMessages(dave.accountId)).length, 0, 'nothing stored as sent');
    const entry = await store.models.Outbox.findOne({ accountId: new mongoose.Types.ObjectId(dave.accountId) }).lean();
    assert.equal(entry?.status, 'failed');
    assert.equal(entry?.lastErrorCode, 'OAUTH_REAUTH_NEEDED');
    const view = await getMailAccount(store, dave.viewer, dave.accountId);
    assert.deepEqual(view?.oauth, { provider: 'oidc', status: 'reauth_needed' });

    // The next send is refused up front: no SMTP session, no token request.
    const tokenRequests = oidc.requests('/token');
    await assert.rejects(
      sendMessage(deps, dave.viewer, dave.accountId, { to: 'erin@buyer.test', subject: 'Still not', text: 'x' }),
      (err: unknown) => err instanceof AppError && err.code === 'ACCOUNT_NOT_SENDABLE' && /re-authorisation needed/.test(err.message),
    );
    assert.equal(oidc.requests('/token'), tokenRequests, 'no further refresh attempts');
    assert.equal(received.length, before);
  });

  it('API: POST /accounts/{id}/imap/authenticate logs an OAuth2 account in with its token (not a password), and shows oauth {provider, status} but never a token', async () => {
    const account = await createAccount(store);
    oidc.addUser(account.email, 'provider-pw');
    await dovecot.addUser(account.email, `harness-${account.accountId}`);
    await store.models.MailAccount.updateOne({ _id: account.accountId }, { $set: { 'imap.host': dovecot.host, 'imap.port': dovecot.tlsPort, 'imap.status': 'unverified' } });
    await signIn(oauth, oidc, account, 'provider-pw');
    await remember(account.accountId);
    const owner = await store.models.User.findById(account.userId).lean();
    const { token } = await createApiToken(store, owner!.email, { name: 'oauth-test' }, SYSTEM_ACTOR);
    const { app } = buildApp(store, { config, secretBox, log: oauth.log });
    const api = (method: 'get' | 'post', path: string) => request(app)[method](`/api/v1${path}`).set('Authorization', `Bearer ${token}`);

    const ok = await api('post', `/accounts/${account.accountId}/imap/authenticate`);
    // The password branch would answer 400 "imap.password is needed": there is none.
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body, { authenticated: true });
    const audit = await store.models.AuditEvent.findOne({ targetId: account.accountId, action: 'account.imap.authenticated' }).lean();
    assert.equal((audit?.details as { method?: string } | undefined)?.method, 'oauth2:oidc');

    const shown = await api('get', `/accounts/${account.accountId}`).expect(200);
    assert.equal(shown.body.imap.status, 'authenticated');
    assert.deepEqual(shown.body.oauth, { provider: 'oidc', status: 'ok' });
    for (const secret of tokens) assert.ok(!shown.text.includes(secret), 'no token in the API answer');

    await oidc.revokeGrants(account.email);
    const refused = await api('post', `/accounts/${account.accountId}/imap/authenticate`).expect(422);
    assert.equal(refused.body.error.code, 'OAUTH_REAUTH_NEEDED');
    const after = await api('get', `/accounts/${account.accountId}`).expect(200);
    assert.deepEqual(after.body.oauth, { provider: 'oidc', status: 'reauth_needed' });
  });

  it('leaves no access or refresh token in any log line', () => {
    assert.ok(tokens.size >= 6, `collected only ${tokens.size} tokens: the scan would prove little`);
    assert.ok(capture.lines.length > 0, 'the code under test logged nothing: the scan would prove nothing');
    const text = capture.text;
    for (const secret of tokens) assert.ok(!text.includes(secret), 'a token appears in the logs');
  });
});
