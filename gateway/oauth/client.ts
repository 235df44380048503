import * as oidc from 'openid-client';
import type { ResolvedProvider } from './providers';
import { classifyTokenFailure, notConfigured, providerUnavailable } from './errors';

/**
 * openid-client Configuration for a resolved provider. Endpoints given
 * explicitly are used as they are (Microsoft's multi-tenant "common" issuer
 * cannot pass discovery's issuer check); otherwise they are discovered from
 * the issuer (OIDC Discovery 1.0, then RFC 8414) and cached for an hour.
 * Requests are https-only; http is allowed for loopback endpoints only (a
 * provider on the same machine), and certificate checks are never turned off.
 */

const DISCOVERY_TTL_MS = 60 * 60_000;
const discoveryCache = new Map<string, { metadata: oidc.ServerMetadata; at: number }>();

export interface ClientOptions {
  /** Seconds per HTTP request to the provider. */
  timeoutS?: number;
}

function isLoopbackHttp(value: string): boolean {
  if (!value) return false;
  const url = new URL(value);
  return url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
}

function clientAuth(provider: ResolvedProvider): oidc.ClientAuth {
  // client_secret_post: accepted by Google, Microsoft and most servers (RFC 6749 §2.3.1).
  return provider.clientSecret ? oidc.ClientSecretPost(provider.clientSecret) : oidc.None();
}

function serverAnswered(err: unknown): boolean {
  return err instanceof oidc.ResponseBodyError || (err instanceof oidc.ClientError && err.code !== 'OAUTH_TIMEOUT');
}

async function discover(provider: ResolvedProvider, timeoutS: number): Promise<oidc.ServerMetadata> {
  const cached = discoveryCache.get(provider.issuer);
  if (cached && Date.now() - cached.at < DISCOVERY_TTL_MS) return cached.metadata;
  const execute = isLoopbackHttp(provider.issuer) ? [oidc.allowInsecureRequests] : [];
  let lastError: unknown;
  for (const algorithm of ['oidc', 'oauth2'] as const) {
    try {
      const config = await oidc.discovery(new URL(provider.issuer), provider.clientId, undefined, clientAuth(provider), { algorithm, execute, timeout: timeoutS });
      const metadata = { ...config.serverMetadata() } as oidc.ServerMetadata;
      discoveryCache.set(provider.issuer, { metadata, at: Date.now() });
      return metadata;
    } catch (err) {
      lastError = err;
      // The second well-known path is on the same host: worth asking only if the server answered the first
      // (a 404, a malformed document). A timeout or a refused connection would just double the user's wait.
      if (!serverAnswered(err)) break;
    }
  }
  const failure = classifyTokenFailure(provider, lastError);
  throw providerUnavailable(provider, `its metadata could not be discovered from ${provider.issuer} (${failure.code})`);
}

/** Forget discovered metadata (an admin changed the provider's settings). */
export function clearDiscoveryCache(): void {
  discoveryCache.clear();
}

export async function providerConfiguration(provider: ResolvedProvider, options: ClientOptions = {}): Promise<oidc.Configuration> {
  const timeoutS = options.timeoutS ?? 20;
  const discovered = provider.discover ? await discover(provider, timeoutS) : undefined;
  const issuer = provider.issuer || new URL(provider.authorizationUrl).origin;
  const metadata: oidc.ServerMetadata = {
    ...discovered,
    issuer: discovered?.issuer ?? issuer,
    authorization_endpoint: provider.authorizationUrl || discovered?.authorization_endpoint,
    token_endpoint: provider.tokenUrl || discovered?.token_endpoint,
    revocation_endpoint: provider.revocationUrl || discovered?.revocation_endpoint,
  };
  if (!metadata.authorization_endpoint || !metadata.token_endpoint) {
    throw notConfigured(provider, 'it has no authorization or token endpoint (set them in Preferences → Business)');
  }
  const config = new oidc.Configuration(metadata, provider.clientId, provider.clientSecret ? { client_secret: provider.clientSecret } : {}, clientAuth(provider));
  config.timeout = timeoutS;
  const endpoints = [metadata.issuer, metadata.authorization_endpoint, metadata.token_endpoint, metadata.revocation_endpoint ?? ''].filter(Boolean);
  const plain = endpoints.filter((value) => new URL(value).protocol !== 'https:');
  if (plain.some((value) => !isLoopbackHttp(value))) {
    throw notConfigured(provider, `its endpoints must use https:// (http:// only on localhost): ${plain.join(', ')}`);
  }
  // openid-client refuses http:// outright; loopback traffic never leaves the machine.
  if (plain.length > 0) oidc.allowInsecureRequests(config);
  return config;
}

/** The endpoints a grant is bound to (stored on the account as it is granted; see the model's oauth.tokenEndpoint). */
export function grantEndpoints(config: oidc.Configuration): { 'oauth.tokenEndpoint': string; 'oauth.revocationEndpoint': string } {
  const metadata = config.serverMetadata();
  return { 'oauth.tokenEndpoint': metadata.token_endpoint ?? '', 'oauth.revocationEndpoint': metadata.revocation_endpoint ?? '' };
}
