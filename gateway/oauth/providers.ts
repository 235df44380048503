import { OAUTH_PROVIDER_IDS, type Config, type OAuthProviderEnv, type OAuthProviderId } from '../core/config';
import { SecretBoxError, type SecretBox } from '../core/crypto';
import { AppError } from '../core/errors';
import type { Store } from '../store';

/**
 * The OAuth2 provider registry: built-in defaults for Google and Microsoft,
 * overridden field by field by the environment (OAUTH_<PROVIDER>_*), then by
 * Preferences → Business (BusinessSettings.oauth). A third, generic provider
 * (`oidc`) has no defaults, so any OAuth2/OIDC server — a company SSO, a
 * self-hosted mail server's IdP, a local test server — can be plugged in.
 */

export { OAUTH_PROVIDER_IDS, type OAuthProviderId } from '../core/config';

/** One provider, fully resolved; what the flow and the refresher work from. */
export interface ResolvedProvider {
  id: OAuthProviderId;
  /** For buttons and messages: "Sign in with Google". */
  label: string;
  clientId: string;
  /** '' = a public client (PKCE only, RFC 7636). */
  clientSecret: string;
  /** Issuer identifier; '' when only endpoints were given. */
  issuer: string;
  authorizationUrl: string;
  tokenUrl: string;
  /** RFC 7009 endpoint; '' when the provider has none (Microsoft). */
  revocationUrl: string;
  scopes: string[];
  /** Provider-specific authorization request parameters (e.g. Google's access_type=offline). */
  extraAuthParams: Readonly<Record<string, string>>;
  /** True when endpoints must be discovered from the issuer (RFC 8414 / OIDC Discovery 1.0). */
  discover: boolean;
  /** A client id and a way to reach the endpoints: the console may offer the button. */
  configured: boolean;
  /** Where an admin corrects the client id and secret, for messages: the variables that set them and/or Preferences → Business. */
  credentialsFrom: string;
}

/** What Preferences → Business stores for one provider (BusinessSettings.oauth.<id>). */
export interface StoredProviderSettings {
  clientId?: string | null;
  clientSecretEnc?: string | null;
  issuer?: string | null;
  authorizationUrl?: string | null;
  tokenUrl?: string | null;
  revocationUrl?: string | null;
  scopes?: string | null;
  tenant?: string | null;
  label?: string | null;
}

interface ProviderDefaults {
  label: string;
  issuer: string;
  authorizationUrl: string;
  tokenUrl: string;
  revocationUrl: string;
  scopes: readonly string[];
  extraAuthParams: Readonly<Record<string, string>>;
}

export const GOOGLE_MAIL_SCOPE = 'https://mail.google.com/';
export const MICROSOFT_IMAP_SCOPE = 'https://outlook.office.com/IMAP.AccessAsUser.All';
export const MICROSOFT_SMTP_SCOPE = 'https://outlook.office.com/SMTP.Send';

/**
 * Built-in defaults. Google gives a refresh token only with
 * access_type=offline, and gives a new one on a repeated sign-in only with
 * prompt=consent. Microsoft and OIDC servers give one for the
 * `offline_access` scope (OIDC Core §11: that scope needs prompt=consent).
 */
export function providerDefaults(id: OAuthProviderId, tenant = 'common'): ProviderDefaults {
  switch (id) {
    case 'google':
      return {
        label: 'Google',
        issuer: 'https://accounts.google.com',
        authorizationUrl: 'https://accounts.google.com/o/oauth2/v2/auth',
        tokenUrl: 'https://oauth2.googleapis.com/token',
        revocationUrl: 'https://oauth2.googleapis.com/revoke',
        scopes: [GOOGLE_MAIL_SCOPE],
        extraAuthParams: { access_type: 'offline', prompt: 'consent' },
      };
    case 'microsoft': {
      const base = `https://login.microsoftonline.com/${encodeURIComponent(tenant)}`;
      return {
        label: 'Microsoft',
        issuer: `${base}/v2.0`,
        authorizationUrl: `${base}/oauth2/v2.0/authorize`,
        tokenUrl: `${base}/oauth2/v2.0/token`,
        revocationUrl: '',
        scopes: [MICROSOFT_IMAP_SCOPE, MICROSOFT_SMTP_SCOPE, 'offline_access'],
        extraAuthParams: {},
      };
    }
    case 'oidc':
      return {
        label: 'single sign-on',
        issuer: '',
        authorizationUrl: '',
        tokenUrl: '',
        revocationUrl: '',
        scopes: ['openid', 'offline_access'],
        extraAuthParams: { prompt: 'consent' },
      };
  }
}

export function isProviderId(value: unknown): value is OAuthProviderId {
  return typeof value === 'string' && (OAUTH_PROVIDER_IDS as readonly string[]).includes(value);
}

/** The provider that serves a connection preset of gateway/accounts/presets.ts, if any. */
export function providerForPreset(serviceId: string): OAuthProviderId | null {
  if (serviceId === 'gmail') return 'google';
  if (serviceId === 'outlook') return 'microsoft';
  return null;
}

/** Context a provider's client secret is sealed under (binds it to its settings field). */
export function clientSecretContext(id: OAuthProviderId): string {
  return `settings:oauth:${id}`;
}

type Layer = Omit<OAuthProviderEnv, 'scopes'> & { scopes?: readonly string[] };

function text(value: string | null | undefined): string | undefined {
  const trimmed = (value ?? '').trim();
  return trimmed === '' ? undefined : trimmed;
}

/**
 * Merge defaults ← environment ← stored settings. A layer that names a new
 * issuer drops the endpoints inherited from below (the Google endpoints make
 * no sense for another issuer); what that layer does not give is discovered.
 */
export function mergeProvider(id: OAuthProviderId, env: Readonly<OAuthProviderEnv>, stored: Layer): ResolvedProvider {
  const tenant = stored.tenant ?? env.tenant ?? 'common';
  const defaults = providerDefaults(id, tenant);
  let issuer = defaults.issuer;
  let endpoints = { authorizationUrl: defaults.authorizationUrl, tokenUrl: defaults.tokenUrl, revocationUrl: defaults.revocationUrl };
  let clientId = '';
  let clientSecret = '';
  let scopes: readonly string[] = defaults.scopes;
  let label = defaults.label;
  const prefix = `OAUTH_${id.toUpperCase()}`;
  let idFrom = '';
  let secretFrom = '';
  for (const layer of [env, stored]) {
    const from = layer === env ? 'environment' : 'settings';
    if (layer.clientId) idFrom = from;
    if (layer.clientSecret) secretFrom = from;
    if (layer.issuer && layer.issuer !== issuer) {
      issuer = layer.issuer;
      endpoints = { authorizationUrl: '', tokenUrl: '', revocationUrl: '' };
    }
    if (layer.authorizationUrl) endpoints.authorizationUrl = layer.authorizationUrl;
    if (layer.tokenUrl) endpoints.tokenUrl = layer.tokenUrl;
    if (layer.revocationUrl) endpoints.revocationUrl = layer.revocationUrl;
    if (layer.clientId) clientId = layer.clientId;
    if (layer.clientSecret) clientSecret = layer.clientSecret;
    if (layer.scopes && layer.scopes.length > 0) scopes = layer.scopes;
    if (id === 'oidc' && layer.label) label = layer.label;
  }
  const hasEndpoints = endpoints.authorizationUrl !== '' && endpoints.tokenUrl !== '';
  return {
    id,
    label,
    clientId,
    clientSecret,
    issuer,
    ...endpoints,
    scopes: [...scopes],
    extraAuthParams: defaults.extraAuthParams,
    discover: !hasEndpoints && issuer !== '',
    configured: clientId !== '' && (hasEndpoints || issuer !== ''),
    credentialsFrom: [
      ...(idFrom === 'environment' ? [`${prefix}_CLIENT_ID`] : []),
      ...(secretFrom === 'environment' ? [`${prefix}_CLIENT_SECRET`] : []),
      ...(idFrom !== 'environment' || secretFrom === 'settings' ? ['Preferences → Business'] : []),
    ].join(', ') + (secretFrom === '' ? ' (no client secret is set)' : ''),
  };
}

export interface ProviderDeps {
  store: Store;
  secretBox: SecretBox;
  config: Pick<Config, 'oauth'>;
}

/** Stored settings of every provider (one read of the settings document). */
export async function loadStoredProviderSettings(store: Store): Promise<Partial<Record<OAuthProviderId, StoredProviderSettings>>> {
  const doc = await store.models.BusinessSettings.findById('business').lean();
  return ((doc as { oauth?: Partial<Record<OAuthProviderId, StoredProviderSettings>> } | null)?.oauth ?? {});
}

function storedLayer(deps: ProviderDeps, id: OAuthProviderId, stored: StoredProviderSettings | undefined): Layer {
  if (!stored) return {};
  let clientSecret: string | undefined;
  if (stored.clientSecretEnc) {
    try {
      clientSecret = deps.secretBox.open(stored.clientSecretEnc, clientSecretContext(id));
    } catch (err) {
      if (!(err instanceof SecretBoxError)) throw err;
      throw new AppError('OAUTH_NOT_CONFIGURED', `The stored client secret of ${providerDefaults(id).label} cannot be decrypted (was SECRET_KEY changed?). An admin must enter it again in Preferences → Business.`, { status: 409, cause: err });
    }
  }
  const scopes = text(stored.scopes)?.split(/[\s,]+/).filter(Boolean);
  return {
    clientId: text(stored.clientId),
    clientSecret,
    issuer: text(stored.issuer),
    authorizationUrl: text(stored.authorizationUrl),
    tokenUrl: text(stored.tokenUrl),
    revocationUrl: text(stored.revocationUrl),
    scopes,
    tenant: text(stored.tenant),
    label: text(stored.label),
  };
}

/** One provider with every layer applied. */
export async function resolveProvider(deps: ProviderDeps, id: OAuthProviderId): Promise<ResolvedProvider> {
  if (!isProviderId(id)) throw new AppError('OAUTH_UNKNOWN_PROVIDER', `Unknown OAuth2 provider "${String(id)}" (known: ${OAUTH_PROVIDER_IDS.join(', ')}).`, { status: 400 });
  const stored = await loadStoredProviderSettings(deps.store);
  return mergeProvider(id, deps.config.oauth[id] ?? {}, storedLayer(deps, id, stored[id]));
}

/** Every provider, for the console's "Sign in with …" buttons (no secrets in the result). */
export async function listProviders(deps: ProviderDeps): Promise<Array<{ id: OAuthProviderId; label: string; configured: boolean }>> {
  const stored = await loadStoredProviderSettings(deps.store);
  return OAUTH_PROVIDER_IDS.map((id) => {
    let layer: Layer;
    try {
      layer = storedLayer(deps, id, stored[id]);
    } catch {
      return { id, label: providerDefaults(id).label, configured: false };
    }
    const provider = mergeProvider(id, deps.config.oauth[id] ?? {}, layer);
    return { id, label: provider.label, configured: provider.configured };
  });
}

/** Throws the console's "not set up" message unless the provider can be used. */
export function assertConfigured(provider: ResolvedProvider): void {
  if (provider.configured) return;
  const env = `OAUTH_${provider.id.toUpperCase()}_${provider.clientId === '' ? 'CLIENT_ID' : 'ISSUER'}`;
  const missing = provider.clientId === '' ? 'a client id' : 'an issuer or the authorization and token endpoints';
  throw new AppError('OAUTH_NOT_CONFIGURED', `Sign-in with ${provider.label} is not set up: it needs ${missing}. An admin enters it in Preferences → Business (or sets ${env} and related variables).`, { status: 409 });
}
