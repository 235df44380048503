import crypto from 'node:crypto';
import type { ParsedMessage } from './parse';

/**
 * The de-duplication key of a message within one mailbox.
 *
 * The same mail reaches Postroom by forwarding (SMTP) and by IMAP sync. A
 * forwarder adds trace headers and may re-encode transfer encodings, but it
 * does not change From, Date, Subject or the decoded body, so those are
 * hashed. The Message-ID is combined with that hash because Message-IDs are
 * not reliably unique (RFC 5322 §3.6.4 says "should"): a different message
 * reusing one must not be swallowed.
 */
export function contentHash(parsed: ParsedMessage, rawSha256: string): string {
  if (parsed.parseError || isFeatureless(parsed)) return `raw:${rawSha256}`;
  const hash = crypto.createHash('sha256');
  const part = (value: string) => {
    hash.update(value);
    hash.update('\u0000');
  };
  part(parsed.from.address.toLowerCase());
  part(parsed.date ? parsed.date.toISOString() : '');
  part(parsed.subject.trim());
  part(normaliseBody(parsed.text));
  part(normaliseBody(parsed.html));
  for (const attachment of [...parsed.attachments].sort((a, b) => a.checksum.localeCompare(b.checksum))) part(attachment.checksum);
  return hash.digest('hex');
}

/**
 * Nothing a forwarder preserves is there to compare (no Message-ID, From,
 * Subject, body or attachment): two such messages are only the same when
 * their bytes are, so the raw hash decides.
 */
function isFeatureless(parsed: ParsedMessage): boolean {
  return !parsed.messageId && !parsed.from.address && !parsed.subject.trim() && !parsed.text.trim() && !parsed.html.trim() && parsed.attachments.length === 0;
}

/** Line endings and trailing white space differ between transports (RFC 5321 §4.5.2 dot-stuffing aside). */
function normaliseBody(body: string): string {
  return body.replace(/\r\n?/g, '\n').replace(/[ \t]+\n/g, '\n').trim();
}

export function dedupeKey(messageId: string, hash: string): string {
  return crypto.createHash('sha256').update(messageId.toLowerCase()).update('\u0000').update(hash).digest('hex');
}
