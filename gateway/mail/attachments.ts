import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { buffer } from 'node:stream/consumers';
import mime from 'mime-types';
import { newMailParser } from './parse';

/**
 * Attachments are read back from the stored raw message, the way an IMAP
 * server answers BODY[n]: ingest records each attachment's description in
 * the order mailparser gives them, and the same parser over the same bytes
 * gives attachment N again. Keeping only the raw bytes halves what is
 * written for mail with attachments; the price is a parse of the message
 * when someone downloads or forwards one, up to the attachment asked for
 * (plus a few MB the parser and the store stream read ahead).
 */

interface MailparserAttachment {
  type: 'attachment';
  content: Readable;
  release(): void;
}

/** Whether the handler consumes (and releases) the attachment itself, or it is skipped. */
type PartHandler = (attachment: MailparserAttachment, ordinal: number) => 'skip' | 'take';

interface Parsing {
  /** Settles when the parser has ended, failed or been stopped. */
  done: Promise<void>;
  /** Stop reading the message (nothing more is needed from it). */
  stop(): void;
}

/** Run the parser over `raw`, handing each attachment to `onAttachment`. */
function eachAttachment(raw: Readable, onAttachment: PartHandler): Parsing {
  const parser = newMailParser();
  let ordinal = 0;
  let finish: (err?: Error) => void = () => undefined;
  const done = new Promise<void>((resolve, reject) => {
    let over = false;
    finish = (err?: Error) => {
      if (over) return;
      over = true;
      raw.unpipe(parser);
      raw.destroy();
      parser.destroy();
      if (err) reject(err);
      else resolve();
    };
  });
  parser.on('data', (data: { type: string }) => {
    if (data.type !== 'attachment') return;
    const attachment = data as MailparserAttachment;
    if (onAttachment(attachment, ordinal++) === 'skip') {
      attachment.content.once('end', () => attachment.release());
      attachment.content.resume();
    }
  });
  parser.once('end', () => finish());
  // A message mailparser gives up on was stored with a parse error and the attachments read before it
  // (parse.ts): here too those are all there is. A failure to read the stored bytes is an error.
  parser.once('error', () => finish());
  raw.once('error', (err: Error) => finish(err));
  raw.pipe(parser);
  return { done, stop: () => finish() };
}

/** The content of attachment `index` of a raw message as a stream, or null when the message has no such attachment. */
export function attachmentFromRaw(raw: Readable, index: number): Promise<Readable | null> {
  return new Promise<Readable | null>((resolve, reject) => {
    let found = false;
    const parsing = eachAttachment(raw, (attachment, ordinal) => {
      if (ordinal !== index) return 'skip';
      found = true;
      const out = new PassThrough();
      resolve(out);
      // Once the attachment is read (or its reader went away), the rest of the message is not needed.
      pipeline(attachment.content, out)
        .catch((err: Error) => out.destroy(err))
        .finally(() => {
          attachment.release();
          parsing.stop();
        });
      return 'take';
    });
    parsing.done.then(
      () => {
        if (!found) resolve(null);
      },
      (err: Error) => {
        if (!found) reject(err);
      },
    );
  });
}

/** Every attachment's content of a raw message, in order (forwarding a message with its attachments). */
export async function allAttachmentsFromRaw(raw: Readable): Promise<Buffer[]> {
  const contents: Array<Promise<Buffer>> = [];
  const parsing = eachAttachment(raw, (attachment) => {
    contents.push(buffer(attachment.content).finally(() => attachment.release()));
    return 'take';
  });
  await parsing.done;
  const settled = await Promise.allSettled(contents);
  // An attachment the parser gave up on ends the list, as at ingest.
  const failedAt = settled.findIndex((r) => r.status === 'rejected');
  return (failedAt < 0 ? settled : settled.slice(0, failedAt)).map((r) => (r as PromiseFulfilledResult<Buffer>).value);
}

/**
 * The contents of the attachments at `indexes` of a raw message, in one
 * parse that stops once the last of them is read (the inline images of the
 * message page). A part larger than `maxBytes` is read past and left out;
 * so is a position the message does not have.
 */
export async function attachmentsFromRaw(raw: Readable, indexes: ReadonlySet<number>, options: { maxBytes?: number } = {}): Promise<Map<number, Buffer>> {
  const found = new Map<number, Buffer>();
  if (indexes.size === 0) {
    raw.destroy();
    return found;
  }
  const last = Math.max(...indexes);
  const maxBytes = options.maxBytes ?? Infinity;
  const reads: Array<Promise<void>> = [];
  const parsing = eachAttachment(raw, (attachment, ordinal) => {
    if (!indexes.has(ordinal)) return 'skip';
    reads.push(
      readAtMost(attachment.content, maxBytes)
        .then((bytes) => {
          if (bytes) found.set(ordinal, bytes);
        })
        // A part the parser gave up on is missing, as at ingest.
        .catch(() => undefined)
        .finally(() => {
          attachment.release();
          if (ordinal === last) parsing.stop();
        }),
    );
    return 'take';
  });
  await parsing.done;
  await Promise.all(reads);
  return found;
}

/** All of a stream, or null (having read it to its end) when it is longer than `maxBytes`. */
async function readAtMost(content: Readable, maxBytes: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of content as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= maxBytes) chunks.push(chunk);
    else chunks.length = 0;
  }
  return size <= maxBytes ? Buffer.concat(chunks) : null;
}

/**
 * Characters a sender can hide in a file name (RFC 2231 encodes any): controls
 * (CR LF would also make the name unusable as a header when the mail is
 * forwarded), and the bidi formatting characters, with which
 * `invoice<U+202E>fdp.exe` is displayed as "invoiceexe.pdf" (Unicode TR36
 * §2.4, "bidirectional text spoofing").
 */
const UNSHOWABLE_IN_NAMES = /[\p{Cc}\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/gu;

/**
 * Names for the parts that mailers send without one, which a bare type would name "attachment-1" (no
 * extension: nothing opens it) or "attachment-1.disposition-notification". Outlook's invitation is an
 * unnamed text/calendar part (named as Google names the same file); the machine-readable halves of a bounce
 * (RFC 3464 delivery-status, RFC 6522 text/rfc822-headers) and of a read receipt (RFC 8098) are text.
 */
const UNNAMED_PART_NAMES: Record<string, string> = {
  'text/calendar': 'invite.ics',
  'text/rfc822-headers': 'returned-headers.txt',
  'message/delivery-status': 'delivery-status.txt',
  'message/disposition-notification': 'read-receipt.txt',
};

/**
 * The name an attachment is offered under: its own, or for a part without
 * one (typical of inline images, which only carry a Content-ID) a name from
 * its Content-ID or position with the extension of its type, so
 * `<logo123>` as image/png downloads as `logo123.png`, not `attachment-1`.
 */
export function attachmentFilename(attachment: { filename?: string | null; contentType?: string | null; contentId?: string | null }, index: number): string {
  // Only the last part of a name with a directory path (RFC 2183 §2.3: it is not to be respected), as a download
  // saves it: 'C:\Users\jane\Quote.pdf' and '../../etc/passwd' were shown whole and saved under another name.
  const own = (attachment.filename ?? '').replace(UNSHOWABLE_IN_NAMES, '').split(/[\\/]/).pop()!.trim();
  if (own) return own;
  // A Content-ID is an addr-spec (RFC 2392); its local part is the readable bit (Outlook: image001.png@01DA…).
  const local = (attachment.contentId ?? '').replace(/^<|>$/g, '').split('@')[0];
  const unnamed = local ? undefined : UNNAMED_PART_NAMES[(attachment.contentType ?? '').trim().toLowerCase()];
  if (unnamed) return unnamed;
  const stem = local.replace(/[^\p{L}\p{N}._-]+/gu, '_').replace(/^[._]+|[._]+$/g, '').slice(0, 80) || `attachment-${index + 1}`;
  const extension = mime.extension((attachment.contentType ?? '').toLowerCase());
  if (!extension || extension === 'bin') return stem;
  const known = mime.lookup(stem);
  return known && known === mime.lookup(`x.${extension}`) ? stem : `${stem}.${extension}`;
}
