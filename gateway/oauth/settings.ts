import { recordAudit, type Actor } from '../accounts/audit';
import type { OAuthProviderEnv } from '../core/config';
import { AppError } from '../core/errors';
import { clearDiscoveryCache } from './client';
import { now, redirectUri, type OAuthDeps } from './deps';
import {
  clientSecretContext, isProviderId, loadStoredProviderSettings, mergeProvider, OAUTH_PROVIDER_IDS, providerDefaults,
  type OAuthProviderId, type StoredProviderSettings,
} from './providers';

/**
 * Preferences → Business: each provider's client and endpoints as an admin
 * enters them. The client secret is sealed (SecretBox, context
 * 'settings:oauth:<id>') and never read back: the view says only whether one
 * is set. Empty fields fall back to the environment, then the defaults.
 */

const TEXT_FIELDS = ['clientId', 'issuer', 'authorizationUrl', 'tokenUrl', 'revocationUrl', 'scopes', 'tenant', 'label'] as const;
type TextField = (typeof TEXT_FIELDS)[number];

export interface OAuthProviderSettingsView {
  id: OAuthProviderId;
  /** Button label in effect. */
  label: string;
  configured: boolean;
  /** What Preferences → Business holds (empty = not set there). */
  stored: Record<TextField, string> & { clientSecretSet: boolean };
  /** Fields the environment sets (OAUTH_<ID>_*), so the form can say where a value comes from. */
  fromEnvironment: string[];
  /** What the flow will use (no secret). */
  effective: { clientId: string; clientSecretSet: boolean; issuer: string; authorizationUrl: string; tokenUrl: string; revocationUrl: string; scopes: string; discover: boolean };
  /** Register this at the provider. */
  redirectUri: string;
}

function view(deps: OAuthDeps, id: OAuthProviderId, stored: StoredProviderSettings | undefined): OAuthProviderSettingsView {
  const env: Readonly<OAuthProviderEnv> = deps.config.oauth[id] ?? {};
  const storedText = Object.fromEntries(TEXT_FIELDS.map((field) => [field, (stored?.[field] ?? '').trim()])) as Record<TextField, string>;
  const clientSecretSet = Boolean(stored?.clientSecretEnc);
  // The secret's value does not change what is shown; a placeholder keeps it out of memory here.
  const merged = mergeProvider(id, env, {
    ...Object.fromEntries(TEXT_FIELDS.filter((f) => f !== 'scopes' && storedText[f]).map((f) => [f, storedText[f]])),
    scopes: storedText.scopes ? storedText.scopes.split(/[\s,]+/).filter(Boolean) : undefined,
    clientSecret: clientSecretSet ? 'set' : undefined,
  });
  return {
    id,
    label: merged.label,
    configured: merged.configured,
    stored: { ...storedText, clientSecretSet },
    fromEnvironment: Object.entries(env).filter(([key, value]) => value !== undefined && key !== 'clientSecret').map(([key]) => key).concat(env.clientSecret ? ['clientSecret'] : []),
    effective: {
      clientId: merged.clientId,
      clientSecretSet: merged.clientSecret !== '',
      issuer: merged.issuer,
      authorizationUrl: merged.authorizationUrl,
      tokenUrl: merged.tokenUrl,
      revocationUrl: merged.revocationUrl,
      scopes: merged.scopes.join(' '),
      discover: merged.discover,
    },
    redirectUri: redirectUri(deps),
  };
}

/** Every provider's settings for the Business page. */
export async function getOAuthSettings(deps: OAuthDeps): Promise<OAuthProviderSettingsView[]> {
  const stored = await loadStoredProviderSettings(deps.store);
  return OAUTH_PROVIDER_IDS.map((id) => view(deps, id, stored[id]));
}

export interface OAuthSettingsInput {
  clientId?: string;
  /** A new secret; empty or absent keeps the stored one. */
  clientSecret?: string;
  /** Remove the stored secret (public client, or fall back to the environment's). */
  clearClientSecret?: boolean;
  issuer?: string;
  authorizationUrl?: string;
  tokenUrl?: string;
  revocationUrl?: string;
  /** Space- or comma-separated. */
  scopes?: string;
  tenant?: string;
  label?: string;
}

function validUrl(value: string): boolean {
  try {
    const url = new URL(value);
    if (url.protocol === 'https:') return !url.username && !url.password;
    return url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  } catch {
    return false;
  }
}

function validate(input: OAuthSettingsInput): { values: Partial<Record<TextField, string>>; fields: Record<string, string> } {
  const fields: Record<string, string> = {};
  const values: Partial<Record<TextField, string>> = {};
  for (const field of TEXT_FIELDS) {
    const raw = input[field];
    if (raw === undefined) continue;
    const value = field === 'scopes' ? raw.split(/[\s,]+/).filter(Boolean).join(' ') : raw.trim();
    values[field] = value;
    if (value === '') continue;
    if (['issuer', 'authorizationUrl', 'tokenUrl', 'revocationUrl'].includes(field) && !validUrl(value)) {
      fields[field] = 'must be an https:// URL (http:// only for localhost), e.g. https://accounts.google.com';
    }
  }
  if (values.clientId && (values.clientId.length > 300 || !/^[\x21-\x7e]+$/.test(values.clientId))) fields.clientId = 'must be up to 300 printable characters without spaces';
  if (values.scopes && values.scopes.split(' ').some((scope) => !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(scope))) fields.scopes = 'scopes are printable ASCII without quotes or backslashes (RFC 6749 §3.3), separated by spaces';
  if (values.tenant && !/^[A-Za-z0-9.-]{1,100}$/.test(values.tenant)) fields.tenant = 'must be common, organizations, consumers, a tenant id or a tenant domain';
  if (values.label && values.label.length > 60) fields.label = 'must be at most 60 characters';
  if (input.clientSecret && (input.clientSecret.length > 500 || /[\x00-\x1f\x7f]/.test(input.clientSecret))) fields.clientSecret = 'must be up to 500 characters without control characters';
  return { values, fields };
}

/**
 * Save one provider's settings (admins only: the route checks the role).
 * Throws AppError VALIDATION_FAILED (400) with `fields` naming each problem.
 */
export async function updateOAuthSettings(deps: OAuthDeps & { actor: Actor }, id: OAuthProviderId | string, input: OAuthSettingsInput): Promise<OAuthProviderSettingsView> {
  if (!isProviderId(id)) throw new AppError('OAUTH_UNKNOWN_PROVIDER', `Unknown OAuth2 provider "${String(id).slice(0, 40)}".`, { status: 400 });
  const { values, fields } = validate(input);
  if (Object.keys(fields).length > 0) {
    const summary = Object.entries(fields).map(([field, problem]) => `${field} ${problem}`).join('; ');
    throw new AppError('VALIDATION_FAILED', `${providerDefaults(id).label} sign-in settings: ${summary}.`, { status: 400, fields });
  }
  const set: Record<string, string> = {};
  for (const [field, value] of Object.entries(values)) set[`oauth.${id}.${field}`] = value;
  const secretChanged = Boolean(input.clientSecret) || Boolean(input.clearClientSecret);
  if (input.clientSecret) set[`oauth.${id}.clientSecretEnc`] = deps.secretBox.seal(input.clientSecret, clientSecretContext(id));
  else if (input.clearClientSecret) set[`oauth.${id}.clientSecretEnc`] = '';
  const before = (await loadStoredProviderSettings(deps.store))[id];
  if (Object.keys(set).length > 0) await deps.store.models.BusinessSettings.updateOne({ _id: 'business' }, { $set: set }, { upsert: true });
  clearDiscoveryCache();
  const changed = Object.entries(values).filter(([field, value]) => (before?.[field as TextField] ?? '') !== value).map(([field]) => field);
  if (changed.length > 0 || secretChanged) {
    await recordAudit(deps.store, deps.actor, {
      action: 'settings.oauth',
      targetType: 'settings',
      targetId: `oauth:${id}`,
      details: { changed, ...(secretChanged ? { clientSecretChanged: true } : {}) },
    }, now(deps));
  }
  return view(deps, id, (await loadStoredProviderSettings(deps.store))[id]);
}
