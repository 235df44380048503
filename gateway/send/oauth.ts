import type { Config } from '../core/config';
import type { SecretBox } from '../core/crypto';
import { AppError, isAppError } from '../core/errors';
import type { Logger } from '../core/log';
import type { ObjectId } from '../accounts/ids';
import { withAccessToken, type OAuthDeps } from '../oauth';
import type { Store } from '../store';
import type { SmtpSettings } from './settings';
import type { ClassifiedSmtpError } from './smtp-errors';

/**
 * Sending from an account signed in with OAuth2 (gateway/oauth): every SMTP
 * session (Authenticate SMTP, a send, a retry) gets a valid access token,
 * and a token the server refuses is refreshed once and the session retried
 * (withAccessToken); a fresh token refused too marks the account
 * "re-authorisation needed". Tokens only ever travel in the SASL exchange.
 */

/** What the send side adds to reach gateway/oauth. */
export interface SendOAuthOptions {
  /** PUBLIC_URL and the OAUTH_* settings from the environment (Preferences → Business applies without them). */
  oauthConfig?: Pick<Config, 'publicUrl' | 'oauth'>;
  oauthTuning?: OAuthDeps['tuning'];
  clock?: () => Date;
}

const NO_OAUTH_ENV: Pick<Config, 'publicUrl' | 'oauth'> = { publicUrl: '', oauth: { google: {}, microsoft: {}, oidc: {} } };

export function sendOAuthDeps(deps: { store: Store; log: Logger; secretBox: SecretBox } & SendOAuthOptions): OAuthDeps {
  return { store: deps.store, log: deps.log, secretBox: deps.secretBox, config: deps.oauthConfig ?? NO_OAUTH_ENV, tuning: deps.oauthTuning, clock: deps.clock };
}

/**
 * The server refused the token: nodemailer's EAUTH with a permanent reply
 * (535 5.7.8, or 534). A 454 is a temporary failure to check credentials
 * (RFC 4954 §6): no refresh for it, and certainly no re-authorisation.
 */
export function isSmtpTokenRefused(err: unknown): boolean {
  const e = err as { code?: string; responseCode?: number } | null;
  if (e?.code !== 'EAUTH') return false;
  const reply = e.responseCode ?? 0;
  return !(reply >= 400 && reply < 500);
}

/**
 * Run one SMTP session with the account's credentials: as is for a password
 * login; for OAuth2 with an access token put into `settings.auth`, refreshed
 * once if the server refuses it. OAuth failures reject with gateway/oauth's
 * AppErrors (OAUTH_REAUTH_NEEDED, OAUTH_PROVIDER_UNAVAILABLE, …).
 */
export async function withSmtpLogin<T>(
  deps: { store: Store; log: Logger; secretBox: SecretBox } & SendOAuthOptions,
  accountId: ObjectId | string,
  settings: SmtpSettings,
  use: (session: SmtpSettings) => Promise<T>,
): Promise<T> {
  const auth = settings.auth;
  if (auth.type !== 'oauth2') return use(settings);
  return withAccessToken(sendOAuthDeps(deps), accountId, (accessToken) => use({ ...settings, auth: { ...auth, accessToken } }), {
    isAuthFailure: isSmtpTokenRefused,
    describe: (err) => (err as { response?: string }).response ?? '',
  });
}

/**
 * What an OAuth2 failure means for a send, or null when `err` is not one:
 * the provider unreachable or our client refused (an admin can fix it) are
 * worth retrying later, so the outbox queues; a grant that is gone
 * (OAUTH_REAUTH_NEEDED) or no longer there (OAUTH_NOT_CONNECTED) needs the
 * user and fails the send (422, like a refused password).
 */
export function classifyOAuthSendError(err: unknown): ClassifiedSmtpError | null {
  if (!isAppError(err) || !err.code.startsWith('OAUTH_')) return null;
  const transient = err.code === 'OAUTH_PROVIDER_UNAVAILABLE' || err.code === 'OAUTH_CLIENT_REJECTED';
  return { error: new AppError(err.code, err.message, { status: transient ? err.status : 422 }), transient, serverReply: '' };
}

/**
 * The server refused even a freshly refreshed token (withAccessToken has
 * marked the account): only signing in again helps. The message is the one
 * stored on the account, which names the provider and the server's words.
 */
export async function tokenRefusedError(store: Store, accountId: ObjectId | string, fallback: string): Promise<ClassifiedSmtpError> {
  const marked = await store.models.MailAccount.findById(accountId, { oauth: 1 }).lean();
  const message = marked?.oauth?.lastError || `${fallback} Sign in with the provider again.`;
  return { error: new AppError('OAUTH_REAUTH_NEEDED', message, { status: 422 }), transient: false, serverReply: '' };
}
