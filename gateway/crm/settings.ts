import { AppError } from '../core/errors';
import type { Store } from '../store';
import { recordAudit, type Actor } from '../accounts/audit';
import { normalizeDomain, normalizeDomainList } from './address';
import { freemailChecker } from './freemail';

/** The business settings association depends on, resolved once per call or job. */
export interface CrmSettings {
  businessDomains: string[];
  freemailDomains: string[];
  stripSubaddress: boolean;
  shareLinkedMail: boolean;
  isFreemail: (asciiDomain: string) => boolean;
}

/**
 * Defaults a process passes for what is not stored yet: processes pass
 * `{businessDomains: config.businessDomains}` so BUSINESS_DOMAINS counts
 * until an admin saves the business settings (the same rule as
 * gateway/accounts/business-settings.ts).
 */
export interface CrmSettingsInput {
  businessDomains?: readonly string[];
  freemailDomains?: readonly string[];
  stripSubaddress?: boolean;
  shareLinkedMail?: boolean;
}

/**
 * Stored settings (BusinessSettings, _id 'business'); the caller's values
 * apply where nothing is stored. Extra free-mail domains are united.
 */
export async function loadCrmSettings(store: Store, input: CrmSettingsInput = {}): Promise<CrmSettings> {
  const doc = await store.models.BusinessSettings.findById('business').lean();
  const businessDomains = normalizeDomainList([...(doc?.domains ?? input.businessDomains ?? [])]);
  const freemailDomains = normalizeDomainList([...(doc?.freemailDomains ?? []), ...(input.freemailDomains ?? [])]);
  return {
    businessDomains,
    freemailDomains,
    stripSubaddress: doc?.stripSubaddress ?? input.stripSubaddress ?? true,
    shareLinkedMail: doc?.shareLinkedMail ?? input.shareLinkedMail ?? false,
    isFreemail: freemailChecker(freemailDomains),
  };
}

export interface CrmSettingsUpdate {
  /** Extra free-mail domains: an array, or one string separated by commas, spaces or new lines. */
  freemailDomains?: string[] | string;
  stripSubaddress?: boolean;
  shareLinkedMail?: boolean;
}

/**
 * Change the association settings (admins). Unknown or malformed domains
 * are refused with a field error. Returns the settings now in force.
 */
export async function updateCrmSettings(store: Store, input: CrmSettingsUpdate, actor: Actor, defaults: CrmSettingsInput = {}): Promise<CrmSettings> {
  const set: Record<string, unknown> = {};
  if (input.freemailDomains !== undefined) {
    const entries = (Array.isArray(input.freemailDomains) ? input.freemailDomains : input.freemailDomains.split(/[\s,;]+/)).map((d) => d.trim()).filter(Boolean);
    const bad = entries.filter((d) => !normalizeDomain(d));
    if (bad.length > 0) {
      const problem = `${bad.map((d) => `"${d}"`).join(', ')} ${bad.length === 1 ? 'is not a domain name' : 'are not domain names'} (example: mail.example.com)`;
      throw new AppError('VALIDATION_FAILED', `freemailDomains ${problem}`, { status: 400, fields: { freemailDomains: problem } });
    }
    if (entries.length > 1000) throw new AppError('VALIDATION_FAILED', 'freemailDomains: at most 1000 domains', { status: 400, fields: { freemailDomains: 'at most 1000 domains' } });
    set.freemailDomains = normalizeDomainList(entries);
  }
  if (input.stripSubaddress !== undefined) set.stripSubaddress = input.stripSubaddress;
  if (input.shareLinkedMail !== undefined) set.shareLinkedMail = input.shareLinkedMail;
  if (Object.keys(set).length > 0) {
    const existing = await store.models.BusinessSettings.exists({ _id: 'business' });
    // The first save also records the business domains in force (BUSINESS_DOMAINS), as the business settings page does.
    const seed = existing ? {} : { domains: [...(defaults.businessDomains ?? [])] };
    await store.models.BusinessSettings.updateOne({ _id: 'business' }, { $set: set, $setOnInsert: seed }, { upsert: true });
    await recordAudit(store, actor, { action: 'settings.crm', targetType: 'settings', targetId: 'business', details: set });
  }
  return loadCrmSettings(store, defaults);
}
