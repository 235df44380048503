/**
 * Bulk and automated mail: newsletters, mailing lists, auto-replies and
 * machine notifications are stored but not linked to CRM objects unless an
 * object's rule asks for it (they would drown a contact's timeline).
 */

export interface HeaderPair {
  name?: string | null;
  value?: string | null;
}

export interface BulkVerdict {
  bulk: boolean;
  /** Which header made it bulk, for the console ("List-Id", "Auto-Submitted: auto-replied" …). */
  reason: string;
}

function headerValue(headers: readonly HeaderPair[], name: string): string | null {
  const wanted = name.toLowerCase();
  for (const header of headers) {
    if ((header.name ?? '').toLowerCase() === wanted) return (header.value ?? '').trim();
  }
  return null;
}

/**
 * Decide from the headers:
 * - List-Id (RFC 2919) marks mailing-list traffic;
 * - List-Unsubscribe (RFC 2369) alone is also sent on one-to-one sales
 *   sequences, so it counts only together with Precedence: bulk or list
 *   (the de-facto header, RFC 3834 §2 mentions it);
 * - Auto-Submitted (RFC 3834 §5) with any value other than "no"
 *   (auto-generated, auto-replied, auto-notified).
 */
export function detectBulk(headers: readonly HeaderPair[]): BulkVerdict {
  if (headerValue(headers, 'list-id') !== null) return { bulk: true, reason: 'List-Id' };
  const precedence = (headerValue(headers, 'precedence') ?? '').toLowerCase();
  const precedenceBulk = precedence === 'bulk' || precedence === 'list';
  if (precedenceBulk && headerValue(headers, 'list-unsubscribe') !== null) {
    return { bulk: true, reason: `List-Unsubscribe with Precedence: ${precedence}` };
  }
  const autoSubmitted = headerValue(headers, 'auto-submitted');
  if (autoSubmitted !== null) {
    // The keyword may carry parameters ("auto-replied; owner-email=…"), RFC 3834 §5.
    const keyword = autoSubmitted.split(';')[0].trim().toLowerCase();
    if (keyword && keyword !== 'no') return { bulk: true, reason: `Auto-Submitted: ${keyword}` };
  }
  return { bulk: false, reason: '' };
}
