import crypto from 'node:crypto';

/**
 * Realistic test messages for the benchmarks and robustness tests:
 * multipart/alternative text + HTML like a person's mail, with a binary
 * attachment for the large sizes. Deterministic for a seed (a tiny PRNG), so
 * every tier and every run sends the same bytes; every message has its own
 * Message-ID, so Postroom never de-duplicates one against another.
 */

const WORDS = (
  'quote order invoice delivery schedule meeting thanks regards please attached contract pricing discount ' +
  'shipment warehouse update project proposal review budget estimate customer support request follow up ' +
  'confirm tomorrow monday friday week month quarter renewal licence account payment terms net thirty ' +
  'the a of to and for with on in at from by about this that your our we you it is are be will can would'
).split(' ');

/** Mulberry32: a small deterministic PRNG (not for secrets). */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sentence(random: () => number): string {
  const count = 8 + Math.floor(random() * 12);
  const words = Array.from({ length: count }, () => WORDS[Math.floor(random() * WORDS.length)]);
  words[0] = words[0][0].toUpperCase() + words[0].slice(1);
  return `${words.join(' ')}.`;
}

/** Paragraphs of text, about `bytes` long, wrapped at 76 characters (RFC 5322 §2.1.1 recommends 78). */
function prose(random: () => number, bytes: number): string[] {
  const lines: string[] = [];
  let size = 0;
  let line = '';
  while (size < bytes) {
    const s = sentence(random);
    for (const word of s.split(' ')) {
      if (line.length + word.length + 1 > 76) {
        lines.push(line);
        size += line.length + 2;
        line = '';
      }
      line = line ? `${line} ${word}` : word;
    }
    if (random() < 0.2) {
      lines.push(line, '');
      size += line.length + 4;
      line = '';
    }
  }
  if (line) lines.push(line);
  return lines;
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** RFC 5322 §3.3 date-time. */
export function rfc5322Date(date: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[date.getUTCDay()]}, ${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ${p(date.getUTCHours())}:${p(date.getUTCMinutes())}:${p(date.getUTCSeconds())} +0000`;
}

export interface MessageOptions {
  /** Target size of the whole message in bytes (approximate, within a few hundred bytes). */
  size: number;
  seed: number;
  /** A label that makes the Message-ID unique across runs and sets (e.g. 'run1-10k'). */
  label: string;
  from?: string;
  to?: string;
  date?: Date;
}

export interface BenchMessage {
  messageId: string;
  raw: Buffer;
}

/** One message: text + HTML alternative; past 32 KB the rest is a base64 PDF-like attachment. */
export function makeMessage(options: MessageOptions): BenchMessage {
  const random = prng(options.seed);
  const messageId = `${options.label}.${options.seed}.${crypto.createHash('sha1').update(`${options.label}:${options.seed}`).digest('hex').slice(0, 12)}@customer.test`;
  const date = options.date ?? new Date(Date.UTC(2025, 0, 1) + options.seed * 60_000);
  const bodyBudget = Math.min(options.size, 32 * 1024) - 900;
  const textLines = prose(random, Math.max(200, Math.floor(bodyBudget * 0.48)));
  const html = `<html><body>${textLines
    .join('\n')
    .split('\n\n')
    .map((p) => `<p style="font-family:Arial">${escapeHtml(p).replace(/\n/g, '<br>\n')}</p>`)
    .join('\n')}</body></html>`;
  const htmlLines = html.split('\n');
  const outer = `=_mixed_${options.seed}`;
  const alt = `=_alt_${options.seed}`;
  const headers = [
    `From: Alice Customer <${options.from ?? 'alice@customer.test'}>`,
    `To: Bob Example <${options.to ?? 'bob@acme.test'}>`,
    `Subject: ${sentence(random).slice(0, 60)} #${options.seed}`,
    `Date: ${rfc5322Date(date)}`,
    `Message-ID: <${messageId}>`,
    'MIME-Version: 1.0',
  ];
  const alternative = [
    `--${alt}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 7bit',
    '',
    ...textLines,
    '',
    `--${alt}`,
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: 7bit',
    '',
    ...htmlLines,
    '',
    `--${alt}--`,
  ];
  const headerBytes = Buffer.byteLength([...headers, ...alternative].join('\r\n'));
  // base64: 57 bytes per 76-character line plus CRLF (RFC 2045 §6.8).
  const attachmentBytes = Math.floor((options.size - headerBytes - 400) / 78) * 57;
  let lines: string[];
  if (attachmentBytes < 1024) {
    lines = [...headers, `Content-Type: multipart/alternative; boundary="${alt}"`, '', ...alternative, ''];
  } else {
    const content = Buffer.alloc(attachmentBytes);
    // Incompressible content, deterministic per seed.
    for (let i = 0; i < content.length; i += 4) content.writeUInt32LE((random() * 0x100000000) >>> 0, Math.min(i, content.length - 4));
    const b64 = content.toString('base64').replace(/.{76}/g, '$&\r\n');
    lines = [
      ...headers,
      `Content-Type: multipart/mixed; boundary="${outer}"`,
      '',
      `--${outer}`,
      `Content-Type: multipart/alternative; boundary="${alt}"`,
      '',
      ...alternative,
      '',
      `--${outer}`,
      `Content-Type: application/pdf; name="quote-${options.seed}.pdf"`,
      `Content-Disposition: attachment; filename="quote-${options.seed}.pdf"`,
      'Content-Transfer-Encoding: base64',
      '',
      b64.replace(/\r\n$/, ''),
      '',
      `--${outer}--`,
      '',
    ];
  }
  return { messageId, raw: Buffer.from(lines.join('\r\n')) };
}

/** `count` messages of about `size` bytes with seeds start…start+count-1. */
export function makeMessages(count: number, size: number, label: string, start = 0, extra: Partial<MessageOptions> = {}): BenchMessage[] {
  return Array.from({ length: count }, (_, i) => makeMessage({ ...extra, size, seed: start + i, label }));
}
