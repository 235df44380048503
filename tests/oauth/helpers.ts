/**
 * Fixtures for the OAuth2 tests: a configuration pointing a provider at the
 * test authorisation server, OAuth deps with a captured log, accounts, and
 * "sign in" = the real flow (startAuthorization → the provider's login and
 * consent pages → completeAuthorization).
 */
import crypto from 'node:crypto';
import { Writable } from 'node:stream';
import { loadConfig, type Config } from '../../gateway/core/config';
import { randomToken, SecretBox } from '../../gateway/core/crypto';
import { createLogger } from '../../gateway/core/log';
import { completeAuthorization, startAuthorization, type OAuthDeps, type OAuthTuning } from '../../gateway/oauth';
import type { Store } from '../../gateway/store';
import type { OidcServer } from '../support/oidc';

export const TEST_SECRET_KEY = crypto.randomBytes(32);
export const PUBLIC_URL = 'https://postroom.test';
export const CALLBACK_URL = `${PUBLIC_URL}/oauth/callback`;

export function uniqueEmail(prefix: string): string {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}@acme.test`;
}

/** Config with the generic provider pointed at the test server by issuer (endpoints discovered). */
export function oauthConfig(oidc: OidcServer, env: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    SECRET_KEY: TEST_SECRET_KEY.toString('hex'),
    PUBLIC_URL,
    LOG_LEVEL: 'silent',
    OAUTH_OIDC_ISSUER: oidc.issuer,
    OAUTH_OIDC_CLIENT_ID: oidc.clientId,
    OAUTH_OIDC_CLIENT_SECRET: oidc.clientSecret,
    OAUTH_OIDC_SCOPES: 'openid email offline_access imap smtp',
    OAUTH_OIDC_LABEL: 'Test SSO',
    ...env,
  });
}

/** Every line the code under test logs, at trace level, for the "no token in logs" scans. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
  get text(): string {
    return this.lines.join('\n');
  }
  records(): Array<Record<string, unknown>> {
    return this.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

export function oauthDeps(store: Store, config: Config, options: { capture?: LogCapture; tuning?: Partial<OAuthTuning> } = {}): OAuthDeps {
  const log = createLogger({ level: 'trace', pretty: false, destination: options.capture ?? new LogCapture() });
  return { store, log, secretBox: new SecretBox(TEST_SECRET_KEY), config, tuning: options.tuning };
}

export async function createAccount(store: Store, email = uniqueEmail('bob')): Promise<{ userId: string; accountId: string; email: string }> {
  const owner = await store.models.User.create({ email: `owner-${email}`, dropboxToken: randomToken(12) });
  const token = randomToken(12).toLowerCase().replace(/[^a-z0-9]/g, 'x');
  const account = await store.models.MailAccount.create({
    ownerId: owner._id,
    email,
    domain: email.split('@')[1],
    forwardingToken: token,
    forwardingAddress: `${email.replace(/[^a-z0-9]/gi, '-')}.${token}@in.postroom.test`,
    imap: { enabled: true, service: 'custom', host: '127.0.0.1', port: 993, tls: 'implicit', username: email, status: 'authenticated' },
  });
  return { userId: owner._id.toHexString(), accountId: account._id.toHexString(), email };
}

export interface SignedIn {
  callback: URL;
  result: Awaited<ReturnType<typeof completeAuthorization>>;
}

/** The whole flow as a user walks it: click, sign in at the provider, allow, come back. */
export async function signIn(deps: OAuthDeps, oidc: OidcServer, account: { userId: string; accountId: string; email: string }, password: string, provider = 'oidc'): Promise<SignedIn> {
  const { redirectUrl } = await startAuthorization(deps, { userId: account.userId, accountId: account.accountId, provider });
  const callback = await oidc.authorize(redirectUrl, { login: account.email, password });
  const params = callback.searchParams;
  const result = await completeAuthorization(deps, {
    userId: account.userId,
    state: params.get('state') ?? undefined,
    code: params.get('code') ?? undefined,
    iss: params.get('iss') ?? undefined,
    error: params.get('error') ?? undefined,
    errorDescription: params.get('error_description') ?? undefined,
  });
  return { callback, result };
}
