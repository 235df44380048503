/** Small formatting helpers available in every view (app.locals). */

import LinkifyIt from 'linkify-it';
import { DEFAULT_TIME_ZONE, formatInZone } from '../../gateway/core/time-zone';

export { confirmationProviderName } from '../../gateway/mail/confirmations';
export { displayAddressOrDomain as shownAddress } from '../../gateway/crm/address';

/** A stored instant as the reader's clock shows it, zone named ("2026-03-29 14:05 GMT+2"); see admin/middleware/time-zone.ts. */
export function formatDate(value: Date | string | null | undefined, timeZone: string = DEFAULT_TIME_ZONE): string {
  if (!value) return '—';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return '—';
  return formatInZone(date, timeZone);
}

export function timeAgo(value: Date | string | null | undefined, now: Date = new Date()): string {
  if (!value) return 'never';
  const seconds = Math.round((now.getTime() - new Date(value).getTime()) / 1000);
  if (seconds < 60) return 'just now';
  const units: Array<[number, string]> = [[86400 * 365, 'year'], [86400 * 30, 'month'], [86400, 'day'], [3600, 'hour'], [60, 'minute']];
  for (const [size, name] of units) {
    if (seconds >= size) {
      const count = Math.floor(seconds / size);
      return `${count} ${name}${count === 1 ? '' : 's'} ago`;
    }
  }
  return 'just now';
}

/**
 * "3 hours ago" in a <time> element whose tooltip is the exact time on the reader's clock (formatDate) and
 * whose datetime is the instant: "Last synced 3 hours ago" alone could not say whether that was before or
 * after the outage at 14:00. Output with <%- %>; "never" when there is no time.
 */
export function relativeTime(value: Date | string | null | undefined, now: Date, timeZone: string = DEFAULT_TIME_ZONE): string {
  if (!value || Number.isNaN(new Date(value).getTime())) return 'never';
  const date = new Date(value);
  return `<time datetime="${date.toISOString()}" title="${escapeHtml(formatDate(date, timeZone))}">${escapeHtml(timeAgo(date, now))}</time>`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * How far the sender's Date header is from when the mail arrived, when that is more than a day: the inbox
 * lists mail by arrival, so a message "written" in 2019 (a wrong clock, a resent old mail, a forged date) sits
 * among today's, and the message page says why. '' when they agree.
 */
export function dateDrift(date: Date | string | null | undefined, receivedAt: Date | string | null | undefined): string {
  if (!date || !receivedAt) return '';
  const difference = new Date(receivedAt).getTime() - new Date(date).getTime();
  if (Number.isNaN(difference) || Math.abs(difference) < 86_400_000) return '';
  const days = Math.round(Math.abs(difference) / 86_400_000);
  const span = days >= 730 ? `${Math.round(days / 365)} years` : days >= 60 ? `${Math.round(days / 30)} months` : `${days} day${days === 1 ? '' : 's'}`;
  return difference > 0
    ? `written ${span} before it arrived; the inbox lists mail by arrival`
    : `dated ${span} after it arrived (the sender's clock is wrong, or the date is made up); the inbox lists mail by arrival`;
}

export function formatBytes(size: number): string {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

export interface Badge {
  label: string;
  tone: 'green' | 'amber' | 'red' | 'grey' | 'blue';
}

const FORWARDING: Record<string, Badge> = {
  waiting: { label: 'Forwarding: waiting', tone: 'grey' },
  code_received: { label: 'Forwarding: confirmation received', tone: 'amber' },
  verified: { label: 'Forwarding: verified', tone: 'green' },
  broken: { label: 'Forwarding: broken', tone: 'red' },
  blocked: { label: 'Forwarding: blocked', tone: 'red' },
};

const IMAP: Record<string, Badge> = {
  off: { label: 'IMAP: off', tone: 'grey' },
  unverified: { label: 'IMAP: not authenticated', tone: 'amber' },
  authenticated: { label: 'IMAP: authenticated', tone: 'green' },
  failing: { label: 'IMAP: failing', tone: 'red' },
};

export function forwardingBadge(status: string): Badge {
  return FORWARDING[status] ?? { label: `Forwarding: ${status}`, tone: 'grey' };
}

/** Forwarding not verified yet: the account page keeps asking for its state (a provider's code may arrive any moment). */
export function forwardingPending(status: string): boolean {
  return status === 'waiting' || status === 'code_received';
}

export function imapBadge(status: string): Badge {
  return IMAP[status] ?? { label: `IMAP: ${status}`, tone: 'grey' };
}

export function verdictBadge(verdict: string): Badge {
  if (verdict === 'pass') return { label: 'auth pass', tone: 'green' };
  if (verdict === 'fail') return { label: 'auth fail', tone: 'red' };
  return { label: 'auth none', tone: 'grey' };
}

/**
 * The Sender line of a message's Authentication panel: is the From address's domain authenticated
 * (auth.sender, DMARC here or at a trusted forwarder)? "Cannot be checked" says why from the stored DMARC
 * result: a lookup that failed (DNS) or a broken record is not "no DMARC policy".
 */
export function senderAuthWords(auth: { sender?: string; dmarc?: string } | null | undefined, fromAddress = ''): string {
  const sender = auth?.sender ?? '';
  if (sender === 'pass') return 'authenticated';
  if (sender === 'fail') return 'not verified — the From address may be forged';
  if (sender !== 'none') return sender;
  const at = fromAddress.lastIndexOf('@');
  const domain = at >= 0 ? fromAddress.slice(at + 1).toLowerCase() : 'its domain';
  if (auth?.dmarc === 'temperror') return `cannot be checked now: the DMARC lookup of ${domain} failed (DNS)`;
  if (auth?.dmarc === 'permerror') return `cannot be checked: the DMARC record of ${domain} is broken`;
  return 'cannot be checked (no DMARC policy)';
}

export const SOURCE_NAMES: Record<string, string> = { forward: 'Forwarded', mx: 'MX', imap: 'IMAP', sent: 'Sent' };

/** The Authentication filter's choices in words, as the other filters have ("pass" alone read like a verb). */
export const VERDICT_NAMES: Record<string, string> = { pass: 'Passed', fail: 'Failed', none: 'No result' };

/** Build a query string from filters, leaving out empty values. */
export function queryString(params: Record<string, string | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) search.set(key, value);
  const text = search.toString();
  return text ? `?${text}` : '';
}

export function displayAddress(address: { name?: string; address?: string } | null | undefined): string {
  if (!address) return '';
  if (address.name && disguisedAddress(address)) return `${address.address ?? ''} (calling itself “${address.name}”)`;
  return address.name ? `${address.name} <${address.address ?? ''}>` : address.address ?? '';
}

/**
 * Is the display name an e-mail address other than the real one ("ceo@acme.com" <fraud@gmail.com>)? The
 * classic display-name spoof: a list showing names shows the forged address as the sender. Such a name
 * is never shown on its own.
 */
export function disguisedAddress(named: { name?: string; address?: string } | null | undefined): boolean {
  const shown = /[^\s<>"'@()[\],;]+@[^\s<>"'@()[\],;]+\.[^\s<>"'@()[\],;]*[^\s<>"'@()[\],;.]/.exec(named?.name ?? '')?.[0];
  return Boolean(shown) && shown!.toLowerCase() !== (named?.address ?? '').trim().toLowerCase();
}

type Named = { name?: string; address?: string };

/**
 * Who a row of a message list names: the sender, except for mail the user
 * sent, where every row would name the user; those name the recipients
 * ("To: Alice Customer, Carol"), as a Sent folder does.
 */
export function listCorrespondent(message: { from?: Named | null; to?: Named[]; sources?: string[] }): { label: string; title: string } {
  if (message.sources?.includes('sent')) {
    const to = (message.to ?? []).filter((m) => m.address);
    if (to.length === 0) return { label: 'To: (Bcc only)', title: '' };
    return { label: `To: ${to.map((m) => m.name || m.address).join(', ')}`, title: to.map((m) => m.address).join(', ') };
  }
  if (disguisedAddress(message.from)) return { label: message.from?.address ?? '', title: `Its display name “${message.from?.name ?? ''}” is not its address` };
  return { label: message.from?.name || message.from?.address || '(unknown sender)', title: message.from?.address ?? '' };
}

/**
 * The attributes of a link in a navigation that may be the page shown: the highlight alone is a colour-only
 * signal, aria-current tells a screen reader which one it is (WCAG 1.3.1). Output with <%- %> right after
 * the tag's last attribute: it brings its own leading space.
 */
export function navCurrent(active: boolean): string {
  return active ? ' class="active" aria-current="page"' : '';
}

/**
 * The attributes that tie a form field to its hint (`${id}-hint`, when it has one) and its error
 * (partials/field-error.ejs renders it as `${id}-error`), so a screen reader reads both with the field and
 * hears it is invalid (WCAG 3.3.1, 1.3.1). Output with <%- %> right after an attribute: it brings its own
 * leading space, and nothing at all for a field with neither.
 */
export function fieldAttrs(id: string, error: unknown, options: { hint?: boolean } = {}): string {
  const safeId = id.replace(/[^A-Za-z0-9_-]/g, '');
  const describedBy = [options.hint ? `${safeId}-hint` : '', error ? `${safeId}-error` : ''].filter(Boolean).join(' ');
  return (error ? ' aria-invalid="true"' : '') + (describedBy ? ` aria-describedby="${describedBy}"` : '');
}

const linkify = new LinkifyIt();

/**
 * Plain text cut into runs, the web and mail addresses in it with the URL to open (linkify-it finds them:
 * trailing punctuation, brackets and quotes stay outside). The view escapes every run; only http, https
 * and mailto become links. A plain-text mail's links were text to copy by hand.
 */
export function textWithLinks(text: string): Array<{ text: string; href?: string }> {
  const runs: Array<{ text: string; href?: string }> = [];
  let last = 0;
  for (const match of linkify.match(text) ?? []) {
    if (!/^(https?|mailto):/i.test(match.url)) continue;
    if (match.index > last) runs.push({ text: text.slice(last, match.index) });
    runs.push({ text: text.slice(match.index, match.lastIndex), href: match.url });
    last = match.lastIndex;
  }
  if (last < text.length) runs.push({ text: text.slice(last) });
  return runs;
}
