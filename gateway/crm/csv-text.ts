import { AppError } from '../core/errors';

/**
 * Reading a CSV file as people export it. Spreadsheet programs write the
 * system's ANSI code page unless told "CSV UTF-8" (Excel on Windows:
 * Windows-1252 in Western Europe), UTF-16 with a byte-order mark for
 * "Unicode text", and `;` instead of `,` where the comma is the decimal
 * separator (de, fr, nl, it, es, …). Without this an Excel export from such
 * a machine is refused ("no name column") or imports "M�ller GmbH".
 */

export interface DecodedCsv {
  text: string;
  /** The WHATWG name of the encoding it was read as (utf-8, utf-16le, utf-16be, windows-1252, or the declared one). */
  encoding: string;
}

/**
 * Decode an uploaded file: a byte-order mark decides (WHATWG Encoding §6
 * "BOM sniff"); else a declared charset (HTTP Content-Type); else UTF-8 when
 * the bytes are valid UTF-8, Windows-1252 otherwise (its every byte decodes,
 * so nothing is refused, and it is what such a file most likely is).
 */
export function decodeCsvFile(bytes: Buffer, declaredCharset = ''): DecodedCsv {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return decodeAs(bytes.subarray(3), 'utf-8');
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return decodeAs(bytes.subarray(2), 'utf-16le');
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return decodeAs(bytes.subarray(2), 'utf-16be');
  const declared = declaredCharset.trim().toLowerCase();
  if (declared && !['utf-8', 'utf8'].includes(declared)) {
    let decoder: InstanceType<typeof TextDecoder>;
    try {
      decoder = new TextDecoder(declared);
    } catch {
      throw unreadable(`its charset "${declaredCharset}" is not one Postroom knows; save it as CSV UTF-8`);
    }
    return { text: decoder.decode(bytes), encoding: decoder.encoding };
  }
  try {
    return { text: new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes), encoding: 'utf-8' };
  } catch {
    if (declared) throw unreadable('it is declared UTF-8 but is not valid UTF-8; save it as CSV UTF-8 or declare its charset');
    return decodeAs(bytes, 'windows-1252');
  }
}

function unreadable(why: string): AppError {
  const message = `the file cannot be read: ${why}`;
  return new AppError('CSV_INVALID', message, { status: 400, fields: { file: message } });
}

function decodeAs(bytes: Buffer, encoding: string): DecodedCsv {
  return { text: new TextDecoder(encoding, { ignoreBOM: true }).decode(bytes), encoding };
}

const DELIMITERS = [',', ';', '\t'] as const;

/**
 * The field delimiter of a CSV file, from its header row: the candidate
 * (`,`, `;`, tab) that occurs most often outside quotes; `,` when none does
 * or on a tie (RFC 4180 is comma-separated).
 */
export function sniffDelimiter(text: string): string {
  const counts = new Map<string, number>(DELIMITERS.map((d) => [d, 0]));
  let quoted = false;
  for (const char of text.replace(/^\uFEFF/, '')) {
    if (char === '"') quoted = !quoted;
    else if (!quoted && (char === '\n' || char === '\r')) break;
    else if (!quoted && counts.has(char)) counts.set(char, counts.get(char)! + 1);
  }
  let best = ',';
  for (const d of DELIMITERS) if (counts.get(d)! > counts.get(best)!) best = d;
  return best;
}
