import addressparser from 'nodemailer/lib/addressparser';
import { inDomains, isPublicSuffix, normalizeAddress, normalizeDomain } from './address';
import type { CrmSettings } from './settings';

/**
 * Validation and normalisation of CRM object fields, shared by the console
 * forms, the JSON API and CSV import (pure: store lookups such as "does the
 * customer exist" happen in objects.ts).
 */

export const OBJECT_TYPE_NAMES = ['customer', 'contact', 'lead'] as const;
export type ObjectTypeName = (typeof OBJECT_TYPE_NAMES)[number];

export const LIMITS = { name: 200, company: 200, externalId: 200, emails: 100, domains: 50, neverLink: 500 } as const;

export interface ObjectInput {
  type?: string;
  name?: string;
  /** An array, or one string separated by commas, semicolons, spaces or new lines; "Name <address>" is read too. */
  emails?: string[] | string;
  domains?: string[] | string;
  company?: string;
  /** Contacts: the customer (company) they belong to, by id. */
  customerId?: string | null;
  externalId?: string;
  rules?: { linkBulk?: boolean | string; neverLink?: string[] | string };
}

export interface NormalizedObject {
  type?: ObjectTypeName;
  name?: string;
  nameLower?: string;
  emails?: string[];
  domains?: string[];
  company?: string;
  customerId?: string | null;
  externalId?: string;
  linkBulk?: boolean;
  neverLink?: string[];
}

export type FieldErrors = Record<string, string>;

export function splitList(value: string[] | string | undefined | null): string[] {
  if (value === undefined || value === null) return [];
  const parts = Array.isArray(value) ? value.flatMap((v) => String(v ?? '').split(/[\s,;]+/)) : String(value).split(/[\s,;]+/);
  return parts.map((part) => part.trim()).filter(Boolean);
}

/**
 * Addresses as people paste them from a mail client ("Jane Roe <jane@globex.com>,
 * "Roe, Bob" <bob@globex.com>") or type them (separated by commas,
 * semicolons, spaces or new lines). A line with a display name is read by
 * nodemailer's RFC 5322 address parser; the others are split as plain lists.
 * An entry that is not an address comes back as typed, for the error.
 */
export function splitAddressList(value: string[] | string | undefined | null): string[] {
  if (value === undefined || value === null) return [];
  const lines = (Array.isArray(value) ? value : [value]).flatMap((v) => String(v ?? '').split(/\r?\n/));
  return lines.flatMap((line) => {
    if (!/[<"]/.test(line)) return splitList(line);
    const parsed = addressparser(line.replace(/;/g, ','), { flatten: true }) as Array<{ name?: string; address?: string }>;
    return parsed.flatMap((item) => {
      const name = (item.name ?? '').trim();
      // "Jane <jane@x.com> bob@y.com" parses as one address with bob@ in its name: show it as not an address.
      if (!item.address || /@/.test(name.replace(/^".*"$/, ''))) return [name || line.trim()];
      return [item.address];
    });
  }).map((entry) => entry.trim()).filter(Boolean);
}

export function parseBoolean(value: unknown): boolean | null {
  if (typeof value === 'boolean') return value;
  if (typeof value !== 'string') return null;
  const v = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on', 'y'].includes(v)) return true;
  if (['', '0', 'false', 'no', 'off', 'n'].includes(v)) return false;
  return null;
}

const quoteList = (items: string[]) => items.map((item) => `"${item}"`).join(', ');

/**
 * Normalise the fields present in `input`. With `partial` false, type and
 * name are required. `type` is the effective type for checks that depend on
 * it (an update that does not change the type passes the current one).
 */
export function normalizeObjectInput(
  input: ObjectInput,
  options: { partial: boolean; currentType?: ObjectTypeName; settings: Pick<CrmSettings, 'stripSubaddress' | 'isFreemail' | 'businessDomains'> },
): { value: NormalizedObject; errors: FieldErrors } {
  const errors: FieldErrors = {};
  const value: NormalizedObject = {};

  if (input.type !== undefined || !options.partial) {
    const type = String(input.type ?? '').trim().toLowerCase();
    if (!(OBJECT_TYPE_NAMES as readonly string[]).includes(type)) errors.type = `must be ${OBJECT_TYPE_NAMES.join(', ')}`;
    else value.type = type as ObjectTypeName;
  }
  const type = value.type ?? options.currentType;

  if (input.name !== undefined || !options.partial) {
    const name = String(input.name ?? '').trim().replace(/\s+/g, ' ');
    if (!name) errors.name = 'is required';
    else if (name.length > LIMITS.name) errors.name = `must be at most ${LIMITS.name} characters`;
    else {
      value.name = name;
      value.nameLower = name.toLowerCase();
    }
  }

  if (input.emails !== undefined) {
    const raw = splitAddressList(input.emails);
    const bad: string[] = [];
    const emails = new Set<string>();
    for (const entry of raw) {
      const normalized = normalizeAddress(entry, { stripSubaddress: options.settings.stripSubaddress });
      if (normalized) emails.add(normalized);
      else bad.push(entry);
    }
    if (bad.length > 0) errors.emails = `${quoteList(bad)} ${bad.length === 1 ? 'is not an email address' : 'are not email addresses'} (example: jane@customer.com)`;
    else if (emails.size > LIMITS.emails) errors.emails = `at most ${LIMITS.emails} addresses`;
    else value.emails = [...emails];
  }

  if (input.domains !== undefined) {
    const raw = splitList(input.domains);
    if (raw.length > 0 && type && type !== 'customer') {
      errors.domains = 'only customers have domains (link contacts and leads by address)';
    } else {
      const bad: string[] = [];
      const free: string[] = [];
      const own: string[] = [];
      const suffixes: string[] = [];
      const domains = new Set<string>();
      const business = new Set(options.settings.businessDomains);
      for (const entry of raw) {
        const normalized = normalizeDomain(entry.replace(/^.*@/, ''));
        if (!normalized) bad.push(entry);
        else if (options.settings.isFreemail(normalized)) free.push(normalized);
        else if (isPublicSuffix(normalized)) suffixes.push(normalized);
        // A business domain's subdomain (eu.acme.com) is the business's too: mail there is never matched by domain.
        else if (inDomains(normalized, business)) own.push(normalized);
        else domains.add(normalized);
      }
      if (bad.length > 0) errors.domains = `${quoteList(bad)} ${bad.length === 1 ? 'is not a domain name' : 'are not domain names'} (example: customer.com)`;
      else if (free.length > 0) errors.domains = `${quoteList(free)} ${free.length === 1 ? 'is a free-mail domain' : 'are free-mail domains'}: every user of it would be linked; add the person's address instead`;
      else if (suffixes.length > 0) errors.domains = `${quoteList(suffixes)} ${suffixes.length === 1 ? 'is a public suffix' : 'are public suffixes'} under which anyone registers a domain: every company under it would be linked; enter the customer's own domain (example: customer.co.uk)`;
      else if (own.length > 0) errors.domains = `${quoteList(own)} ${own.length === 1 ? 'is one of your business domains (or under one)' : 'are your business domains (or under them)'}: mail there is your own and never links a customer`;
      else if (domains.size > LIMITS.domains) errors.domains = `at most ${LIMITS.domains} domains`;
      else value.domains = [...domains];
    }
  }

  if (input.company !== undefined) {
    const company = String(input.company ?? '').trim();
    if (company.length > LIMITS.company) errors.company = `must be at most ${LIMITS.company} characters`;
    else value.company = company;
  }

  if (input.customerId !== undefined) {
    const id = input.customerId === null ? '' : String(input.customerId).trim();
    if (id && type && type !== 'contact') errors.customerId = 'only contacts belong to a customer';
    else if (id && !/^[0-9a-f]{24}$/i.test(id)) errors.customerId = 'must be the id of a customer';
    else value.customerId = id ? id.toLowerCase() : null;
  }

  if (input.externalId !== undefined) {
    const externalId = String(input.externalId ?? '').trim();
    if (externalId.length > LIMITS.externalId) errors.externalId = `must be at most ${LIMITS.externalId} characters`;
    else if (externalId.startsWith('local:')) errors.externalId = 'must not start with "local:" (reserved for records made in Postroom)';
    else if (externalId) value.externalId = externalId;
  }

  if (input.rules?.linkBulk !== undefined) {
    const linkBulk = parseBoolean(input.rules.linkBulk);
    if (linkBulk === null) errors.linkBulk = 'must be true or false';
    else value.linkBulk = linkBulk;
  }
  if (input.rules?.neverLink !== undefined) {
    const raw = splitList(input.rules.neverLink);
    const bad: string[] = [];
    const entries = new Set<string>();
    for (const entry of raw) {
      const normalized = entry.includes('@')
        ? normalizeAddress(entry, { stripSubaddress: options.settings.stripSubaddress })
        : normalizeDomain(entry);
      if (normalized) entries.add(normalized);
      else bad.push(entry);
    }
    if (bad.length > 0) errors.neverLink = `${quoteList(bad)} ${bad.length === 1 ? 'is neither an address nor a domain' : 'are neither addresses nor domains'}`;
    else if (entries.size > LIMITS.neverLink) errors.neverLink = `at most ${LIMITS.neverLink} entries`;
    else value.neverLink = [...entries];
  }
  return { value, errors };
}

/**
 * Lower-case search terms: name and company words, addresses, their local
 * parts and domains, and the object's domains (both A-label and Unicode
 * spelling are matched by normalising the query the same way).
 */
export function searchTermsFor(object: { name: string; company?: string | null; emails?: readonly string[] | null; domains?: readonly string[] | null; externalId?: string | null }): string[] {
  const terms = new Set<string>();
  const words = (text: string) => text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  for (const word of words(object.name)) terms.add(word);
  terms.add(object.name.toLowerCase());
  for (const word of words(object.company ?? '')) terms.add(word);
  for (const email of object.emails ?? []) {
    terms.add(email);
    const at = email.lastIndexOf('@');
    terms.add(email.slice(0, at));
    terms.add(email.slice(at + 1));
  }
  for (const domain of object.domains ?? []) terms.add(domain);
  if (object.externalId && !object.externalId.startsWith('local:')) terms.add(object.externalId.toLowerCase());
  return [...terms].filter((term) => term.length <= 256).slice(0, 300);
}
