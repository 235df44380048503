import { AppError } from '../core/errors';
import type { Store } from '../store';

/**
 * The business-wide inputs of the SMTP auth policy: the business domains
 * and what happens to failing mail. Stored in BusinessSettings (_id
 * 'business'); until an admin saves them, BUSINESS_DOMAINS applies and the
 * policy is quarantine. Read at most every `ttlMs` per process; when the
 * store cannot be read, the last value read is used for `staleMs`.
 */

export type AuthPolicyAction = 'quarantine' | 'reject';

export interface BusinessPolicy {
  domains: string[];
  authPolicy: AuthPolicyAction;
}

export interface BusinessPolicyOptions {
  store: Store;
  defaultDomains: readonly string[];
  ttlMs?: number;
  staleMs?: number;
  now?: () => number;
}

export function createBusinessPolicyLoader(options: BusinessPolicyOptions): () => Promise<BusinessPolicy> {
  const ttlMs = options.ttlMs ?? 2000;
  const staleMs = options.staleMs ?? 10 * 60 * 1000;
  const now = options.now ?? Date.now;
  let cached: { at: number; value: BusinessPolicy } | null = null;

  return async () => {
    if (cached && now() - cached.at < ttlMs) return cached.value;
    try {
      const doc = await options.store.models.BusinessSettings.findById('business', { domains: 1, authPolicy: 1 }).lean();
      const domains = [...(doc?.domains ?? options.defaultDomains)].map((d) => d.trim().toLowerCase()).filter(Boolean);
      const value: BusinessPolicy = { domains: [...new Set(domains)], authPolicy: doc?.authPolicy === 'reject' ? 'reject' : 'quarantine' };
      cached = { at: now(), value };
      return value;
    } catch (err) {
      if (cached && now() - cached.at < staleMs) return cached.value;
      throw new AppError('STORE_UNAVAILABLE', 'Temporary storage failure, please retry', { status: 503, smtpCode: 451, enhancedCode: '4.3.0', tag: 'GW01', cause: err });
    }
  };
}
