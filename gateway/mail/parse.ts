import crypto from 'node:crypto';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { escapeUTF8 } from 'entities';
import { MailParser, type AddressObject, type EmailAddress, type HeaderLines } from 'mailparser';
import type mongoose from 'mongoose';
import type { BlobOwner, BlobStore } from '../store/blobs';
import { ATTACHED_MESSAGE_MAX_BYTES, ATTACHED_MESSAGES_SHOWN, attachedMessagesSearchText, isAttachedMessageType } from './attached-message';
import { headerText, reread8BitHeaders } from './header-text';
import { UNLABELLED_HTML, UNLABELLED_TEXT, unlabelledTextDecoder } from './unlabelled-text';

type ObjectId = mongoose.Types.ObjectId;

/**
 * Stream one message exactly once: the raw bytes go to GridFS (or into the
 * document, when small) while the same chunks feed mailparser. Attachments
 * are described (name, type, size, checksum) and their bytes left in the raw
 * message: storing them a second time doubled the store's work and space
 * for the mail that has most of both. Nothing is held in memory whole
 * except the text and HTML bodies (capped below).
 */

export interface ParsedAddress {
  address: string;
  name: string;
}

export interface ParsedAttachment {
  filename: string;
  contentType: string;
  size: number;
  contentId: string;
  disposition: string;
  /** Always null now: the bytes are read from the raw message. Messages stored before kept a GridFS copy here. */
  blobId: ObjectId | null;
  checksum: string;
}

export interface ParsedMessage {
  messageId: string;
  subject: string;
  date: Date | null;
  from: ParsedAddress;
  sender: ParsedAddress | null;
  to: ParsedAddress[];
  cc: ParsedAddress[];
  bcc: ParsedAddress[];
  replyTo: ParsedAddress[];
  inReplyTo: string;
  references: string[];
  headers: Array<{ name: string; value: string }>;
  text: string;
  html: string;
  attachments: ParsedAttachment[];
  /** Senders, subjects and texts of messages attached to it (forwarded as attachment), for search only. */
  attachedText: string;
  /** Set when mailparser failed; the raw bytes are still stored. */
  parseError: string;
  truncated: boolean;
}

export interface StreamedMessage {
  /** GridFS file of the raw bytes; null when they are small enough to live in the message document. */
  rawBlobId: ObjectId | null;
  rawInline: Buffer | null;
  size: number;
  rawSha256: string;
  parsed: ParsedMessage;
}

/**
 * The one way a stored message is parsed, at ingest and when an attachment
 * is read back: attachment N must be the same part both times.
 */
export function newMailParser(): MailParser {
  // checksumAlgo false: streamAndParse() hashes each attachment itself, because it needs the hash of what was
  // read even when the parser gives up on a part (mailparser only sets its checksum on a complete part).
  return new MessageParser({ skipImageLinks: true, skipTextLinks: true, checksumAlgo: false, maxHtmlLengthToParse: MAX_BODY_CHARS });
}

/**
 * mailparser builds the HTML of a message whose parts are not alternatives of each other (a typed note
 * with the forwarded message attached as message/rfc822, a mailing list's text footer after an HTML
 * body) from every part, turning the text parts into HTML with textToHtml(). Its own conversion is
 * costly (named entities, paragraph rules) and runs over all text, and turned off (skipTextToHtml) the
 * text parts were left out: the note "see the customer's mail below" was missing from the HTML view.
 * Escaped text kept as written is all the view needs; the HTML is sanitised before it is shown anyway.
 */
class MessageParser extends MailParser {
  override textToHtml(text: string): string {
    return `<div style="white-space: pre-wrap">${escapeUTF8(String(text ?? ''))}</div>`;
  }

  // A text part without a charset gets one that names it unlabelled, which getDecoder() reads as a
  // browser would (unlabelled-text.ts) instead of mailparser's plain UTF-8. Both are mailparser
  // internals (no types), reached through its prototype.
  createNode(node: unknown): ParserNode {
    const created = (MailParser.prototype as unknown as ParserInternals).createNode.call(this, node);
    if (!created.charset && !created.isAttachment && (created.contentType === 'text/plain' || created.contentType === 'text/html')) {
      created.charset = created.contentType === 'text/html' ? UNLABELLED_HTML : UNLABELLED_TEXT;
    }
    return created;
  }

  getDecoder(): PartDecoder {
    const charsets = (MailParser.prototype as unknown as ParserInternals).getDecoder.call(this);
    return {
      decodeStream: (charset: string) => (charset === UNLABELLED_TEXT || charset === UNLABELLED_HTML
        ? unlabelledTextDecoder(charset === UNLABELLED_HTML)
        : charsets.decodeStream(charset)),
    };
  }
}

interface ParserNode { charset?: string; isAttachment?: boolean; contentType?: string }
interface PartDecoder { decodeStream(charset: string): NodeJS.ReadWriteStream }
interface ParserInternals {
  createNode(this: MailParser, node: unknown): ParserNode;
  getDecoder(this: MailParser): PartDecoder;
}

/** The document limit is 16 MB; bodies past these caps stay readable in the raw .eml. */
export const MAX_BODY_CHARS = 2 * 1024 * 1024;
const MAX_HEADERS = 500;
const MAX_HEADER_VALUE = 16 * 1024;

export class MessageTooLargeError extends Error {
  readonly code = 'MESSAGE_TOO_LARGE';
  constructor(readonly limit: number) {
    super(`message exceeds the size limit of ${limit} bytes`);
  }
}

/** FerretDB (and sanity) forbid NUL in strings; the raw bytes keep the original. */
export function clean(value: string, max = MAX_BODY_CHARS): string {
  const stripped = value.includes('\u0000') ? value.replace(/\u0000/g, '') : value;
  return stripped.length > max ? stripped.slice(0, max) : stripped;
}

/**
 * Addresses kept per header field. A real message names a few dozen; a
 * hostile one can list 10,000, and each stored address costs CPU on every
 * write and read of the document. The raw message keeps them all.
 */
export const MAX_ADDRESSES_PER_FIELD = 1000;

function addressList(value: AddressObject | AddressObject[] | undefined): ParsedAddress[] {
  if (!value) return [];
  const out: ParsedAddress[] = [];
  const visit = (entries: EmailAddress[]) => {
    for (const entry of entries) {
      if (out.length >= MAX_ADDRESSES_PER_FIELD) return;
      if (entry.group) visit(entry.group);
      else if (entry.address) out.push({ address: clean(entry.address.toLowerCase(), 512), name: clean(entry.name ?? '', 512) });
    }
  };
  for (const obj of Array.isArray(value) ? value : [value]) visit(obj.value ?? []);
  return out;
}

function headerValue(line: HeaderLines[number]): string {
  const colon = line.line.indexOf(':');
  // Unfold (RFC 5322 §2.2.3): CRLF followed by WSP is not part of the value.
  return headerText((colon >= 0 ? line.line.slice(colon + 1) : line.line).replace(/\r?\n(?=[ \t])/g, '').trim());
}

function headerPairs(lines: HeaderLines): Array<{ name: string; value: string }> {
  return lines.slice(0, MAX_HEADERS).map((line) => {
    const colon = line.line.indexOf(':');
    return { name: clean(colon >= 0 ? line.line.slice(0, colon).trim() : line.key, 256), value: clean(headerValue(line), MAX_HEADER_VALUE) };
  });
}

/**
 * The Date header (RFC 5322 §3.6.1), or null when there is none or it cannot be read. Not mailparser's
 * `date`: that is the time of parsing for a Date it cannot read, which the message page showed as when the
 * mail was written, and which made every delivery of such a mail a new one to de-duplication (dedupe.ts
 * hashes the date): a retried SMTP delivery or a re-synced IMAP batch stored it again. Read as mailparser
 * reads a valid one (the JavaScript date parser), so valid dates, and the keys made of them, are unchanged.
 */
function originationDate(lines: HeaderLines): Date | null {
  const line = lines.find((candidate) => candidate.key === 'date');
  if (!line) return null;
  const value = headerValue(line);
  // A Date without its zone (RFC 5322 §3.3 requires one; old or home-made mailers leave it out) is read as
  // UTC, as "-0000" is: the JavaScript parser would read it in the server's own zone (TZ), so the same mail
  // got another date, and another de-duplication key, on a server set to Berlin than on one set to UTC.
  const zoneless = ZONELESS_DATE.exec(value);
  const date = new Date(zoneless ? `${zoneless[1]} +0000` : value);
  // A year past 9999 (a forged "12026") has no ISO 8601 / RFC 3339 form: the API would answer "+012026-…",
  // which its own date-time schema and most clients refuse.
  return Number.isNaN(date.getTime()) || date.getUTCFullYear() > 9999 || date.getUTCFullYear() < 0 ? null : date;
}

/** A date that ends at its time of day (a trailing comment aside), with no zone after it. */
const ZONELESS_DATE = /^(.*\d{2,4}\s+\d{1,2}:\d{2}(?::\d{2})?)\s*(?:\([^()]*\)\s*)?$/;

function stripBrackets(id: unknown): string {
  if (typeof id !== 'string') return '';
  return clean(id.trim().replace(/^<|>$/g, ''), 998);
}

function emptyParsed(): ParsedMessage {
  return {
    messageId: '', subject: '', date: null, from: { address: '', name: '' }, sender: null,
    to: [], cc: [], bcc: [], replyTo: [], inReplyTo: '', references: [], headers: [],
    text: '', html: '', attachedText: '', attachments: [], parseError: '', truncated: false,
  };
}

/**
 * Messages up to this size keep their raw bytes in the message document
 * (most business mail: text and HTML without large attachments); larger
 * ones go to GridFS. Well under the 16 MB document limit even with the
 * parsed text and HTML next to them.
 */
export const INLINE_RAW_MAX = 64 * 1024;

/** The chunks already read, then the rest of the source. */
async function* continueWith(head: Buffer[], rest: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  yield* head;
  yield* rest;
}

/**
 * Store the raw message and parse it in one pass. Resolves once the raw blob
 * (if any) is acknowledged by the store and every attachment has been read
 * and described. A MIME problem never rejects: it comes back as
 * `parsed.parseError`. Store failures and the size limit do reject.
 */
export async function streamAndParse(
  blobs: BlobStore,
  raw: Readable | Buffer,
  options: { maxBytes?: number; inlineRawMax?: number; owner?: BlobOwner } = {},
): Promise<StreamedMessage> {
  const parsed = emptyParsed();
  const parser = newMailParser();
  const attachmentReads: Array<Promise<void>> = [];
  // In the order mailparser gives them: attachments.ts finds attachment N of a stored message the same way.
  const described: ParsedAttachment[] = [];
  // The bytes of the first few attached messages (small ones), read for search once the parse is done.
  const attachedMessages: Buffer[][] = [];
  let parseFailed: Error | null = null;

  parser.on('headers', (headers) => {
    parsed.subject = clean(String(headers.get('subject') ?? ''), 998 * 4);
    parsed.from = addressList(headers.get('from') as AddressObject | undefined)[0] ?? { address: '', name: '' };
    parsed.sender = addressList(headers.get('sender') as AddressObject | undefined)[0] ?? null;
    parsed.to = addressList(headers.get('to') as AddressObject | AddressObject[] | undefined);
    parsed.cc = addressList(headers.get('cc') as AddressObject | AddressObject[] | undefined);
    parsed.bcc = addressList(headers.get('bcc') as AddressObject | AddressObject[] | undefined);
    parsed.replyTo = addressList(headers.get('reply-to') as AddressObject | undefined);
    parsed.messageId = stripBrackets(headers.get('message-id'));
    parsed.inReplyTo = stripBrackets(headers.get('in-reply-to'));
    const refs = headers.get('references');
    parsed.references = (Array.isArray(refs) ? refs : typeof refs === 'string' ? refs.split(/\s+/) : []).map(stripBrackets).filter(Boolean).slice(0, 100);
  });
  parser.on('headerLines', (lines: HeaderLines) => {
    parsed.headers = headerPairs(lines);
    parsed.date = originationDate(lines);
  });
  parser.on('data', (data) => {
    if (data.type === 'text') {
      const text = typeof data.text === 'string' ? data.text : '';
      const html = typeof data.html === 'string' ? data.html : '';
      parsed.truncated = text.length > MAX_BODY_CHARS || html.length > MAX_BODY_CHARS;
      parsed.text = clean(text);
      parsed.html = clean(html);
      return;
    }
    // Attachment: its content is a stream that must be consumed, then released. Only its description is
    // kept; the bytes stay in the raw message, which is stored anyway (attachments.ts reads them back).
    const attachment = data;
    const ordinal = attachmentReads.length;
    const hash = crypto.createHash('md5');
    let size = 0;
    let kept: Buffer[] | null = null;
    if (isAttachedMessageType(attachment.contentType) && attachedMessages.length < ATTACHED_MESSAGES_SHOWN) attachedMessages.push((kept = []));
    attachment.content.on('data', (chunk: Buffer) => {
      size += chunk.length;
      hash.update(chunk);
      if (kept && size <= ATTACHED_MESSAGE_MAX_BYTES) kept.push(chunk);
      else if (kept) kept.length = 0;
    });
    // finished(): also settles when the stream closes without ending (the parser gave up on the part).
    const consumed = finished(attachment.content)
      .then(() => {
        described[ordinal] = {
          filename: clean(attachment.filename ?? '', 255),
          contentType: clean(attachment.contentType ?? 'application/octet-stream', 255),
          size,
          contentId: stripBrackets(attachment.contentId),
          disposition: attachment.contentDisposition === 'inline' ? 'inline' : 'attachment',
          blobId: null,
          checksum: hash.digest('hex'),
        };
      })
      .finally(() => attachment.release?.());
    // Awaited below with the others; handled now so a failure while the raw bytes still stream is not an
    // unhandled rejection (which would take the whole gateway process down).
    consumed.catch(() => undefined);
    attachmentReads.push(consumed);
  });
  const parserDone = new Promise<void>((resolve) => {
    parser.on('end', resolve);
    parser.on('error', (err: Error) => {
      parseFailed = err;
      resolve();
    });
  });

  const rawHash = crypto.createHash('sha256');
  let size = 0;
  const limit = options.maxBytes ?? Infinity;
  async function* tee(): AsyncGenerator<Buffer> {
    const chunks: AsyncIterable<Buffer> | Buffer[] = Buffer.isBuffer(raw) ? [raw] : (raw as AsyncIterable<Buffer>);
    for await (const chunk of chunks) {
      size += chunk.length;
      if (size > limit) throw new MessageTooLargeError(limit);
      rawHash.update(chunk);
      if (!parseFailed && !parser.write(chunk)) await Promise.race([once(parser, 'drain'), parserDone]);
      yield chunk;
    }
    if (!parseFailed) parser.end();
  }

  // A small message is held whole and stored in its document; a larger one
  // streams into GridFS from its first bytes on, never held in memory.
  const inlineMax = options.inlineRawMax ?? INLINE_RAW_MAX;
  const source = tee();
  let rawBlobId: ObjectId | null = null;
  let rawInline: Buffer | null = null;
  try {
    const head: Buffer[] = [];
    let headBytes = 0;
    let ended = false;
    while (headBytes <= inlineMax) {
      const next = await source.next();
      if (next.done) {
        ended = true;
        break;
      }
      head.push(next.value);
      headBytes += next.value.length;
    }
    if (ended) rawInline = Buffer.concat(head);
    else rawBlobId = await blobs.put(Readable.from(continueWith(head, source)), { kind: 'raw', ...(options.owner ? { owner: options.owner } : {}) });
    await parserDone;
    reread8BitHeaders(parsed);
    await Promise.all(attachmentReads);
    parsed.attachments = described.filter(Boolean);
    parsed.attachedText = clean(await attachedMessagesSearchText(attachedMessages.filter((chunks) => chunks.length > 0).map((chunks) => Buffer.concat(chunks))));
  } catch (err) {
    parser.destroy();
    await Promise.allSettled(attachmentReads);
    if (rawBlobId) await blobs.delete(rawBlobId).catch(() => undefined);
    throw err;
  }

  if (parseFailed) {
    const message = (parseFailed as Error).message || 'unparseable message';
    parsed.parseError = clean(message, 1000);
  }
  return { rawBlobId, rawInline, size, rawSha256: rawHash.digest('hex'), parsed };
}
