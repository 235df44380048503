import { domainToASCII } from 'node:url';
import addressparser from 'nodemailer/lib/addressparser';
import { emailProblem } from '../accounts/email-address';

export interface Mailbox {
  name: string;
  address: string;
}

/**
 * RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients per
 * message; more than that is where providers start refusing, so Postroom
 * stops there too.
 */
export const MAX_RECIPIENTS = 100;

/**
 * Header injection (CWE-93): a CR or LF in anything that ends up in a header
 * would let the sender add headers or a body of their own. Every header
 * field is refused outright rather than cleaned, so the user sees what was
 * wrong; NUL is refused for the same reason (RFC 5322 §2.2 forbids it).
 */
export const LINE_BREAK = /[\r\n\0]/;
export const LINE_BREAK_PROBLEM = 'must not contain line breaks (CR or LF)';

/** Other control characters (RFC 5322 §2.2: header fields are printable US-ASCII plus WSP; RFC 6532 adds UTF-8). */
const CONTROL = /[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]/;

/** People separate addresses with ";" too (Outlook does); one inside a quoted name ("Smith; Anna") is part of the name. */
function semicolonsAsCommas(text: string): string {
  let quoted = false;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === '\\' && quoted) {
      out += char + (text[i + 1] ?? '');
      i++;
      continue;
    }
    if (char === '"') quoted = !quoted;
    out += char === ';' && !quoted ? ',' : char;
  }
  return out;
}

/** Why a header value is unusable, or null. */
export function headerValueProblem(value: string): string | null {
  if (LINE_BREAK.test(value)) return LINE_BREAK_PROBLEM;
  if (CONTROL.test(value)) return 'must not contain control characters';
  return null;
}

/**
 * Parse a To/Cc/Bcc field as people type it ("Alice <alice@x.com>, bob@y.com",
 * one per line or separated by commas or semicolons) or as a list. Returns
 * the mailboxes or a problem naming the first bad entry. Groups (RFC 5322
 * §3.4) are flattened to their members.
 */
export function parseAddressList(input: string | string[] | undefined): { mailboxes: Mailbox[]; problem: string | null } {
  const entries = (Array.isArray(input) ? input : [input ?? '']).map((entry) => String(entry));
  for (const entry of entries) {
    const problem = headerValueProblem(entry);
    if (problem) return { mailboxes: [], problem };
  }
  const mailboxes: Mailbox[] = [];
  for (const entry of entries) {
    const text = semicolonsAsCommas(entry).trim();
    if (!text) continue;
    const parsed = addressparser(text, { flatten: true }) as Array<{ name?: string; address?: string }>;
    const bracketed = text.toLowerCase().replace(/<\s+/g, '<').replace(/\s+>/g, '>');
    const inBrackets = (address: string) => bracketed.includes(`<${address.toLowerCase()}>`);
    for (const item of parsed) {
      const address = (item.address ?? '').trim();
      const name = (item.name ?? '').trim();
      if (!address) return { mailboxes: [], problem: `"${(name || text).slice(0, 80)}" is not an email address such as bob@acme.com` };
      // "a@x.com b@y.com" parses as one address with the other as its display name, and so does "A <a@x.com> <b@y.com>".
      // A name that only mentions an address, before an address in brackets, is a name: Google Groups
      // writes "'alice@x.com' via Sales" <sales@googlegroups.com>, and a reply must be able to go back.
      const nameAddress = /[^\s@<>"']+@[^\s@<>"']+\.[^\s@<>"']+/.exec(name)?.[0];
      if (nameAddress && (!inBrackets(address) || inBrackets(nameAddress))) {
        return { mailboxes: [], problem: `separate the addresses ${address} and ${name.slice(0, 80)} with a comma` };
      }
      const ascii = asciiAddress(address);
      if ('problem' in ascii) return { mailboxes: [], problem: ascii.problem };
      const problem = recipientProblem(ascii.address);
      if (problem) return { mailboxes: [], problem: `${address.slice(0, 80)} ${problem}` };
      mailboxes.push({ name, address: ascii.address });
    }
  }
  return { mailboxes, problem: null };
}

const NON_ASCII = /[^\x00-\x7f]/;

/** RFC 5322 §3.2.3 dot-atom of atext: a local part every server takes unquoted (RFC 5321 §4.1.2 Dot-string). */
const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;

/**
 * Why a recipient address cannot be sent to, or null. The shared check (emailProblem, zod's pattern) leaves
 * out atext characters RFC 5322 allows in a local part — & = # / ! { } ~ and others: sales&service@…,
 * a VERP or SRS address with "=" could not be written to or replied to. Its domain rules still apply.
 */
function recipientProblem(address: string): string | null {
  const problem = emailProblem(address);
  if (!problem) return null;
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  const domainOk = at > 0 && !emailProblem(`x${address.slice(at)}`);
  return address.length <= 254 && local.length <= 64 && DOT_ATOM.test(local) && domainOk ? null : problem;
}

/**
 * An internationalised domain (info@müller.de) goes out in its ASCII form
 * (IDNA, RFC 5891: info@xn--mller-kva.de), which every server takes. Letters
 * outside ASCII before the @ would need SMTPUTF8 (RFC 6531) of every server
 * on the way, which Postroom does not ask for: that is said plainly.
 */
function asciiAddress(address: string): { address: string } | { problem: string } {
  if (!NON_ASCII.test(address)) return { address };
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  if (at < 1 || NON_ASCII.test(local)) {
    return { problem: `${address.slice(0, 80)} has letters outside ASCII before the @; such addresses cannot be sent to from Postroom (they need SMTPUTF8, RFC 6531)` };
  }
  const domain = domainToASCII(address.slice(at + 1));
  if (!domain) return { problem: `${address.slice(0, 80)} is not an email address such as bob@acme.com (its domain is not a valid internationalised name)` };
  return { address: `${local}@${domain}` };
}

/**
 * The mailbox as an RFC 5322 address: the display name a quoted-string, its `"` and `\\` escaped as
 * quoted-pairs (RFC 5322 §3.2.4), so `Bob "JJ" Smith` reads back as written instead of losing its quotes.
 */
export function formatMailbox(mailbox: Mailbox): string {
  return mailbox.name ? `"${mailbox.name.replace(/["\\]/g, '\\$&')}" <${mailbox.address}>` : mailbox.address;
}

/**
 * The mailbox as a person types it in a To field: the name bare when it is
 * plain words ("Alice Customer <alice@x.com>"), quoted when it holds a
 * special (RFC 5322 §3.2.3) that would split or change it on the way back
 * through parseAddressList ("Smith; Anna", "Doe, John (Sales)").
 */
export function typedMailbox(mailbox: Mailbox): string {
  if (!mailbox.name) return mailbox.address;
  return /[()<>[\]:;@\\,"]/.test(mailbox.name) ? formatMailbox(mailbox) : `${mailbox.name} <${mailbox.address}>`;
}

/** Lower-cased, de-duplicated addresses of several lists, in order. */
export function uniqueAddresses(...lists: Mailbox[][]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const mailbox of lists.flat()) {
    const key = mailbox.address.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(mailbox.address);
  }
  return out;
}
