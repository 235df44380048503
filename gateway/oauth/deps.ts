import type { Config } from '../core/config';
import type { SecretBox } from '../core/crypto';
import type { Logger } from '../core/log';
import type { Store } from '../store';

/**
 * What the OAuth2 functions need. The admin's AdminDeps and the syncer's
 * deps both carry these (the syncer calls its SecretBox `secrets`: pass it as
 * `secretBox`).
 */
export interface OAuthDeps {
  store: Store;
  log: Logger;
  secretBox: SecretBox;
  config: Pick<Config, 'publicUrl' | 'oauth'>;
  clock?: () => Date;
  /** Engineering limits; tests shorten them. */
  tuning?: Partial<OAuthTuning>;
}

export interface OAuthTuning {
  /** Refresh an access token this long before it expires. */
  refreshSkewMs: number;
  /** Lifetime of the cross-process refresh lock (longer than one token request). */
  refreshLockMs: number;
  /** How often a process waiting for another's refresh re-reads the account. */
  refreshPollMs: number;
  /** Backoff after a failed refresh the provider may recover from: first delay and cap. */
  backoffBaseMs: number;
  backoffCapMs: number;
  /** Seconds per HTTP request to a provider. */
  httpTimeoutS: number;
  /** How long a "Sign in with …" click may take to come back (state lifetime). */
  stateTtlMs: number;
}

export const DEFAULT_OAUTH_TUNING: OAuthTuning = {
  refreshSkewMs: 5 * 60_000,
  refreshLockMs: 60_000,
  refreshPollMs: 250,
  backoffBaseMs: 30_000,
  backoffCapMs: 30 * 60_000,
  httpTimeoutS: 20,
  stateTtlMs: 10 * 60_000,
};

export function tuning(deps: OAuthDeps): OAuthTuning {
  return { ...DEFAULT_OAUTH_TUNING, ...deps.tuning };
}

export function now(deps: OAuthDeps): Date {
  return deps.clock ? deps.clock() : new Date();
}

/** Path of the callback route the providers redirect to; register PUBLIC_URL + this at each provider. */
export const OAUTH_CALLBACK_PATH = '/oauth/callback';

export function redirectUri(deps: OAuthDeps): string {
  return `${deps.config.publicUrl.replace(/\/+$/, '')}${OAUTH_CALLBACK_PATH}`;
}
