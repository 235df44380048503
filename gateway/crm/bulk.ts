/**
 * Bulk and automated mail: newsletters, mailing lists, auto-replies and
 * machine notifications are stored but not linked to CRM objects unless an
 * object's rule asks for it (they would drown a contact's timeline, and a
 * bounce or a read receipt is not the customer writing to us).
 */

export interface HeaderPair {
  name?: string | null;
  value?: string | null;
}

/** What kind of bulk or automated mail it is, for the console's label. */
export type BulkKind = 'list' | 'auto-reply' | 'delivery-report' | 'read-receipt' | 'automated';

export interface BulkVerdict {
  bulk: boolean;
  /** Which header made it bulk, for the console ("List-Id", "Auto-Submitted: auto-replied" …). */
  reason: string;
  /** '' when not bulk. */
  kind: BulkKind | '';
}

function headerValue(headers: readonly HeaderPair[], name: string): string | null {
  const wanted = name.toLowerCase();
  for (const header of headers) {
    if ((header.name ?? '').toLowerCase() === wanted) return (header.value ?? '').trim();
  }
  return null;
}

const NOT_BULK: BulkVerdict = { bulk: false, reason: '', kind: '' };

/**
 * A report (RFC 6522 multipart/report) is written by a machine about a
 * message of ours: a delivery status notification (RFC 3464), a read receipt
 * (RFC 8098 disposition-notification), an abuse report (RFC 5965). Exchange
 * sends its non-delivery reports from postmaster@ of the customer's domain and
 * Outlook its read receipts from the customer's own address, neither with
 * Auto-Submitted: the report type is what marks them.
 */
function reportVerdict(headers: readonly HeaderPair[]): BulkVerdict | null {
  const contentType = (headerValue(headers, 'content-type') ?? '').toLowerCase();
  if (!/^\s*multipart\/report\b/.test(contentType)) return null;
  const reportType = /;\s*report-type\s*=\s*"?([a-z0-9-]+)/.exec(contentType)?.[1] ?? '';
  const reason = `Content-Type: multipart/report${reportType ? `; report-type=${reportType}` : ''}`;
  if (reportType === 'delivery-status') return { bulk: true, reason, kind: 'delivery-report' };
  if (reportType === 'disposition-notification') return { bulk: true, reason, kind: 'read-receipt' };
  return { bulk: true, reason, kind: 'automated' };
}

/**
 * Decide from the headers:
 * - List-Id (RFC 2919) marks mailing-list traffic;
 * - List-Unsubscribe (RFC 2369) alone is also sent on one-to-one sales
 *   sequences, so it counts only together with Precedence: bulk or list
 *   (the de-facto header, RFC 3834 §2 mentions it);
 * - a report (multipart/report: bounces, read receipts), see reportVerdict();
 * - Auto-Submitted (RFC 3834 §5) with any value other than "no"
 *   (auto-generated, auto-replied, auto-notified);
 * - the older marks of vacation responders that predate RFC 3834 and are
 *   still sent alone: X-Autoreply / X-Autorespond, Precedence: junk or
 *   auto_reply (RFC 3834 §3.1.8 notes both conventions).
 */
export function detectBulk(headers: readonly HeaderPair[]): BulkVerdict {
  if (headerValue(headers, 'list-id') !== null) return { bulk: true, reason: 'List-Id', kind: 'list' };
  const precedence = (headerValue(headers, 'precedence') ?? '').toLowerCase();
  const precedenceBulk = precedence === 'bulk' || precedence === 'list';
  if (precedenceBulk && headerValue(headers, 'list-unsubscribe') !== null) {
    return { bulk: true, reason: `List-Unsubscribe with Precedence: ${precedence}`, kind: 'list' };
  }
  const report = reportVerdict(headers);
  if (report) return report;
  const autoSubmitted = headerValue(headers, 'auto-submitted');
  if (autoSubmitted !== null) {
    // The keyword may carry parameters ("auto-replied; owner-email=…"), RFC 3834 §5.
    const keyword = autoSubmitted.split(';')[0].trim().toLowerCase();
    if (keyword && keyword !== 'no') return { bulk: true, reason: `Auto-Submitted: ${keyword}`, kind: keyword === 'auto-replied' ? 'auto-reply' : 'automated' };
  }
  for (const name of ['X-Autoreply', 'X-Autorespond']) {
    const value = (headerValue(headers, name) ?? '').toLowerCase();
    if (value && value !== 'no') return { bulk: true, reason: `${name}: ${value}`, kind: 'auto-reply' };
  }
  if (precedence === 'auto_reply') return { bulk: true, reason: 'Precedence: auto_reply', kind: 'auto-reply' };
  if (precedence === 'junk') return { bulk: true, reason: 'Precedence: junk', kind: 'automated' };
  return NOT_BULK;
}

/**
 * What kind of bulk or automated mail a stored message is, for the console and the API: null for mail a
 * person wrote. `bulk` is what ingest decided (it may have been told so by its caller); the headers say which kind.
 */
export function automatedMailOf(message: { bulk?: boolean | null; headers?: readonly HeaderPair[] | null }): { kind: BulkKind; reason: string } | null {
  if (!message.bulk) return null;
  const verdict = detectBulk(message.headers ?? []);
  return { kind: verdict.kind || 'automated', reason: verdict.reason };
}

/** How the console names a kind of bulk or automated mail. */
export const BULK_KIND_LABELS: Record<BulkKind, string> = {
  list: 'mailing list',
  'auto-reply': 'automatic reply',
  'delivery-report': 'delivery report',
  'read-receipt': 'read receipt',
  automated: 'automated',
};

/** The same in a sentence ("Not linked: this is …"). */
export const BULK_KIND_PHRASES: Record<BulkKind, string> = {
  list: 'mailing-list mail',
  'auto-reply': 'an automatic reply',
  'delivery-report': 'a delivery report (a bounce)',
  'read-receipt': 'a read receipt',
  automated: 'automated mail',
};
