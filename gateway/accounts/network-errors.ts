/**
 * Network, DNS, TLS and timeout failures, classified the same way for every
 * mail protocol Postroom speaks as a client (IMAP login and sync with
 * imapflow, SMTP submission with nodemailer), so the console says the same
 * thing for the same cause whichever side hit it.
 */

export type NetworkErrorCode = 'HOST_NOT_FOUND' | 'CONNECTION_REFUSED' | 'TLS_ERROR' | 'TIMEOUT' | 'MAIL_SERVER_BLOCKED';

/** Protocol-specific hints woven into the sentences. */
export interface NetworkWording {
  /** 'IMAP' or 'SMTP': "Check the IMAP host." */
  protocol: string;
  /** Where the server is usually found: "IMAP over TLS is usually 993". */
  usualPort: string;
  /** Which port wants which TLS mode: "993 uses TLS from the start, 143 uses STARTTLS". */
  tlsPorts: string;
}

export const IMAP_WORDING: NetworkWording = {
  protocol: 'IMAP',
  usualPort: 'IMAP over TLS is usually 993',
  tlsPorts: '993 uses TLS from the start, 143 uses STARTTLS',
};

export const SMTP_WORDING: NetworkWording = {
  protocol: 'SMTP',
  usualPort: 'mail submission is usually 465 with TLS or 587 with STARTTLS',
  tlsPorts: '465 uses TLS from the start, 587 uses STARTTLS',
};

type ErrorLike = Error & { code?: string; originalCode?: string; hostname?: string };

// Node/OpenSSL codes for a certificate the client does not trust, or a handshake that failed.
const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_SSL_WRONG_VERSION_NUMBER', 'EPROTO', 'ERR_TLS_HANDSHAKE_TIMEOUT', 'ClosedAfterConnectTLS',
  'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'ERR_SSL_UNSUPPORTED_PROTOCOL',
  // nodemailer: STARTTLS or the TLS handshake failed.
  'ETLS',
]);
// imapflow and nodemailer phase timeouts, and the socket's own.
const TIMEOUT_CODES = new Set(['CONNECT_TIMEOUT', 'GREETING_TIMEOUT', 'UPGRADE_TIMEOUT', 'SOCKET_TIMEOUT', 'ETIMEOUT', 'ETIMEDOUT', 'ESOCKETTIMEDOUT']);
// getaddrinfo answers; nodemailer wraps them as EDNS (keeping the original in originalCode).
const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL', 'ENODATA', 'EDNS']);
const UNREACHABLE_CODES = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET']);

/**
 * The code that says what happened. nodemailer replaces a system error's
 * code with the step that failed (ESOCKET, EDNS…) and keeps the system's in
 * `originalCode`; imapflow leaves it in `code`.
 */
export function systemCode(err: unknown): string {
  const e = (err ?? {}) as ErrorLike;
  return String(e.originalCode ?? e.code ?? '');
}

/**
 * A network-level failure as a code and a sentence a person can act on, or
 * null when `err` is not one (an authentication or protocol answer, say).
 * `where` names the server ("imap.example.com:993"). Never includes secrets:
 * only host, port and the library's message.
 */
export function classifyNetworkError(
  err: unknown,
  target: { host?: string; port?: number } | undefined,
  wording: NetworkWording,
): { code: NetworkErrorCode; message: string } | null {
  const e = (err ?? {}) as ErrorLike;
  const code = systemCode(err);
  const where = target?.host ? `${target.host}:${target.port ?? ''}`.replace(/:$/, '') : `the ${wording.protocol} server`;

  if (code === 'MAIL_SERVER_BLOCKED') {
    // Nothing was sent there: the sentence may name the address, which the user's own DNS would show too.
    return { code, message: `${e.message}: the host must be the mail provider's ${wording.protocol} server, not this machine or a local-only address. An administrator can change MAIL_SERVER_BLOCKED_NETWORKS.` };
  }
  if (DNS_CODES.has(code)) {
    return { code: 'HOST_NOT_FOUND', message: `The host name ${target?.host ?? e.hostname ?? ''} was not found in DNS (${code}). Check the ${wording.protocol} host.`.replace('  ', ' ') };
  }
  if (code === 'ECONNREFUSED') return { code: 'CONNECTION_REFUSED', message: `${where} refused the connection. Check the host and port (${wording.usualPort}).` };
  if (UNREACHABLE_CODES.has(code)) return { code: 'CONNECTION_REFUSED', message: `${where} could not be reached (${code}). Check the host and port.` };
  if (TIMEOUT_CODES.has(code)) {
    const hint = code === 'GREETING_TIMEOUT' ? ` The server never greeted: is this an ${wording.protocol} port, and is the TLS setting right?` : '';
    return { code: 'TIMEOUT', message: `${where} did not answer in time (${code}).${hint}` };
  }
  if (TLS_CODES.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /\b(ssl|tls|certificate|handshake)\b/i.test(e.message ?? '')) {
    const reason = opensslReason(e.message ?? '');
    if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || NOT_TLS.test(reason)) {
      return { code: 'TLS_ERROR', message: `TLS with ${where} failed: the server did not answer in TLS on this port (${reason || code}). Check the TLS setting: ${wording.tlsPorts}.` };
    }
    return { code: 'TLS_ERROR', message: `TLS with ${where} failed: ${reason || code}. Check the TLS setting (${wording.tlsPorts}) and the server's certificate.` };
  }
  return null;
}

/** OpenSSL's reasons for bytes that are not a TLS record: the port speaks plain text (or STARTTLS). */
const NOT_TLS = /wrong version number|packet length too long|http request|unknown protocol|record layer failure/i;

/**
 * OpenSSL's own error line ("80DC0564A47F0000:error:0A00010B:SSL routines:
 * ssl3_get_record:wrong version number:../deps/openssl/…:350:") cut to its
 * reason ("wrong version number"); any other message is kept as it is.
 */
function opensslReason(message: string): string {
  const match = /^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+)/i.exec(message.trim());
  return (match ? match[1] : message).trim();
}
