import { normalizeDomain } from './address';

/**
 * Free-mail domains: a person writing from gmail.com is not "the customer
 * gmail.com", so these never link a message to a customer by domain (exact
 * address matches still count).
 *
 * The base list is the npm package `email-providers` (derhuerst, ISC, data
 * from goware/emailproviders, republished monthly; plain JSON, no install
 * script). It was chosen over `free-email-domains`, whose postinstall script
 * downloads its list at install time and fails offline. A few well-known
 * providers missing from it are added below; admins extend the list per
 * business in BusinessSettings.freemailDomains.
 */
const PROVIDERS: string[] = require('email-providers/all.json');

/** Providers missing from the package at the pinned version (checked 2.26.0). */
const EXTRA_FREEMAIL = [
  'fastmail.com', 'tutanota.com', 'tutanota.de', 'tuta.io', 'tuta.com', 'posteo.de', 'posteo.net',
  'proton.me', 'protonmail.ch', 'pm.me', 'icloud.com', 'me.com', 'mac.com', 'googlemail.com',
  'outlook.com', 'hotmail.com', 'live.com', 'msn.com', 'yahoo.com', 'ymail.com', 'aol.com', 'gmail.com',
  'zoho.com', 'zohomail.com', 'gmx.com', 'gmx.net', 'gmx.de', 'web.de', 'mail.com', 'yandex.ru', 'yandex.com',
  'mail.ru', 'qq.com', '163.com', '126.com', 'naver.com', 'hey.com', 'duck.com', 'skiff.com',
];

let builtin: ReadonlySet<string> | undefined;

/** The built-in list, in A-label form (the package contains a few Unicode domains). */
export function builtinFreemailDomains(): ReadonlySet<string> {
  if (!builtin) {
    const set = new Set<string>();
    for (const entry of [...PROVIDERS, ...EXTRA_FREEMAIL]) {
      const domain = normalizeDomain(entry);
      if (domain) set.add(domain);
    }
    builtin = set;
  }
  return builtin;
}

/** A checker for the built-in list plus a business's own additions. */
export function freemailChecker(extra: readonly string[] = []): (domain: string) => boolean {
  const base = builtinFreemailDomains();
  const added = new Set(extra.map((d) => normalizeDomain(d)).filter((d): d is string => d !== null));
  return (domain: string) => base.has(domain) || added.has(domain);
}
