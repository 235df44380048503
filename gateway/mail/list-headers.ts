/**
 * Mailing-list and newsletter headers an employee acts on: which list a
 * mail came through (List-Id, RFC 2919) and how to leave it
 * (List-Unsubscribe, RFC 2369 §3.2: angle-bracketed URLs in order of
 * preference, usually an https page and a mailto address). Only http(s) and
 * mailto URLs are offered: the header is the sender's to write.
 */

interface HeaderPair {
  name?: string | null;
  value?: string | null;
}

export interface ListInfo {
  /** The list's description, else its identifier; '' when the mail names no list. */
  name: string;
  /** A web page that unsubscribes; '' when none is given. */
  unsubscribeUrl: string;
  /** An address that unsubscribes when mailed (the mailto: URL whole, with its subject or body); '' when none. */
  unsubscribeMailto: string;
}

function header(headers: readonly HeaderPair[], name: string): string {
  return (headers.find((h) => (h.name ?? '').toLowerCase() === name)?.value ?? '').trim();
}

function usable(url: string, schemes: readonly string[]): boolean {
  try {
    return schemes.includes(new URL(url).protocol);
  } catch {
    return false;
  }
}

/** What the List-Id and List-Unsubscribe headers say; null when the mail has neither. */
export function listInfoOf(headers: readonly HeaderPair[]): ListInfo | null {
  const listId = header(headers, 'list-id');
  const unsubscribe = header(headers, 'list-unsubscribe');
  if (!listId && !unsubscribe) return null;
  // RFC 2919 §3: an optional phrase, then the identifier in angle brackets.
  const idMatch = /^(.*?)<([^>]+)>\s*$/.exec(listId);
  const name = (idMatch ? idMatch[1].trim().replace(/^"(.*)"$/, '$1') || idMatch[2] : listId).slice(0, 200);
  const urls = [...unsubscribe.matchAll(/<\s*([^>\s]+)\s*>/g)].map((match) => match[1]);
  return {
    name,
    unsubscribeUrl: urls.find((url) => usable(url, ['https:', 'http:'])) ?? '',
    unsubscribeMailto: urls.find((url) => usable(url, ['mailto:'])) ?? '',
  };
}
