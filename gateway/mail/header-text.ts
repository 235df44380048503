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
