import { aLabelDomain } from '../core/idn';
import { AppError } from '../core/errors';
import { canonicalTimeZone, DEFAULT_TIME_ZONE, TIME_ZONE_PROBLEM } from '../core/time-zone';
import { AUTH_POLICIES } from '../models/settings';
import type { Store } from '../store';
import { recordAudit, type Actor } from './audit';
import { describeFields } from './users';

export interface BusinessSettingsView {
  name: string;
  domains: string[];
  authPolicy: 'quarantine' | 'reject';
  /** 0 keeps mail forever. */
  retentionDays: number;
  /**
   * Whether retentionDays deletes mail: false for a value kept from before
   * Postroom applied it, until an admin saves the setting again.
   */
  retentionConfirmed: boolean;
  /** IANA zone the console shows times in for everyone who did not choose their own. */
  timeZone: string;
}

const DOMAIN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/;

/**
 * The business settings (one document, _id 'business'). Until an admin saves
 * them, BUSINESS_DOMAINS from the environment is the initial value.
 */
export async function getBusinessSettings(store: Store, defaults: { businessDomains: readonly string[] }): Promise<BusinessSettingsView> {
  const doc = await store.models.BusinessSettings.findById('business').lean();
  return {
    name: doc?.name ?? '',
    // A document saved by another form (OAuth clients, a marker) has no domains: those are still the initial value.
    domains: [...(doc?.domains ?? defaults.businessDomains)],
    authPolicy: (doc?.authPolicy ?? 'quarantine') as BusinessSettingsView['authPolicy'],
    retentionDays: doc?.retentionDays ?? 0,
    retentionConfirmed: Boolean(doc?.retentionConfirmedAt),
    timeZone: doc?.timeZone || DEFAULT_TIME_ZONE,
  };
}

export interface BusinessSettingsInput {
  name?: string;
  /** Comma-, space- or newline-separated. */
  domains?: string | string[];
  authPolicy?: string;
  retentionDays?: number | string;
  timeZone?: string;
}

export function parseDomainList(value: string | string[]): string[] {
  const parts = Array.isArray(value) ? value : value.split(/[\s,;]+/);
  // An internationalised domain as people write it (bücher.de) is kept in the A-label form (RFC 5890) that the
  // envelope, SPF and DKIM of its mail carry, and that the auth policy compares with; an invalid one stays as typed.
  return [...new Set(parts.map((part) => aLabelDomain(part.trim().toLowerCase().replace(/\.$/, ''))).filter(Boolean))];
}

export async function updateBusinessSettings(store: Store, input: BusinessSettingsInput, actor: Actor, defaults: { businessDomains: readonly string[] }): Promise<BusinessSettingsView> {
  const current = await getBusinessSettings(store, defaults);
  const next = { ...current };
  const fields: Record<string, string> = {};
  if (input.name !== undefined) {
    next.name = input.name.trim();
    if (next.name.length > 200) fields.name = 'must be at most 200 characters';
  }
  if (input.domains !== undefined) {
    next.domains = parseDomainList(input.domains);
    const bad = next.domains.filter((domain) => !DOMAIN.test(domain));
    if (bad.length > 0) fields.domains = `${bad.join(', ')} ${bad.length === 1 ? 'is not a domain name' : 'are not domain names'} (example: acme.com)`;
    if (next.domains.length > 100) fields.domains = 'at most 100 domains';
  }
  if (input.authPolicy !== undefined) {
    if (!(AUTH_POLICIES as readonly string[]).includes(input.authPolicy)) fields.authPolicy = `must be ${AUTH_POLICIES.join(' or ')}`;
    else next.authPolicy = input.authPolicy as BusinessSettingsView['authPolicy'];
  }
  if (input.retentionDays !== undefined) {
    const days = typeof input.retentionDays === 'number' ? input.retentionDays : input.retentionDays.trim() === '' ? 0 : Number(input.retentionDays);
    if (!Number.isInteger(days) || days < 0 || days > 36500) fields.retentionDays = 'must be a whole number of days from 0 (keep forever) to 36500';
    else {
      next.retentionDays = days;
      next.retentionConfirmed = true;
    }
  }
  if (input.timeZone !== undefined) {
    const zone = canonicalTimeZone(input.timeZone);
    if (!zone) fields.timeZone = TIME_ZONE_PROBLEM;
    else next.timeZone = zone;
  }
  if (Object.keys(fields).length > 0) throw new AppError('VALIDATION_FAILED', describeFields(fields), { status: 400, fields });
  const { retentionConfirmed, ...stored } = next;
  const confirmedNow = retentionConfirmed && !current.retentionConfirmed;
  await store.models.BusinessSettings.updateOne({ _id: 'business' }, { $set: { ...stored, ...(confirmedNow ? { retentionConfirmedAt: new Date() } : {}) } }, { upsert: true });
  const changed = (Object.keys(next) as Array<keyof BusinessSettingsView>).filter((key) => JSON.stringify(next[key]) !== JSON.stringify(current[key]));
  if (changed.length > 0) await recordAudit(store, actor, { action: 'settings.update', targetType: 'settings', targetId: 'business', details: { changed, ...Object.fromEntries(changed.map((key) => [key, next[key]])) } });
  return next;
}
