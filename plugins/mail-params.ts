import DSN from 'haraka-dsn';
import type { HarakaAddress, HarakaParams } from './haraka-types';

/**
 * MAIL FROM parameters (RFC 5321 §4.1.1.11): Haraka parses them into
 * `keyword → value` but accepts any keyword and any value, so a client
 * asking for something this server does not do (BODY=BINARYMIME without
 * CHUNKING, DSN's RET= without DSN) would be told 250 and then be
 * misunderstood. A parameter is accepted only when the extension it
 * belongs to is in this session's EHLO reply, so the list follows what is
 * actually advertised (an AUTH or DSN plugin added later brings its
 * parameters with it).
 *
 * The SIZE limit itself is checked before Haraka's own check (which would
 * answer a bare 550), in postroom-limits' cmd_mail; here SIZE is only
 * checked for syntax.
 */

/** The EHLO keyword that makes each MAIL parameter legal. */
const EXTENSION_OF: Record<string, string> = {
  SIZE: 'SIZE', // RFC 1870
  BODY: '8BITMIME', // RFC 6152
  SMTPUTF8: 'SMTPUTF8', // RFC 6531
  AUTH: 'AUTH', // RFC 4954 §5
  RET: 'DSN', // RFC 3461 §4.3
  ENVID: 'DSN', // RFC 3461 §4.4
};

/** Extension keywords of an EHLO reply (its first line is the greeting). */
export function advertisedExtensions(capabilities: string[] | null): Set<string> {
  return new Set((capabilities ?? []).slice(1).map((line) => line.split(' ')[0].toUpperCase()));
}

const invalid = (keyword: string) => DSN.create(501, `Invalid ${keyword} parameter`, 5, 4);
const unsupported = (what: string) => DSN.create(555, `Unsupported parameter ${what}`, 5, 4);

/** The refusal for the first parameter this session cannot honour, or null when all are fine. */
export function checkMailParams(from: HarakaAddress, params: HarakaParams, capabilities: string[] | null): { dsn: DSN; reason: string } | null {
  const advertised = advertisedExtensions(capabilities);
  for (const [keyword, value] of Object.entries(params)) {
    const extension = EXTENSION_OF[keyword];
    // RFC 5321 §4.1.1.11: 555 for a parameter that is not recognised or not implemented.
    if (!extension || !advertised.has(extension)) return { dsn: unsupported(keyword), reason: 'unsupported parameter' };
    switch (keyword) {
      case 'SIZE':
        // RFC 1870 §5: size-value ::= 1*20DIGIT.
        if (!value || !/^\d{1,20}$/.test(value)) return { dsn: invalid('SIZE'), reason: 'invalid parameter' };
        break;
      case 'BODY': {
        const body = (value ?? '').toUpperCase();
        // BINARYMIME (RFC 3030) is a real BODY value, but only with CHUNKING, which is not offered.
        if (body === 'BINARYMIME') return { dsn: unsupported('BODY=BINARYMIME'), reason: 'unsupported parameter' };
        if (body !== '7BIT' && body !== '8BITMIME') return { dsn: invalid('BODY'), reason: 'invalid parameter' };
        break;
      }
      case 'SMTPUTF8':
        // RFC 6531 §3.4: the parameter has no value.
        if (value !== null) return { dsn: invalid('SMTPUTF8'), reason: 'invalid parameter' };
        break;
    }
  }
  // RFC 6531 §3.5: a non-ASCII reverse-path without SMTPUTF8 is refused with 553 5.6.7. Haraka accepts it
  // whenever SMTPUTF8 is advertised, parameter or not.
  if (from.is_utf8 && !('SMTPUTF8' in params)) {
    return { dsn: DSN.create(553, 'Non-ASCII sender address requires the SMTPUTF8 parameter', 6, 7), reason: 'non-ASCII address without SMTPUTF8' };
  }
  return null;
}
