import { canonicalMailbox } from '../accounts/email-address';
import type { ParsedMessage } from './parse';

/**
 * Provider notices about forwarding, recognised by sender, signature and
 * structure — never by an English subject — so they work in every language
 * the provider writes in:
 *
 * - Gmail's forwarding confirmation (from forwarding-noreply@google.com,
 *   valid google.com DKIM — checked by the auth policy before this runs):
 *   a `(#code)` in the subject / a 6–12 digit code in the body, and a
 *   `https://mail-settings.google.com/mail/vf-…` confirmation link.
 * - Yahoo's forwarding verification (from a yahoo-inc.com notice sender):
 *   a verification link to a yahoo.com page and usually no code.
 * - Outlook.com / Microsoft 365 send no confirmation; instead Microsoft 365
 *   may refuse to forward at all and bounce with 5.7.520 ("external
 *   forwarding blocked"), which reaches Postroom when the employee forwards
 *   the bounce (or IMAP sync picks it up).
 *
 * The link is recorded, never followed: following it would confirm
 * forwarding on the employee's behalf, which is exactly what a phishing
 * "confirmation" wants.
 */

export interface ForwardingConfirmation {
  provider: string;
  code: string;
  link: string;
  /** The mailbox that asked to forward to us ('' when the notice does not name exactly one). */
  requester: string;
}

interface ConfirmationPattern {
  provider: string;
  /** What the console calls the provider ("Gmail sent a forwarding confirmation code"). */
  name: string;
  /** The confirmation link; its path is the same in every language. */
  link: RegExp;
  /** Domains of the provider's own addresses, never the requester. */
  ownDomains: readonly string[];
}

const PATTERNS: readonly ConfirmationPattern[] = [
  {
    provider: 'google',
    name: 'Gmail',
    link: /https:\/\/(?:mail-settings|mail)\.google\.com\/mail\/(?:u\/\d+\/)?vf-[^\s"'<>)\]]+/i,
    ownDomains: ['google.com'],
  },
  {
    provider: 'yahoo',
    name: 'Yahoo Mail',
    link: /https:\/\/(?:[a-z0-9-]+\.)*yahoo\.com\/[^\s"'<>)\]]*(?:forward|verif)[^\s"'<>)\]]*/i,
    // yahoo.com is where the requesting mailbox itself usually lives.
    ownDomains: ['yahoo-inc.com'],
  },
];

/** The provider's name for people; its id (stored, and in the API) when it is not one we read. */
export function confirmationProviderName(provider: string): string {
  return PATTERNS.find((p) => p.provider === provider)?.name ?? provider;
}

const URL_PATTERN = /\b(?:https?:\/\/|www\.)[^\s"'<>]+/gi;
const ADDRESS_PATTERN = /[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}/gi;
/** Gmail puts the code in the subject as "(#123456789)" in every language. */
const SUBJECT_CODE = /\(#\s*(\d{6,12})\s*\)/;
const BODY_CODE = /(?<![\d.,:/-])\d{6,12}(?![\d.,:/-]\d)/;

function decodeEntities(html: string): string {
  return html.replace(/&amp;/gi, '&').replace(/&#x2f;/gi, '/').replace(/&#47;/g, '/').replace(/&#64;|&commat;/gi, '@');
}

/**
 * Microsoft 365 (Defender Safe Links) rewrites every link of mail it relays into a redirect through
 * *.safelinks.protection.outlook.com carrying the original in `url`: put the original back, so the
 * provider's link is recognised and shown as the provider sent it.
 */
const SAFE_LINK = /https:\/\/[a-z0-9-]+\.safelinks\.protection\.outlook\.com\/?\?[^\s"'<>]+/gi;

function unwrapSafeLinks(text: string): string {
  return text.replace(SAFE_LINK, (wrapped) => {
    try {
      return new URL(wrapped).searchParams.get('url') || wrapped;
    } catch {
      return wrapped;
    }
  });
}

/** The text to search: the plain part, else the HTML with tags removed (href values kept for links). */
function searchableText(parsed: ParsedMessage): { text: string; links: string } {
  const html = unwrapSafeLinks(decodeEntities(parsed.html || ''));
  const hrefs = [...html.matchAll(/href\s*=\s*["']([^"']+)["']/gi)].map((m) => m[1]).join('\n');
  const htmlText = html.replace(/<(script|style)[\s\S]*?<\/\1>/gi, ' ').replace(/<[^>]+>/g, ' ');
  const text = unwrapSafeLinks(parsed.text || '') || htmlText;
  return { text, links: `${text}\n${hrefs}\n${htmlText}` };
}

function isOneOf(address: string, domains: readonly string[]): boolean {
  const domain = address.slice(address.lastIndexOf('@') + 1);
  return domains.some((d) => domain === d || domain.endsWith(`.${d}`));
}

/**
 * Read a provider's forwarding confirmation. `provider` is the notice
 * provider the auth policy established (valid provider DKIM); `ownDomains`
 * are the gateway's domains (the forwarding address itself is not the
 * requester). Null when the notice is not a forwarding confirmation.
 */
export function recognizeConfirmation(parsed: ParsedMessage, provider: string, ownDomains: readonly string[]): ForwardingConfirmation | null {
  const pattern = PATTERNS.find((p) => p.provider === provider);
  if (!pattern) return null;
  const { text, links } = searchableText(parsed);
  const link = pattern.link.exec(links)?.[0] ?? '';
  if (!link) return null;

  const withoutUrls = `${parsed.subject}\n${text}`.replace(URL_PATTERN, ' ');
  // Addresses go too: a requester such as jsmith198712@gmail.com, or the forwarding address's token, is no code.
  const code = SUBJECT_CODE.exec(parsed.subject)?.[1] ?? BODY_CODE.exec(text.replace(URL_PATTERN, ' ').replace(ADDRESS_PATTERN, ' '))?.[0] ?? '';

  const excluded = [...pattern.ownDomains, ...ownDomains];
  const candidates = new Set(
    [...withoutUrls.matchAll(ADDRESS_PATTERN)].map((m) => m[0].toLowerCase().replace(/\.$/, '')).filter((address) => !isOneOf(address, excluded)),
  );
  const requester = candidates.size === 1 ? [...candidates][0] : '';
  return { provider, code, link, requester };
}

/**
 * Is the mailbox that asked to forward the account's own? Gmail names the
 * requester as the Google account spells it (bob.smith@googlemail.com),
 * which need not be how the employee typed it (bobsmith@gmail.com).
 */
export function isRequesterMailbox(requester: string, accountEmail: string): boolean {
  return Boolean(requester) && canonicalMailbox(requester) === canonicalMailbox(accountEmail);
}

/** RFC 3463 extended status 5.7.520 is Microsoft 365's "external forwarding blocked by the organisation". */
const M365_FORWARDING_BLOCKED = /(?<![\d.])5\.7\.520(?!\d|\.\d)/;

export const M365_BLOCKED_PROBLEM =
  'Microsoft 365 refused to forward this mailbox to Postroom (5.7.520: the organisation does not allow automatic external forwarding). ' +
  'Fix: a Microsoft 365 admin opens Microsoft Defender → Email & collaboration → Policies & rules → Threat policies → Anti-spam policies → ' +
  'Anti-spam outbound policy, and sets "Automatic forwarding rules" to "On - Forwarding is enabled" for this mailbox (a custom outbound ' +
  'policy for just this user is enough). Alternatively turn on IMAP sync for this account.';

/** Is this (a forwarded copy of) Microsoft 365's external-forwarding-blocked bounce? */
export function recognizeForwardingBlocked(parsed: ParsedMessage): boolean {
  const { text } = searchableText(parsed);
  return M365_FORWARDING_BLOCKED.test(`${parsed.subject}\n${text}`);
}
