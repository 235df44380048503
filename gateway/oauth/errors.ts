import * as oidc from 'openid-client';
import { AppError } from '../core/errors';
import type { ResolvedProvider } from './providers';

/**
 * What a failed call to a provider means for the account, and the sentence
 * a person can act on. Messages carry the provider's error code and a
 * trimmed description (RFC 6749 §5.2), never a token or a secret.
 */

export type TokenFailureKind =
  /** The grant is gone (revoked, expired, password changed): only a new sign-in helps. */
  | 'grant'
  /** Our client id/secret was refused: an admin must fix the provider settings. */
  | 'client'
  /** Network, timeout, 5xx, malformed answer: try again later. */
  | 'transient';

export interface TokenFailure {
  kind: TokenFailureKind;
  /** OAuth error code (invalid_grant, …) or network code (ECONNREFUSED, TIMEOUT, …). */
  code: string;
  /** Code and description as the provider gave them, e.g. "invalid_grant: Token has been expired or revoked." */
  detail: string;
  message: string;
}

/** Printable, short: provider texts end up in the console and the logs. */
export function clean(value: unknown, max = 200): string {
  const text = String(value ?? '').replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function networkCode(err: unknown): string {
  let current = err as { name?: string; code?: string; cause?: unknown } | undefined;
  for (let depth = 0; current && depth < 4; depth += 1) {
    if (current.name === 'TimeoutError' || current.name === 'AbortError') return 'TIMEOUT';
    if (typeof current.code === 'string' && /^E[A-Z_]+$/.test(current.code)) return current.code;
    current = current.cause as typeof current;
  }
  return 'NETWORK_ERROR';
}

/** A refresh or code exchange failed: what it means and what to tell the user. */
export function classifyTokenFailure(provider: Pick<ResolvedProvider, 'label'> & Partial<Pick<ResolvedProvider, 'credentialsFrom'>>, err: unknown): TokenFailure {
  if (err instanceof oidc.ResponseBodyError) {
    const code = clean(err.error, 60) || 'error';
    const detail = `${code}${err.error_description ? `: ${clean(err.error_description)}` : ''}`;
    // RFC 6749 §5.2: invalid_grant = the refresh token is invalid, expired or
    // revoked (also Microsoft's AADSTS50173 password change, AADSTS700082
    // inactivity); invalid_scope on refresh = the grant no longer covers it.
    if (code === 'invalid_grant' || code === 'invalid_scope') {
      return { kind: 'grant', code, detail, message: `${provider.label} no longer accepts the stored authorisation (${detail}). Sign in with ${provider.label} again.` };
    }
    if (code === 'invalid_client' || code === 'unauthorized_client') {
      return { kind: 'client', code, detail, message: `${provider.label} refused Postroom's client credentials (${detail}). An admin must check the client id and secret (set in ${provider.credentialsFrom || 'Preferences → Business'}).` };
    }
    return { kind: 'transient', code, detail: `${detail} (HTTP ${err.status})`, message: `${provider.label} answered with an error (${detail}, HTTP ${err.status}). Postroom retries later.` };
  }
  if (err instanceof oidc.ClientError) {
    const code = clean(err.code ?? 'CLIENT_ERROR', 60);
    // openid-client puts the specific check that failed in `cause` (a message naming the field, never its value).
    const cause = err.cause as { message?: string; status?: number } | undefined;
    const inner = cause instanceof Response ? ` (HTTP ${cause.status})`
      : cause instanceof Error && cause.message !== err.message ? `: ${clean(cause.message)}` : '';
    const what = `${clean(err.message)}${inner}`;
    return { kind: 'transient', code, detail: `${code}: ${what}`, message: `${provider.label} gave an answer Postroom could not use (${what}). Postroom retries later.` };
  }
  const code = networkCode(err);
  const what = code === 'TIMEOUT' ? 'did not answer in time' : `could not be reached (${code})`;
  return { kind: 'transient', code, detail: code, message: `${provider.label} ${what}. Postroom retries later.` };
}

export function providerUnavailable(provider: Pick<ResolvedProvider, 'label'>, why: string): AppError {
  return new AppError('OAUTH_PROVIDER_UNAVAILABLE', `${provider.label} cannot be used right now: ${why}.`, { status: 503 });
}

export function notConfigured(provider: Pick<ResolvedProvider, 'label'>, why: string): AppError {
  return new AppError('OAUTH_NOT_CONFIGURED', `Sign-in with ${provider.label} is not set up correctly: ${why}.`, { status: 409 });
}

/**
 * The AppError a caller sees for a classified failure (status: what the API
 * answers). The provider's error object is not attached as `cause`: it holds
 * the raw HTTP response, and nothing from a token exchange may reach a log.
 */
export function failureError(failure: TokenFailure): AppError {
  const code = failure.kind === 'grant' ? 'OAUTH_REAUTH_NEEDED' : failure.kind === 'client' ? 'OAUTH_CLIENT_REJECTED' : 'OAUTH_PROVIDER_UNAVAILABLE';
  const status = failure.kind === 'grant' ? 409 : failure.kind === 'client' ? 502 : 503;
  return new AppError(code, failure.message, { status });
}
