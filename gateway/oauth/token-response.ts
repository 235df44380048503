import type * as oidc from 'openid-client';
import type { OAuthDeps } from './deps';

/**
 * Token lifetime when a provider omits expires_in (RFC 6749 §5.1 only
 * recommends it); Google and Microsoft both issue one-hour access tokens.
 */
const DEFAULT_LIFETIME_S = 3600;

/** The account fields a token response sets: the access token sealed like a password. */
export function tokenFields(deps: OAuthDeps, accountId: string, tokens: oidc.TokenEndpointResponse, at: Date) {
  const lifetimeS = typeof tokens.expires_in === 'number' && tokens.expires_in > 0 ? tokens.expires_in : DEFAULT_LIFETIME_S;
  return {
    'oauth.accessTokenEnc': deps.secretBox.seal(tokens.access_token, accountId),
    'oauth.expiresAt': new Date(at.getTime() + lifetimeS * 1000),
    'oauth.refreshedAt': at,
  };
}
