import addressparser from 'nodemailer/lib/addressparser';
import type { ParsedAddress, ParsedMessage } from './parse';

/**
 * Text of raw header bytes that no MIME label names a charset for. mailsplit reads header lines as one
 * character per byte (latin1), so UTF-8 written straight into a header, as RFC 6532 allows and SMTPUTF8
 * mail and many web mailers do (`From: 山田太郎 <taro@example.jp>`), was shown under "All headers" as "å±±ç°å¤ªé".
 * Bytes that are valid UTF-8 are read as UTF-8; others are an older mailer's 8-bit text, read as
 * windows-1252 (the fallback browsers and mail clients use for unlabelled Western text, WHATWG Encoding
 * §4.2). A string with a character past U+00FF was decoded already and is returned as it is.
 */
export function headerText(binary: string): string {
  // Nothing past ASCII (the common case), or not a one-character-per-byte string: nothing to re-read.
  if (!/[\u0080-\u00ff]/.test(binary) || /[^\u0000-\u00ff]/.test(binary)) return binary;
  const bytes = Buffer.from(binary, 'latin1');
  try {
    return utf8.decode(bytes);
  } catch {
    return windows1252.decode(bytes);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const windows1252 = new TextDecoder('windows-1252');

/**
 * mailparser reads the Subject and the display names of raw 8-bit headers as UTF-8 even when they are
 * not, and an older mailer's unlabelled latin1 "Grüße" from "Jürgen" became "Gr\uFFFD\uFFFDe" from
 * "J\uFFFDrgen" in the inbox and in search. A value without encoded words is the raw header as
 * headerText() reads it; `parsed.headers` holds it so (parse.ts).
 */
export function reread8BitHeaders(parsed: ParsedMessage): void {
  const rawOf = (name: string) => {
    const raw = parsed.headers.filter((header) => header.name.toLowerCase() === name).map((header) => header.value).join(', ');
    return raw && !raw.includes('=?') && !raw.includes('\uFFFD') ? raw : '';
  };
  if (parsed.subject.includes('\uFFFD')) parsed.subject = rawOf('subject').slice(0, 998 * 4) || parsed.subject;
  const names = (list: ParsedAddress[], header: string): ParsedAddress[] => {
    if (!list.some((mailbox) => mailbox.name.includes('\uFFFD'))) return list;
    const raw = rawOf(header);
    if (!raw) return list;
    const written = new Map(addressparser(raw, { flatten: true }).map((mailbox) => [mailbox.address.toLowerCase(), mailbox.name]));
    return list.map((mailbox) => (mailbox.name.includes('\uFFFD') && written.get(mailbox.address) ? { ...mailbox, name: written.get(mailbox.address)!.slice(0, 512) } : mailbox));
  };
  parsed.from = names([parsed.from], 'from')[0];
  if (parsed.sender) parsed.sender = names([parsed.sender], 'sender')[0];
  parsed.to = names(parsed.to, 'to');
  parsed.cc = names(parsed.cc, 'cc');
  parsed.replyTo = names(parsed.replyTo, 'reply-to');
}
