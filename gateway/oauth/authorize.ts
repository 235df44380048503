import * as oidc from 'openid-client';
import { sha256Hex, SecretBoxError } from '../core/crypto';
import { AppError, isAppError, notFound } from '../core/errors';
import { parseObjectId } from '../accounts/ids';
import { grantEndpoints, providerConfiguration } from './client';
import { now, redirectUri, tuning, type OAuthDeps } from './deps';
import { classifyTokenFailure, clean } from './errors';
import { assertConfigured, isProviderId, resolveProvider, type OAuthProviderId, type ResolvedProvider } from './providers';
import { tokenFields } from './token-response';

/**
 * The authorization-code flow with PKCE (RFC 6749 §4.1, RFC 7636 S256) and
 * `state` (RFC 6749 §10.12). The state is random, kept server-side under its
 * SHA-256, bound to the user who clicked and to the account, valid for ten
 * minutes and deleted by the one callback that uses it. The PKCE verifier
 * never leaves the server; the provider sees only its S256 challenge.
 */

const STATE_CONTEXT = (stateHash: string) => `oauth-state:${stateHash}`;

/** Scopes that say how, not what: their absence from a grant does not matter. */
const META_SCOPES = new Set(['offline_access', 'openid', 'email', 'profile']);

export interface StartAuthorizationInput {
  userId: string;
  accountId: string;
  provider: OAuthProviderId | string;
  /** Admins may connect any user's account; others only their own. */
  actingAsAdmin?: boolean;
}

/**
 * Begin "Sign in with …" for one mail account: store a state and return the
 * provider URL to redirect the browser to (303).
 */
export async function startAuthorization(deps: OAuthDeps, input: StartAuthorizationInput): Promise<{ redirectUrl: string; expiresAt: Date }> {
  if (!isProviderId(input.provider)) throw new AppError('OAUTH_UNKNOWN_PROVIDER', `Unknown sign-in provider "${clean(input.provider, 40)}".`, { status: 400 });
  const userId = parseObjectId(input.userId);
  const accountId = parseObjectId(input.accountId);
  if (!userId || !accountId) throw notFound('mail account');
  const account = await deps.store.models.MailAccount.findById(accountId).lean();
  if (!account || (!input.actingAsAdmin && !account.ownerId.equals(userId))) throw notFound('mail account');

  const provider = await resolveProvider(deps, input.provider);
  assertConfigured(provider);
  const config = await providerConfiguration(provider, { timeoutS: tuning(deps).httpTimeoutS });

  const at = now(deps);
  // No TTL index on FerretDB: expired states are swept here, through the expiresAt index.
  await deps.store.models.OAuthState.deleteMany({ expiresAt: { $lte: at } });

  const state = oidc.randomState();
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const codeChallenge = await oidc.calculatePKCECodeChallenge(codeVerifier);
  const stateHash = sha256Hex(state);
  const expiresAt = new Date(at.getTime() + tuning(deps).stateTtlMs);
  const redirect = redirectUri(deps);
  await deps.store.models.OAuthState.create({
    _id: stateHash,
    userId,
    accountId,
    provider: provider.id,
    codeVerifierEnc: deps.secretBox.seal(codeVerifier, STATE_CONTEXT(stateHash)),
    redirectUri: redirect,
    createdAt: at,
    expiresAt,
  });

  const url = oidc.buildAuthorizationUrl(config, {
    ...provider.extraAuthParams,
    response_type: 'code',
    redirect_uri: redirect,
    scope: provider.scopes.join(' '),
    state,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    // Pre-selects the mailbox at Google/Microsoft (OIDC Core §3.1.2.1).
    login_hint: account.email,
  });
  deps.log.child({ component: 'oauth', accountId: accountId.toHexString(), provider: provider.id }).info({ userId: userId.toHexString() }, 'oauth authorization started');
  return { redirectUrl: url.href, expiresAt };
}

export interface CompleteAuthorizationInput {
  /** The signed-in user the callback request belongs to; must be the one who started. */
  userId: string;
  /** Query parameters of the callback (RFC 6749 §4.1.2, RFC 9207 `iss`). */
  state?: string;
  code?: string;
  iss?: string;
  error?: string;
  errorDescription?: string;
}

export interface CompletedAuthorization {
  accountId: string;
  provider: OAuthProviderId;
  scope: string;
  expiresAt: Date;
}

function stateInvalid(): AppError {
  return new AppError('OAUTH_STATE_INVALID', 'This sign-in response is not valid here: it was already used, it expired (after 10 minutes), or another user started it. Start again with the "Sign in with …" button.', { status: 400 });
}

/**
 * Finish the flow at the callback: consume the state (single use), exchange
 * the code with the PKCE verifier, seal the tokens on the account and mark
 * it 'ok'. Resolves with the account id so the route can redirect to it.
 */
export async function completeAuthorization(deps: OAuthDeps, input: CompleteAuthorizationInput): Promise<CompletedAuthorization> {
  const userId = parseObjectId(input.userId);
  if (!input.state || !userId) throw stateInvalid();
  const stateHash = sha256Hex(input.state);
  // Single use: read, then delete by _id and go on only if this call deleted
  // it. A delete by _id has exactly one winner on MongoDB and on FerretDB
  // (whose findOneAndDelete can hand the same row to two racing callers), so
  // a double-submitted callback cannot exchange the code twice — which a
  // provider may punish by revoking the grant (RFC 6749 §4.1.2).
  const pending = await deps.store.models.OAuthState.findOne({ _id: stateHash, userId }).lean();
  if (!pending) throw stateInvalid();
  const consumed = await deps.store.models.OAuthState.deleteOne({ _id: stateHash });
  const at = now(deps);
  if (consumed.deletedCount !== 1 || pending.expiresAt.getTime() <= at.getTime()) throw stateInvalid();
  const accountId = pending.accountId.toHexString();
  try {
    return await exchangeCode(deps, { ...input, state: input.state }, { ...pending, stateHash, accountId, at });
  } catch (err) {
    // The state named the account: the console can send the user back to its page, not to the list.
    if (isAppError(err)) Object.assign(err, { accountId });
    throw err;
  }
}

/** The account a failed callback was for, when its state was valid (see completeAuthorization). */
export function accountOfFailedCallback(err: unknown): string | undefined {
  const accountId = (err as { accountId?: unknown } | null)?.accountId;
  return isAppError(err) && typeof accountId === 'string' ? accountId : undefined;
}

interface ConsumedState {
  stateHash: string;
  accountId: string;
  provider: string;
  codeVerifierEnc: string;
  redirectUri: string;
  at: Date;
}

async function exchangeCode(deps: OAuthDeps, input: CompleteAuthorizationInput & { state: string }, pending: ConsumedState): Promise<CompletedAuthorization> {
  const { stateHash, accountId, at } = pending;
  const providerId = pending.provider as OAuthProviderId;
  const log = deps.log.child({ component: 'oauth', accountId, provider: providerId });
  if (!isProviderId(providerId)) throw stateInvalid();
  const provider = await resolveProvider(deps, providerId);
  const label = provider.label;

  if (input.error) {
    const cancelled = input.error === 'access_denied';
    log.info({ error: clean(input.error, 60) }, 'oauth authorization refused at the provider');
    const detail = input.errorDescription ? ` (${clean(input.errorDescription)})` : '';
    throw new AppError('OAUTH_DENIED', cancelled
      ? `Access was not granted at ${label}${detail}. Nothing changed; sign in again and allow access to connect the mailbox.`
      : `${label} answered the sign-in with an error: ${clean(input.error, 60)}${detail}.`, { status: 400 });
  }
  if (!input.code) throw new AppError('OAUTH_DENIED', `${label} sent no authorization code back. Start again.`, { status: 400 });

  let codeVerifier: string;
  try {
    codeVerifier = deps.secretBox.open(pending.codeVerifierEnc, STATE_CONTEXT(stateHash));
  } catch (err) {
    if (err instanceof SecretBoxError) throw stateInvalid();
    throw err;
  }
  assertConfigured(provider);
  const config = await providerConfiguration(provider, { timeoutS: tuning(deps).httpTimeoutS });

  const callback = new URL(pending.redirectUri);
  callback.searchParams.set('code', input.code);
  callback.searchParams.set('state', input.state);
  if (input.iss) callback.searchParams.set('iss', input.iss);
  let tokens: oidc.TokenEndpointResponse;
  try {
    tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: codeVerifier, expectedState: input.state });
  } catch (err) {
    const failure = classifyTokenFailure(provider, err);
    log.warn({ code: failure.code, kind: failure.kind }, 'oauth code exchange failed');
    if (failure.kind === 'client') throw new AppError('OAUTH_CLIENT_REJECTED', failure.message, { status: 502 });
    const why = failure.kind === 'transient' ? `${provider.label} could not complete it (${failure.detail})` : `${provider.label} refused the authorization code (${failure.detail})`;
    throw new AppError('OAUTH_EXCHANGE_FAILED', `Signing in did not complete: ${why}. Start again.`, { status: failure.kind === 'transient' ? 503 : 400 });
  }

  try {
    checkScopes(provider, tokens.scope);
  } catch (err) {
    log.warn({ scope: tokens.scope ?? '' }, 'oauth grant lacks the mail scopes');
    throw err;
  }
  const account = await deps.store.models.MailAccount.findById(accountId).lean();
  if (!account) throw notFound('mail account');
  const previous = (account as { oauth?: { provider?: string; refreshTokenEnc?: string } }).oauth;
  let refreshTokenEnc: string;
  if (tokens.refresh_token) {
    refreshTokenEnc = deps.secretBox.seal(tokens.refresh_token, accountId);
  } else if (previous?.provider === provider.id && previous.refreshTokenEnc) {
    // Some providers send a refresh token only on the first consent; the earlier one stays valid.
    refreshTokenEnc = previous.refreshTokenEnc;
  } else {
    log.warn('oauth grant came without a refresh token');
    throw new AppError('OAUTH_NO_REFRESH_TOKEN', `${provider.label} granted access but no refresh token, so Postroom could only sync for an hour. Remove Postroom's access in your ${provider.label} account's security settings, then sign in again (the provider must be asked for offline access).`, { status: 502 });
  }
  const fields = tokenFields(deps, accountId, tokens, at);
  const result = await deps.store.models.MailAccount.updateOne({ _id: accountId }, {
    $set: {
      'oauth.provider': provider.id,
      'oauth.refreshTokenEnc': refreshTokenEnc,
      ...fields,
      'oauth.scope': tokens.scope ?? provider.scopes.join(' '),
      'oauth.grantedAt': at,
      ...grantEndpoints(config),
      'oauth.status': 'ok',
      'oauth.lastError': '',
      'oauth.lastErrorCode': '',
      'oauth.lastErrorAt': null,
      'oauth.failures': 0,
      'oauth.retryAfter': null,
    },
  });
  if (result.matchedCount === 0) throw notFound('mail account');
  log.info({ scope: tokens.scope ?? '', expiresAt: fields['oauth.expiresAt'] }, 'oauth authorization completed');
  return { accountId, provider: provider.id, scope: tokens.scope ?? provider.scopes.join(' '), expiresAt: fields['oauth.expiresAt'] };
}

/**
 * Google's granular consent lets a user untick mail access; the token then
 * works for nothing we need. Refuse it with a sentence that says so rather
 * than failing at the first sync (RFC 6749 §3.3: a granted scope may differ).
 */
function checkScopes(provider: ResolvedProvider, granted: string | undefined): void {
  if (!granted) return; // RFC 6749 §5.1: omitted = as requested
  const have = new Set(granted.split(/\s+/).filter(Boolean).map((scope) => scope.toLowerCase()));
  const missing = provider.scopes.filter((scope) => !META_SCOPES.has(scope) && !have.has(scope.toLowerCase()));
  if (missing.length > 0) {
    throw new AppError('OAUTH_SCOPE_MISSING', `${provider.label} did not grant access to ${missing.join(', ')}. Sign in again and allow Postroom to read and send mail.`, { status: 400 });
  }
}
