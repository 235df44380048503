import { convert as htmlToText } from 'html-to-text';
import { canonicalMailbox, domainOf, normalizeEmail } from '../accounts/email-address';
import { DEFAULT_TIME_ZONE, rfc5322DateInZone } from '../core/time-zone';
import type { Mailbox } from './addresses';
import type { OwnAddresses } from './own-addresses';

/**
 * Replying and forwarding, as pure functions over a stored message: who the
 * reply goes to, the subject, the threading headers and the quoted text.
 */

export const ORIGINAL_ACTIONS = ['reply', 'reply-all', 'forward'] as const;
export type OriginalAction = (typeof ORIGINAL_ACTIONS)[number];

/** What these functions read of a stored Message. */
export interface OriginalMessage {
  messageId?: string | null;
  subject?: string | null;
  from?: { address?: string | null; name?: string | null } | null;
  to?: Array<{ address?: string | null; name?: string | null }> | null;
  cc?: Array<{ address?: string | null; name?: string | null }> | null;
  replyTo?: Array<{ address?: string | null; name?: string | null }> | null;
  date?: Date | null;
  receivedAt?: Date | null;
  inReplyTo?: string | null;
  references?: string[] | null;
  text?: string | null;
  html?: string | null;
}

// Reply/forward prefixes mail programs put in front of subjects, in the
// languages seen most (RFC 5322 §3.6.5 recommends "Re: " for replies):
// Re, Aw (de), Sv (sv/da/no), Antw (nl), Odp (pl), Réf/Ref (fr), Vs (fi),
// Ynt (tr), Vá (hu), R/Rif (it: Outlook writes "R:"), Res (pt-BR Outlook),
// Antwort (de, Notes); 回复/答复 (zh-Hans), 回覆/答覆 (zh-Hant), 회신/답장 (ko),
// 返信 (ja), Ответ/Отв (ru), ΑΠ/ΣΧΕΤ (el), השב (he), رد (ar). Fwd, Fw,
// Wg (de), Tr (fr), Doorst (nl), Rv (es), Enc (pt), Vb (sv/no), Vl (fi),
// Pd (pl), İlt (tr), Továbbítás (hu), I (it: Outlook's "I:");
// 转发 (zh-Hans), 轉寄/轉發 (zh-Hant),
// 전달 (ko), 転送 (ja), Пересл (ru), ΠΡΘ (el), הועבר (he), توجيه (ar).
// With an optional counter, "Re[2]:", and the full-width colon CJK input
// methods type ("回复：").
const REPLY_PREFIX = /^\s*(re|aw|sv|antwort|antw|odp|r[ée]f|vs|ynt|vá|rif|res|r|回复|答复|回覆|答覆|회신|답장|返信|ответ|отв|απ|σχετ|השב|رد)(\[\d+\])?\s*[:：]\s*/iu;
const FORWARD_PREFIX = /^\s*(fwd?|wg|tr|doorst|rv|enc|vb|vl|pd|İlt|ilt|továbbítás|i|转发|轉寄|轉發|전달|転送|пересл|πρθ|הועבר|توجيه)(\[\d+\])?\s*[:：]\s*/iu;

/**
 * The subject without the run of `prefix`es it starts with: a thread whose mail programs each added their own
 * ("AW: Re: AW: Angebot", "Re: Re: Re: Quote") loses them all, so the answer reads "Re: Angebot" once.
 */
function withoutLeading(prefix: RegExp, subject: string): string {
  let rest = subject.trim();
  for (let stripped = rest.replace(prefix, ''); stripped !== rest; stripped = rest.replace(prefix, '')) rest = stripped;
  return rest;
}

/** The longest subject a draft may have (compose.ts MAX_SUBJECT_LENGTH, the RFC 5322 §2.1.1 line limit). */
const MAX_SUBJECT = 998;

/**
 * The original's subject as a subject of ours can carry it. A sender's encoded-word may decode to line breaks
 * or control characters ("Order 4711=0D=0A shipped"), and a subject may already fill the line limit: checkDraft
 * refuses both (header injection, RFC 5322 §2.1.1), and the answer failed over a subject nobody typed. Line
 * breaks become a space, other controls go, and the prefixed subject is cut at the limit.
 */
function subjectFrom(prefix: string, pattern: RegExp, subject: string): string {
  const plain = subject.replace(/[ \t]*[\r\n]+[ \t]*/g, ' ').replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '');
  const rest = withoutLeading(pattern, plain);
  let out = rest ? `${prefix} ${rest}` : prefix;
  if (out.length > MAX_SUBJECT) out = out.slice(0, /[\ud800-\udbff]/.test(out[MAX_SUBJECT - 1]) ? MAX_SUBJECT - 1 : MAX_SUBJECT).trimEnd();
  return out;
}

/** One "Re: " in front, however many reply prefixes the subject started with (no "Re: Re: "). */
export function replySubject(subject: string): string {
  return subjectFrom('Re:', REPLY_PREFIX, subject);
}

/** One "Fwd: " in front, however many forward prefixes the subject started with. */
export function forwardSubject(subject: string): string {
  return subjectFrom('Fwd:', FORWARD_PREFIX, subject);
}

const bracket = (id: string) => `<${id.replace(/^<|>$/g, '')}>`;
const bare = (id: string) => id.trim().replace(/^<|>$/g, '');
// A msg-id (RFC 5322 §3.6.4) without brackets: no white space, brackets or line breaks.
const MSG_ID = /^[^\s<>]+@[^\s<>]+$/;

/** Most servers cap a header line at 998 octets (RFC 5322 §2.1.1); long threads keep the first and the latest ids. */
const MAX_REFERENCES = 20;

/**
 * RFC 5322 §3.6.4: In-Reply-To is the parent's Message-ID; References is
 * the parent's References (or, lacking that, its In-Reply-To) followed by the
 * parent's Message-ID. Ids are stored bare; nodemailer adds the brackets.
 */
export function threadingHeaders(original: OriginalMessage): { inReplyTo: string; references: string[] } {
  const parentId = bare(original.messageId ?? '');
  if (!MSG_ID.test(parentId)) return { inReplyTo: '', references: [] };
  let chain = (original.references ?? []).map(bare).filter((id) => MSG_ID.test(id));
  if (chain.length === 0 && original.inReplyTo) {
    const parentOfParent = bare(original.inReplyTo.split(/\s+/)[0] ?? '');
    if (MSG_ID.test(parentOfParent)) chain = [parentOfParent];
  }
  chain = chain.filter((id) => id !== parentId);
  chain.push(parentId);
  if (chain.length > MAX_REFERENCES) chain = [chain[0], ...chain.slice(chain.length - (MAX_REFERENCES - 1))];
  return { inReplyTo: parentId, references: chain };
}

function mailboxes(list: OriginalMessage['to']): Mailbox[] {
  return (list ?? []).filter((m) => m?.address).map((m) => ({ name: m.name ?? '', address: m.address! }));
}

/**
 * Recipients of a reply (RFC 5322 §3.6.3): the Reply-To if present, else the
 * From. Reply-all adds the original To and Cc to Cc... except the sender's
 * own addresses, Postroom's intake addresses (`own.postroomDomains`: a
 * dropbox someone put in Cc must not reach the customer), and without repeats.
 */
export function replyRecipients(original: OriginalMessage, action: 'reply' | 'reply-all', own: OwnAddresses): { to: Mailbox[]; cc: Mailbox[] } {
  const { addresses, postroomDomains } = own;
  // canonicalMailbox: mail headers name an IDN domain in Unicode (info@münchen.de), the user's mailbox is kept in
  // its A-label form (info@xn--mnchen-3ya.de), and Gmail delivers bobsmith@ and Bob.Smith@googlemail.com to
  // bob.smith@gmail.com: comparing lower-cased text took the user's own mailbox for someone else's.
  const ownKeys = new Set(addresses.map(canonicalMailbox));
  const postroom = new Set(postroomDomains.map((domain) => domain.toLowerCase()));
  const isOwn = (address: string) => ownKeys.has(canonicalMailbox(address)) || postroom.has(domainOf(normalizeEmail(address)));
  const seen = new Set<string>();
  const keep = (list: Mailbox[]) => list.filter((m) => {
    const key = normalizeEmail(m.address);
    if (isOwn(m.address) || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const replyTo = mailboxes(original.replyTo);
  const author = replyTo.length > 0 ? replyTo : mailboxes(original.from ? [original.from] : []);
  let to = keep(author);
  // Replying to one's own sent message goes back to its recipients.
  const fromSelf = original.from?.address && ownKeys.has(canonicalMailbox(original.from.address));
  if (to.length === 0 && fromSelf) to = keep(mailboxes(original.to));
  if (action === 'reply') return { to, cc: [] };
  const others = keep([...mailboxes(original.to), ...mailboxes(original.cc)]);
  return { to, cc: others };
}

function describe(mailbox: { address?: string | null; name?: string | null } | null | undefined): string {
  if (!mailbox?.address) return '';
  return mailbox.name ? `${mailbox.name} <${mailbox.address}>` : mailbox.address;
}

function formatDate(date: Date | null | undefined, timeZone: string): string {
  // RFC 5322 §3.3 date, as mail programs show it in attributions: on the writer's clock, offset shown.
  return date ? rfc5322DateInZone(new Date(date), timeZone) : '';
}

/**
 * Longest HTML read for a quote. htmlparser2 (under html-to-text) is quadratic in the nesting depth: 256 KB of
 * unclosed <b> took 0.8 s, 512 KB of nested <div> 8 s, with the admin process blocked meanwhile; 128 KB stays
 * near 0.1 s at worst and holds the words of business mail (Outlook's HTML is mostly under 100 KB).
 */
const MAX_HTML_TO_QUOTE = 128 * 1024;

/**
 * The original's text as the quote shows it. Mail written only in HTML inside a multipart (an invoice with
 * its PDF, a signature logo in multipart/related) has no text of its own: mailparser only writes one for a
 * message that is a single HTML part. Its HTML is read as text then (html-to-text: no tags, no scripts or
 * styles, links as "text [url]"), so the quote holds what the sender wrote instead of nothing.
 */
function originalText(original: OriginalMessage): string {
  const text = (original.text ?? '').replace(/\r\n?/g, '\n').replace(/\n+$/, '');
  if (text.trim() || !original.html?.trim()) return text;
  const fromHtml = htmlToText(original.html.slice(0, MAX_HTML_TO_QUOTE), { wordwrap: 76, limits: { maxDepth: 200 }, selectors: [{ selector: 'img', format: 'skip' }] });
  return fromHtml.replace(/\r\n?/g, '\n').replace(/\s+$/, '');
}

/**
 * The original text quoted for a reply: an attribution line, then every line prefixed with "> " (RFC 3676 §4.5).
 * The date is on the replying person's clock (viewerTimeZone), as their own mail program would write it.
 */
export function quoteForReply(original: OriginalMessage, timeZone: string = DEFAULT_TIME_ZONE): string {
  const when = formatDate(original.date ?? original.receivedAt, timeZone);
  const who = describe(original.from) || 'the sender';
  const text = originalText(original);
  const quoted = text.split('\n').map((line) => (line.startsWith('>') ? `>${line}` : `> ${line}`).trimEnd()).join('\n');
  return `On ${when || 'an earlier date'}, ${who} wrote:\n${quoted}\n`;
}

/**
 * The original for a forward: a header block, then the text as it was. Its To and Cc leave out Postroom's
 * intake addresses (`postroomDomains`): a dropbox the employee had put in Cc is not shown to whoever gets the forward.
 */
export function quoteForForward(original: OriginalMessage, timeZone: string = DEFAULT_TIME_ZONE, postroomDomains: readonly string[] = []): string {
  const lines = ['---------- Forwarded message ----------', `From: ${describe(original.from)}`];
  const date = formatDate(original.date ?? original.receivedAt, timeZone);
  if (date) lines.push(`Date: ${date}`);
  lines.push(`Subject: ${original.subject ?? ''}`);
  const postroom = new Set(postroomDomains.map((domain) => domain.toLowerCase()));
  const shown = (list: OriginalMessage['to']) => (list ?? []).filter((m) => !m?.address || !postroom.has(domainOf(normalizeEmail(m.address)))).map(describe).filter(Boolean).join(', ');
  const to = shown(original.to);
  if (to) lines.push(`To: ${to}`);
  const cc = shown(original.cc);
  if (cc) lines.push(`Cc: ${cc}`);
  return `${lines.join('\n')}\n\n${originalText(original)}\n`;
}

export interface PreparedReply {
  to: Mailbox[];
  cc: Mailbox[];
  subject: string;
  inReplyTo: string;
  references: string[];
  /** Text to start the body with: the quote (reply) or the forwarded block (forward). */
  quote: string;
}

/** Everything a reply, reply-all or forward starts from. A forward has no recipients and no threading headers. */
export function prepareFromOriginal(original: OriginalMessage, action: OriginalAction, ownAddresses: OwnAddresses, timeZone: string = DEFAULT_TIME_ZONE): PreparedReply {
  if (action === 'forward') {
    return { to: [], cc: [], subject: forwardSubject(original.subject ?? ''), inReplyTo: '', references: [], quote: quoteForForward(original, timeZone, ownAddresses.postroomDomains) };
  }
  const { to, cc } = replyRecipients(original, action, ownAddresses);
  return { to, cc, subject: replySubject(original.subject ?? ''), ...threadingHeaders(original), quote: quoteForReply(original, timeZone) };
}

export { bracket as bracketMessageId };
