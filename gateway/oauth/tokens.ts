import mongoose from 'mongoose';
import * as oidc from 'openid-client';
import { randomToken, SecretBoxError } from '../core/crypto';
import { AppError, isAppError, notFound, isDuplicateKeyError } from '../core/errors';
import type { Store } from '../store';
import { grantEndpoints, providerConfiguration } from './client';
import { now, tuning, type OAuthDeps } from './deps';
import { classifyTokenFailure, clean, failureError, providerUnavailable, type TokenFailure } from './errors';
import { assertConfigured, isProviderId, providerDefaults, resolveProvider, type ResolvedProvider } from './providers';
import { tokenFields } from './token-response';

/**
 * Access tokens for IMAP/SMTP, refreshed from the sealed refresh token
 * (RFC 6749 §6) shortly before they expire and on demand after a server
 * rejected one. One refresh at a time per account: concurrent callers in a
 * process share one promise, and processes take a per-account lock row (a
 * unique insert, the one conditional write FerretDB makes atomic), because
 * providers that rotate refresh tokens (Microsoft,
 * most OIDC servers) treat a second use of the old one as theft and may
 * revoke the whole grant (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).
 *
 * A refused grant (invalid_grant) marks the account 'reauth_needed' and from
 * then on nothing calls the provider for it until the user signs in again;
 * other failures back off exponentially. Tokens are never logged.
 */

type ObjectId = mongoose.Types.ObjectId;

export interface AccessToken {
  accessToken: string;
  expiresAt: Date;
}

/** The OAuth part of a MailAccount as read here (lean). */
interface OAuthState {
  provider?: string | null;
  refreshTokenEnc?: string | null;
  accessTokenEnc?: string | null;
  expiresAt?: Date | null;
  refreshedAt?: Date | null;
  status?: string | null;
  lastError?: string | null;
  lastErrorCode?: string | null;
  failures?: number | null;
  retryAfter?: Date | null;
  tokenEndpoint?: string | null;
}

interface AccountRow {
  _id: ObjectId;
  email?: string;
  oauth?: OAuthState | null;
}

/** In-process single flight, per store (= per process in production; tests open several). */
const flights = new WeakMap<Store, Map<string, Promise<AccessToken>>>();

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function toObjectId(accountId: string | ObjectId): ObjectId {
  if (typeof accountId !== 'string') return accountId;
  if (!/^[0-9a-f]{24}$/i.test(accountId)) throw notFound('mail account');
  return new mongoose.Types.ObjectId(accountId.toLowerCase());
}

async function loadAccount(deps: OAuthDeps, id: ObjectId): Promise<AccountRow | null> {
  return deps.store.models.MailAccount.findById(id, { email: 1, oauth: 1 }).lean() as Promise<AccountRow | null>;
}

function labelOf(provider: string | null | undefined): string {
  return isProviderId(provider) ? providerDefaults(provider).label : 'the provider';
}

/** The stored access token if it is valid for at least `minValidityMs` more and is not the one a server just rejected. */
function storedToken(deps: OAuthDeps, account: AccountRow, minValidityMs: number, rejected: string | undefined): AccessToken | null {
  const oauth = account.oauth;
  if (!oauth?.accessTokenEnc || !oauth.expiresAt || oauth.status !== 'ok') return null;
  // A token that lives shorter than twice the skew is refreshed at half its life, not at once.
  const lifetime = oauth.refreshedAt ? oauth.expiresAt.getTime() - oauth.refreshedAt.getTime() : Infinity;
  const margin = Math.min(minValidityMs, lifetime / 2);
  if (oauth.expiresAt.getTime() - now(deps).getTime() <= margin) return null;
  let accessToken: string;
  try {
    accessToken = deps.secretBox.open(oauth.accessTokenEnc, account._id.toHexString());
  } catch (err) {
    if (err instanceof SecretBoxError) return null; // unreadable: a refresh replaces it
    throw err;
  }
  if (rejected !== undefined && accessToken === rejected) return null;
  return { accessToken, expiresAt: oauth.expiresAt };
}

/** During a backoff a token is still handed out while it lasts; this margin covers one login. */
const BACKOFF_MIN_VALIDITY_MS = 10_000;

/**
 * Either a token to use now, or null = a refresh is needed and allowed.
 * Throws when the account cannot get one (no OAuth, re-authorisation needed,
 * backing off after a failure).
 */
function decide(deps: OAuthDeps, account: AccountRow | null, rejected: string | undefined): AccessToken | null {
  if (!account) throw notFound('mail account');
  const oauth = account.oauth;
  if (!oauth?.provider) throw new AppError('OAUTH_NOT_CONNECTED', `${account.email ?? 'This account'} is not connected with OAuth2 (it signs in with a password).`, { status: 409 });
  const label = labelOf(oauth.provider);
  if (oauth.status === 'reauth_needed') {
    throw new AppError('OAUTH_REAUTH_NEEDED', oauth.lastError || `Re-authorisation needed: sign in with ${label} again.`, { status: 409 });
  }
  const fresh = storedToken(deps, account, tuning(deps).refreshSkewMs, rejected);
  if (fresh) return fresh;
  const retryAfter = oauth.retryAfter?.getTime() ?? 0;
  if (retryAfter > now(deps).getTime()) {
    const lasting = storedToken(deps, account, BACKOFF_MIN_VALIDITY_MS, rejected);
    if (lasting) return lasting;
    const code = oauth.lastErrorCode === 'OAUTH_CLIENT_REJECTED' ? 'OAUTH_CLIENT_REJECTED' : 'OAUTH_PROVIDER_UNAVAILABLE';
    throw new AppError(code, `${oauth.lastError || `${label} could not be reached.`} Next attempt after ${new Date(retryAfter).toISOString()}.`, { status: code === 'OAUTH_CLIENT_REJECTED' ? 502 : 503 });
  }
  return null;
}

export interface GetAccessTokenOptions {
  /** The token a server just refused: refresh unless the stored one is already another. */
  rejectedToken?: string;
}

/**
 * A valid access token for the account, refreshing it when it expires
 * within the skew (5 minutes) or when `rejectedToken` is the stored one.
 * Throws AppError OAUTH_REAUTH_NEEDED (409) without contacting the provider
 * once the grant was refused, OAUTH_PROVIDER_UNAVAILABLE (503) /
 * OAUTH_CLIENT_REJECTED (502) while backing off, OAUTH_NOT_CONNECTED (409)
 * for a password account.
 */
export async function getAccessToken(deps: OAuthDeps, accountId: string | ObjectId, options: GetAccessTokenOptions = {}): Promise<AccessToken> {
  const id = toObjectId(accountId);
  const ready = decide(deps, await loadAccount(deps, id), options.rejectedToken);
  if (ready) return ready;
  let byAccount = flights.get(deps.store);
  if (!byAccount) {
    byAccount = new Map();
    flights.set(deps.store, byAccount);
  }
  const key = id.toHexString();
  const inFlight = byAccount.get(key);
  if (inFlight) return inFlight;
  const flight = refreshUnderLock(deps, id, options.rejectedToken).finally(() => byAccount.delete(key));
  byAccount.set(key, flight);
  return flight;
}


/**
 * Take the account's refresh lock (insert wins exactly once, see
 * models/oauth-refresh-lock.ts). A lock past its `until` belonged to a
 * process that died mid-refresh: it is removed by its lockId, then retaken.
 */
async function tryLock(deps: OAuthDeps, key: string, lockId: string): Promise<boolean> {
  const Lock = deps.store.models.OAuthRefreshLock;
  const at = now(deps);
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      await Lock.create({ _id: key, lockId, until: new Date(at.getTime() + tuning(deps).refreshLockMs) });
      return true;
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
    }
    const held = await Lock.findById(key).lean();
    if (held && held.until.getTime() > at.getTime()) return false;
    if (held) await Lock.deleteOne({ _id: key, lockId: held.lockId });
  }
  return false;
}

async function refreshUnderLock(deps: OAuthDeps, id: ObjectId, rejected: string | undefined): Promise<AccessToken> {
  const limits = tuning(deps);
  const lockId = randomToken(12);
  const key = id.toHexString();
  const giveUpAt = Date.now() + 2 * limits.refreshLockMs;
  for (;;) {
    if (await tryLock(deps, key, lockId)) {
      try {
        // Another process may have refreshed between our read and the lock.
        const account = await loadAccount(deps, id);
        const ready = decide(deps, account, rejected);
        if (ready) return ready;
        return await refreshAtProvider(deps, account!);
      } finally {
        await deps.store.models.OAuthRefreshLock.deleteOne({ _id: key, lockId }).catch(() => undefined);
      }
    }
    // Another process is refreshing: wait for its result.
    await sleep(limits.refreshPollMs);
    const ready = decide(deps, await loadAccount(deps, id), rejected);
    if (ready) return ready;
    if (Date.now() > giveUpAt) {
      const account = await loadAccount(deps, id);
      throw providerUnavailable({ label: labelOf(account?.oauth?.provider) }, 'another Postroom process has been refreshing the access token for too long');
    }
  }
}

function backoffMs(failures: number, deps: OAuthDeps): number {
  const { backoffBaseMs, backoffCapMs } = tuning(deps);
  return Math.min(backoffCapMs, backoffBaseMs * 2 ** Math.min(Math.max(failures - 1, 0), 20));
}

async function refreshAtProvider(deps: OAuthDeps, account: AccountRow): Promise<AccessToken> {
  const oauth = account.oauth!;
  const accountId = account._id.toHexString();
  const log = deps.log.child({ component: 'oauth', accountId, provider: oauth.provider });
  // Writes are conditional on the refresh token we used: a re-authorisation
  // that lands meanwhile must not be overwritten by this older grant's fate.
  const filter = { _id: account._id, 'oauth.refreshTokenEnc': oauth.refreshTokenEnc ?? '' };
  const at = now(deps);

  const fail = async (failure: TokenFailure): Promise<never> => {
    if (failure.kind === 'grant') {
      await deps.store.models.MailAccount.updateOne(filter, {
        $set: {
          'oauth.status': 'reauth_needed', 'oauth.refreshTokenEnc': '', 'oauth.accessTokenEnc': '', 'oauth.expiresAt': null,
          'oauth.lastError': failure.message, 'oauth.lastErrorCode': 'OAUTH_REAUTH_NEEDED', 'oauth.lastErrorAt': at,
          'oauth.failures': 0, 'oauth.retryAfter': null,
        },
      });
      log.warn({ code: failure.code }, 'oauth grant refused: re-authorisation needed');
      throw failureError(failure);
    }
    const failures = (oauth.failures ?? 0) + 1;
    const retryAfter = new Date(at.getTime() + backoffMs(failures, deps));
    const error = failureError(failure);
    await deps.store.models.MailAccount.updateOne(filter, {
      $set: { 'oauth.lastError': failure.message, 'oauth.lastErrorCode': error.code, 'oauth.lastErrorAt': at, 'oauth.failures': failures, 'oauth.retryAfter': retryAfter },
    });
    log.warn({ code: failure.code, kind: failure.kind, failures, retryAfter }, 'oauth token refresh failed; backing off');
    throw error;
  };

  let provider: ResolvedProvider;
  try {
    provider = await resolveProvider(deps, oauth.provider as ResolvedProvider['id']);
  } catch (err) {
    if (isAppError(err)) return fail({ kind: 'client', code: err.code, detail: err.code, message: err.message });
    throw err;
  }
  let refreshToken = '';
  try {
    refreshToken = oauth.refreshTokenEnc ? deps.secretBox.open(oauth.refreshTokenEnc, accountId) : '';
  } catch (err) {
    if (!(err instanceof SecretBoxError)) throw err;
  }
  if (!refreshToken) {
    return fail({ kind: 'grant', code: 'no_refresh_token', detail: 'no readable refresh token', message: `The stored ${provider.label} authorisation cannot be read (was SECRET_KEY changed?). Sign in with ${provider.label} again.` });
  }
  try {
    assertConfigured(provider); // says what is missing (a client id, or the issuer/endpoints) and where to set it
  } catch (err) {
    if (isAppError(err)) return fail({ kind: 'client', code: err.code, detail: err.code, message: err.message });
    throw err;
  }

  // Discovery or the token request failed: a configuration the admin must fix, or one the provider may recover from.
  const failedAtProvider = (err: unknown) => {
    if (!isAppError(err)) return fail(classifyTokenFailure(provider, err));
    const kind = err.code === 'OAUTH_NOT_CONFIGURED' ? 'client' : 'transient';
    return fail({ kind, code: err.code, detail: err.code, message: err.message });
  };
  let config: oidc.Configuration;
  try {
    config = await providerConfiguration(provider, { timeoutS: tuning(deps).httpTimeoutS });
  } catch (err) {
    return failedAtProvider(err);
  }
  // The refresh token goes only to the endpoint that issued it: one changed since (Preferences → Business) could
  // be anyone's server, and the token with the client's credentials reads the mailbox.
  const endpoints = grantEndpoints(config);
  if (oauth.tokenEndpoint && endpoints['oauth.tokenEndpoint'] !== oauth.tokenEndpoint) {
    return fail({
      kind: 'grant', code: 'token_endpoint_changed', detail: `token endpoint is now ${endpoints['oauth.tokenEndpoint']}, granted by ${oauth.tokenEndpoint}`,
      message: `${provider.label}'s sign-in settings changed since this mailbox signed in (its token endpoint is now ${endpoints['oauth.tokenEndpoint']}), so the stored authorisation is not sent there. Sign in with ${provider.label} again.`,
    });
  }
  let tokens: oidc.TokenEndpointResponse;
  try {
    tokens = await oidc.refreshTokenGrant(config, refreshToken);
  } catch (err) {
    return failedAtProvider(err);
  }

  const fields: Record<string, unknown> = {
    ...tokenFields(deps, accountId, tokens, at),
    // A grant from before endpoints were recorded is bound to the ones that just honoured it.
    ...(oauth.tokenEndpoint ? {} : endpoints),
    'oauth.failures': 0, 'oauth.retryAfter': null, 'oauth.lastError': '', 'oauth.lastErrorCode': '', 'oauth.lastErrorAt': null,
  };
  // RFC 6749 §6: the server MAY issue a new refresh token and revoke the old one.
  const rotated = Boolean(tokens.refresh_token) && tokens.refresh_token !== refreshToken;
  if (rotated) fields['oauth.refreshTokenEnc'] = deps.secretBox.seal(tokens.refresh_token!, accountId);
  if (tokens.scope) fields['oauth.scope'] = tokens.scope;
  const written = await deps.store.models.MailAccount.updateOne(filter, { $set: fields });
  const expiresAt = fields['oauth.expiresAt'] as Date;
  if (written.matchedCount === 0) log.warn('account re-authorised or disconnected during the refresh; the new token is used once and not stored');
  else log.info({ expiresAt, rotated }, 'oauth access token refreshed');
  return { accessToken: tokens.access_token, expiresAt };
}

export interface AuthFailureInput {
  /** The token the server refused (after a refresh): ignored when the account holds another by now. */
  accessToken?: string;
  /** What the server said, e.g. imapflow's responseText; shown to the user. */
  reason?: string;
}

/**
 * The IMAP/SMTP server refused a freshly refreshed token: only the user can
 * fix that (re-consent, or enable IMAP for the mailbox), so the account is
 * marked 'reauth_needed' and nothing retries. Returns whether it was marked
 * (false when the account already holds a different token or no OAuth).
 */
export async function markAuthFailure(deps: OAuthDeps, accountId: string | ObjectId, input: AuthFailureInput = {}): Promise<{ marked: boolean }> {
  const id = toObjectId(accountId);
  const account = await loadAccount(deps, id);
  const oauth = account?.oauth;
  if (!account || !oauth?.provider || oauth.status !== 'ok') return { marked: false };
  if (input.accessToken !== undefined) {
    const current = storedToken(deps, account, -Infinity, undefined);
    if (current && current.accessToken !== input.accessToken) return { marked: false };
  }
  const label = isProviderId(oauth.provider) ? (await resolveProvider(deps, oauth.provider).catch(() => null))?.label ?? labelOf(oauth.provider) : labelOf(oauth.provider);
  const said = input.reason ? ` ("${clean(input.reason)}")` : '';
  const message = `The mail server refused a fresh ${label} access token${said}. Sign in with ${label} again, and check that IMAP/SMTP access is enabled for this mailbox.`;
  const at = now(deps);
  const result = await deps.store.models.MailAccount.updateOne(
    { _id: id, 'oauth.status': 'ok', 'oauth.accessTokenEnc': oauth.accessTokenEnc ?? '' },
    { $set: { 'oauth.status': 'reauth_needed', 'oauth.accessTokenEnc': '', 'oauth.expiresAt': null, 'oauth.lastError': message, 'oauth.lastErrorCode': 'OAUTH_REAUTH_NEEDED', 'oauth.lastErrorAt': at } },
  );
  const marked = result.matchedCount === 1;
  if (marked) deps.log.child({ component: 'oauth', accountId: id.toHexString(), provider: oauth.provider }).warn('mail server refused a fresh access token: re-authorisation needed');
  return { marked };
}

export interface WithAccessTokenOptions {
  /** Does this error mean the server refused the token (not a network or TLS problem)? */
  isAuthFailure: (err: unknown) => boolean;
  /** The server's words for markAuthFailure (e.g. err.responseText). */
  describe?: (err: unknown) => string;
}

/**
 * Run `use(token)` (a login) with a valid token; if the server refuses it,
 * refresh once and try again; if the fresh token is refused too, mark the
 * account 're-authorisation needed' and rethrow. At most two logins and one
 * refresh per call, so a revoked grant cannot cause a retry storm.
 */
export async function withAccessToken<T>(deps: OAuthDeps, accountId: string | ObjectId, use: (accessToken: string) => Promise<T>, options: WithAccessTokenOptions): Promise<T> {
  const first = await getAccessToken(deps, accountId);
  try {
    return await use(first.accessToken);
  } catch (err) {
    if (!options.isAuthFailure(err)) throw err;
  }
  const second = await getAccessToken(deps, accountId, { rejectedToken: first.accessToken });
  try {
    return await use(second.accessToken);
  } catch (err) {
    if (options.isAuthFailure(err)) await markAuthFailure(deps, accountId, { accessToken: second.accessToken, reason: options.describe?.(err) });
    throw err;
  }
}
