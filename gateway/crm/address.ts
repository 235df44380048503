import { domainToASCII, domainToUnicode } from 'node:url';
import { getDomain } from 'tldts';

/**
 * Address normalisation for CRM matching. An address is matched the way a
 * person reads it, not byte for byte:
 * - Unicode: the local part in NFC (composed) form;
 * - case: RFC 5321 §2.4 lets a server treat the local part case-sensitively,
 *   but no mainstream provider does, and CRMs store addresses as typed;
 * - domain: IDNA (RFC 5891) A-label form ("xn--…") via WHATWG domainToASCII,
 *   so `bob@Bücher.de` and `bob@xn--bcher-kva.de` are one address;
 * - sub-address (RFC 5233 "+detail"): optionally stripped, so mail to
 *   `bob+crm@acme.com` reaches the contact `bob@acme.com`.
 */

export interface NormalizeOptions {
  /** Strip a `+detail` sub-address from the local part (RFC 5233). */
  stripSubaddress?: boolean;
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * A domain in lower-case A-label form, or null when it is not a usable
 * domain name (single label, bad characters, too long). A trailing root dot
 * is dropped.
 */
export function normalizeDomain(input: string): string | null {
  if (typeof input !== 'string') return null;
  const trimmed = input.trim().replace(/^@/, '').replace(/\.$/, '');
  if (!trimmed || /\s/.test(trimmed)) return null;
  const ascii = domainToASCII(trimmed.toLowerCase());
  if (!ascii || ascii.length > 253) return null;
  const labels = ascii.split('.');
  if (labels.length < 2) return null;
  if (!labels.every((label) => LABEL.test(label))) return null;
  // A top-level label is never all digits: that would be an IP literal.
  if (/^\d+$/.test(labels[labels.length - 1])) return null;
  return ascii;
}

/** The Unicode (U-label) form of an A-label domain, for display and for matching stored Unicode addresses. */
export function unicodeDomain(asciiDomain: string): string {
  return domainToUnicode(asciiDomain) || asciiDomain;
}

/** A stored (A-label) address or domain as people write it: `info@müller.de`, not `info@xn--mller-kva.de`. */
export function displayAddressOrDomain(stored: string): string {
  const at = stored.lastIndexOf('@');
  return at < 0 ? unicodeDomain(stored) : `${stored.slice(0, at + 1)}${unicodeDomain(stored.slice(at + 1))}`;
}

export interface ParsedAddress {
  local: string;
  domain: string;
}

/** Split `local@domain` at the last '@' (a quoted local part may contain one). */
export function splitAddress(input: string): ParsedAddress | null {
  if (typeof input !== 'string') return null;
  let value = input.trim();
  const angle = /<([^<>]*)>\s*$/.exec(value);
  if (angle) value = angle[1].trim();
  value = value.replace(/^mailto:/i, '');
  const at = value.lastIndexOf('@');
  if (at <= 0 || at === value.length - 1) return null;
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  if (/[\s<>]/.test(local) && !/^".*"$/.test(local)) return null;
  if (local.length > 64 * 4) return null;
  return { local, domain };
}

/** Remove an RFC 5233 `+detail` from an (unquoted) local part; `+only` stays as is. */
export function stripSubaddress(local: string): string {
  if (local.startsWith('"')) return local;
  const plus = local.indexOf('+');
  return plus > 0 ? local.slice(0, plus) : local;
}

/**
 * The normalised form of an address, or null when it is not an address.
 * Normalising twice gives the same result.
 */
export function normalizeAddress(input: string, options: NormalizeOptions = {}): string | null {
  const parts = splitAddress(input);
  if (!parts) return null;
  const domain = normalizeDomain(parts.domain);
  if (!domain) return null;
  // RFC 6532 §3.1: a UTF-8 local part may arrive composed ("ë") or decomposed ("e" + U+0308, as macOS
  // types it); both are the same address. IDNA does this for the domain.
  let local = parts.local.normalize('NFC').toLowerCase();
  if (options.stripSubaddress) local = stripSubaddress(local);
  if (!local) return null;
  return `${local}@${domain}`;
}

/** Domain of a normalised address. */
export function domainOf(normalizedAddress: string): string {
  return normalizedAddress.slice(normalizedAddress.lastIndexOf('@') + 1);
}

/**
 * The domain and its parents that are still real domains (two labels or
 * more): `eu.mail.acme.com` → [eu.mail.acme.com, mail.acme.com, acme.com].
 * A customer's domain matches its subdomains too.
 */
export function domainAndParents(domain: string): string[] {
  const labels = domain.split('.');
  const result: string[] = [];
  for (let i = 0; i + 2 <= labels.length; i++) result.push(labels.slice(i).join('.'));
  return result;
}

/**
 * True for a public suffix (Public Suffix List, ICANN and private sections:
 * `co.uk`, `com.au`, `github.io`), under which unrelated parties register
 * their own domains. Such a "domain" never links a message: a customer with
 * `co.uk` would own every British company's mail. The list is the one the
 * `tldts` package ships (mailauth uses it too for DMARC's organisational
 * domain).
 */
export function isPublicSuffix(asciiDomain: string): boolean {
  return getDomain(asciiDomain, { allowPrivateDomains: true }) === null;
}

/** True when `domain` is one of `domains` or a subdomain of one. */
export function inDomains(domain: string, domains: ReadonlySet<string>): boolean {
  return domainAndParents(domain).some((candidate) => domains.has(candidate));
}

/** Normalise a list, dropping invalid entries and duplicates (order kept). */
export function normalizeAddressList(inputs: readonly string[], options: NormalizeOptions = {}): string[] {
  const seen = new Set<string>();
  for (const input of inputs) {
    const normalized = normalizeAddress(input, options);
    if (normalized) seen.add(normalized);
  }
  return [...seen];
}

export function normalizeDomainList(inputs: readonly string[]): string[] {
  const seen = new Set<string>();
  for (const input of inputs) {
    const normalized = normalizeDomain(input);
    if (normalized) seen.add(normalized);
  }
  return [...seen];
}
