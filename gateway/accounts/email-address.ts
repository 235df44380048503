import { domainToASCII } from 'node:url';
import { z } from 'zod';

/**
 * zod's own email pattern (z.regexes.email) with one change: the top-level domain may be an A-label
 * (RFC 5890), as every internationalised TLD is once converted: info@пример.рф is info@xn--e1afmkfd.xn--p1ai,
 * which its letters-only `[A-Za-z]{2,}` refused ("not an email address"), for mailboxes and recipients alike.
 */
const emailSchema = z.email({ pattern: new RegExp(z.regexes.email.source.replace('[A-Za-z]{2,}$', '(?:[A-Za-z]{2,}|xn--[A-Za-z0-9-]{2,59})$')) });

/**
 * Mailbox addresses are compared lower-cased. RFC 5321 §2.4 lets a server
 * treat the local part case-sensitively, but no provider Postroom works with
 * does, and people type their address in any case.
 */
export function normalizeEmail(value: string): string {
  const lower = value.trim().toLowerCase();
  // An IDN domain (RFC 5891) is kept in its A-label form, the one IMAP logins, SMTP envelopes and the
  // forwarding address need: `info@münchen.de` was refused as "not an email address", and the same
  // mailbox written `info@xn--mnchen-3ya.de` did not match the Unicode form mail headers are read in.
  const at = lower.lastIndexOf('@');
  if (at < 0 || !/[^\x00-\x7f]/.test(lower.slice(at + 1))) return lower;
  const ascii = domainToASCII(lower.slice(at + 1));
  return ascii ? `${lower.slice(0, at + 1)}${ascii}` : lower;
}

/** Why `value` is not a usable mailbox address, or null. */
export function emailProblem(value: string): string | null {
  const email = normalizeEmail(value);
  if (!email) return 'enter an email address';
  if (email.length > 254) return 'is longer than 254 characters (RFC 5321 §4.5.3.1)';
  if (!emailSchema.safeParse(email).success) return 'is not an email address such as bob@acme.com';
  return null;
}

export function domainOf(email: string): string {
  return email.slice(email.lastIndexOf('@') + 1);
}

/** Gmail's own names for one mailbox: googlemail.com is gmail.com, and dots in the local part are ignored. */
const GMAIL_DOMAINS = new Set(['gmail.com', 'googlemail.com']);

/** The mailbox an address reaches, as its provider sees it: bob.smith@googlemail.com → bobsmith@gmail.com. */
export function canonicalMailbox(address: string): string {
  const lower = normalizeEmail(address);
  const at = lower.lastIndexOf('@');
  if (at < 0 || !GMAIL_DOMAINS.has(lower.slice(at + 1))) return lower;
  return `${lower.slice(0, at).replace(/\./g, '')}@gmail.com`;
}
