import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { AppError } from '../../gateway/core/errors';
import { isSmtpAuthFailure, withAccessToken, type OAuthDeps } from '../../gateway/oauth';
import { ensureTestCertificates } from '../support/certs';
import { startOidcServer, type OidcServer } from '../support/oidc';
import { openTestStore } from '../support/store';
import { CALLBACK_URL, LogCapture, createAccount, oauthConfig, oauthDeps, signIn } from './helpers';

type TestStore = Awaited<ReturnType<typeof openTestStore>>;

/**
 * Sending with OAuth2 (what the send feature will do): nodemailer's SMTP
 * AUTH XOAUTH2 with a token from getAccessToken, against a submission server
 * (npm smtp-server over implicit TLS) that validates tokens at the test
 * authorisation server's introspection endpoint, like Gmail/Outlook do.
 */
describe('SMTP submission with OAuth2 (nodemailer XOAUTH2)', () => {
  let store: TestStore;
  let oidc: OidcServer;
  let deps: OAuthDeps;
  let smtp: SMTPServer;
  let port: number;
  const received: Array<{ user: string; raw: string }> = [];
  const capture = new LogCapture();

  before(async () => {
    store = await openTestStore('oauth_smtp');
    oidc = await startOidcServer({ redirectUris: [CALLBACK_URL] });
    deps = oauthDeps(store, oauthConfig(oidc), { capture });
    const certs = ensureTestCertificates();
    smtp = new SMTPServer({
      secure: true,
      key: fs.readFileSync(certs.keyFile),
      cert: fs.readFileSync(certs.certFile),
      authMethods: ['XOAUTH2'],
      logger: false,
      onAuth(auth, _session, callback) {
        oidc.introspect(auth.accessToken ?? '').then((answer) => {
          if (answer.active === true && answer.username === auth.username) return callback(null, { user: auth.username });
          // RFC 7628 §3.2.2 error payload (Gmail's XOAUTH2 answers the same way).
          callback(null, { data: { status: '401', schemes: 'bearer', scope: 'smtp' } } as never);
        }, (err: Error) => callback(err));
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          received.push({ user: String(session.user), raw: Buffer.concat(chunks).toString('utf8') });
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', () => resolve()));
    port = (smtp.server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise<void>((resolve) => smtp?.close(() => resolve()));
    await oidc?.stop();
    await store?.drop();
  });

  async function send(accountId: string, user: string, subject: string): Promise<string> {
    return withAccessToken(deps, accountId, async (accessToken) => {
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: true, auth: { type: 'OAuth2', user, accessToken } });
      try {
        const info = await transport.sendMail({ from: user, to: 'alice@customer.test', subject, text: 'Hello from Postroom' });
        return info.response;
      } finally {
        transport.close();
      }
    }, { isAuthFailure: isSmtpAuthFailure, describe: (err) => (err as { response?: string }).response ?? '' });
  }

  it('sends with the access token, refreshing once when the server refuses it', async () => {
    const account = await createAccount(store);
    oidc.addUser(account.email, 'pw');
    await signIn(deps, oidc, account, 'pw');
    assert.match(await send(account.accountId, account.email, 'first'), /^250/);

    oidc.dropAccessTokens(account.email);
    const refreshes = oidc.grants('refresh_token');
    assert.match(await send(account.accountId, account.email, 'second'), /^250/);
    assert.equal(oidc.grants('refresh_token'), refreshes + 1);
    const mine = received.filter((m) => m.user === account.email);
    assert.deepEqual(mine.map((m) => /^Subject: (.*)$/m.exec(m.raw)?.[1]?.trim()), ['first', 'second']);
  });

  it('stops with "re-authorisation needed" once the grant is revoked', async () => {
    const account = await createAccount(store);
    oidc.addUser(account.email, 'pw');
    await signIn(deps, oidc, account, 'pw');
    await oidc.revokeGrants(account.email);
    await assert.rejects(send(account.accountId, account.email, 'never'), (err: unknown) => err instanceof AppError && err.code === 'OAUTH_REAUTH_NEEDED');
    assert.equal(received.filter((m) => m.user === account.email).length, 0);
    const requests = oidc.requests('/token');
    await assert.rejects(send(account.accountId, account.email, 'never'), (err: unknown) => err instanceof AppError && err.code === 'OAUTH_REAUTH_NEEDED');
    assert.equal(oidc.requests('/token'), requests, 'no further refresh attempts');
  });
});
