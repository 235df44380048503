import { Transform, type TransformCallback } from 'node:stream';
import htmlEncodingSniffer from 'html-encoding-sniffer';

/**
 * A text body whose Content-Type names no charset. mailparser reads it as UTF-8, so an older mailer's
 * latin1 "Grüße" became "Gr\uFFFD\uFFFDe", and an HTML newsletter that names its charset only in
 * `<meta charset="shift_jis">` (as a browser and every mail client honour it) came out as mojibake on the
 * message page and could not be found by search. Read as a browser reads the same bytes: an HTML part's
 * own declaration first (the WHATWG sniffing algorithm, HTML §13.2.3.2), then UTF-8 when the bytes are
 * valid UTF-8 (as RFC 6532 mail is), else windows-1252, the fallback for unlabelled Western text.
 *
 * The part is held until its end: the body is held whole by the parser anyway (parse.ts caps it).
 */
export const UNLABELLED_TEXT = 'x-postroom-unlabelled-text';
export const UNLABELLED_HTML = 'x-postroom-unlabelled-html';

/** The charset the bytes of an unlabelled text part are written in, as a WHATWG encoding name. */
export function unlabelledCharset(bytes: Uint8Array, html: boolean): string {
  const declared = html ? htmlEncodingSniffer(bytes, { defaultEncoding: '' }) : '';
  if (declared) return declared;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return 'UTF-8';
  } catch {
    return 'windows-1252';
  }
}

/** A stream that turns an unlabelled text part's bytes into UTF-8. */
export function unlabelledTextDecoder(html: boolean): Transform {
  const chunks: Buffer[] = [];
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      chunks.push(chunk);
      callback();
    },
    flush(callback: TransformCallback) {
      const bytes = Buffer.concat(chunks);
      const charset = unlabelledCharset(bytes, html);
      let text: string;
      try {
        text = new TextDecoder(charset).decode(bytes);
      } catch {
        // A declared charset this runtime cannot decode: as mailparser did before.
        text = bytes.toString('utf8');
      }
      callback(null, Buffer.from(text));
    },
  });
}
