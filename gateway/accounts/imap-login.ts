import { ImapFlow } from 'imapflow';
import { AppError } from '../core/errors';
import type { Logger } from '../core/log';
import type { TlsMode } from './presets';

export interface ImapLoginSettings {
  host: string;
  port: number;
  tls: TlsMode;
  username: string;
  password: string;
}

export type ImapLoginResult = { ok: true } | { ok: false; error: AppError };

/** Stable codes the console, the API and the syncer show and act on. */
export const IMAP_ERROR_CODES = ['AUTH_FAILED', 'HOST_NOT_FOUND', 'CONNECTION_REFUSED', 'TLS_ERROR', 'TIMEOUT', 'IMAP_ERROR'] as const;
export type ImapErrorCode = (typeof IMAP_ERROR_CODES)[number];

type ErrorLike = Error & {
  code?: string;
  authenticationFailed?: boolean;
  responseText?: string;
  serverResponseCode?: string;
  response?: string;
  hostname?: string;
  address?: string;
  port?: number;
  cause?: unknown;
};

// Node/OpenSSL codes for a certificate the client does not trust, or a handshake that failed.
const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_SSL_WRONG_VERSION_NUMBER', 'EPROTO', 'ERR_TLS_HANDSHAKE_TIMEOUT', 'ClosedAfterConnectTLS',
  'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'ERR_SSL_UNSUPPORTED_PROTOCOL',
]);
const TIMEOUT_CODES = new Set(['CONNECT_TIMEOUT', 'GREETING_TIMEOUT', 'UPGRADE_TIMEOUT', 'ETIMEOUT', 'ETIMEDOUT', 'ESOCKETTIMEDOUT']);
const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL', 'ENODATA']);

/**
 * Turn whatever imapflow, net, tls or dns threw into an AppError with one of
 * IMAP_ERROR_CODES and a sentence a person can act on. The message never
 * contains the password (imapflow does not put it in errors; we only echo
 * host, port and server text). Status 422: the settings are the problem.
 */
export function classifyImapError(err: unknown, target?: { host?: string; port?: number }): AppError {
  const e = (err ?? {}) as ErrorLike;
  const code = String(e.code ?? '');
  const where = target?.host ? `${target.host}:${target.port ?? ''}`.replace(/:$/, '') : 'the IMAP server';
  const make = (c: ImapErrorCode, message: string) => new AppError(c, message, { status: 422, cause: err });

  if (e.authenticationFailed || e.serverResponseCode === 'AUTHENTICATIONFAILED' || e.serverResponseCode === 'AUTHORIZATIONFAILED') {
    const serverText = (e.responseText ?? '').trim();
    return make('AUTH_FAILED', `The server rejected the user name or password${serverText ? `: "${serverText}"` : ''}. Check them; most providers need an app password for IMAP.`);
  }
  if (DNS_CODES.has(code)) return make('HOST_NOT_FOUND', `The host name ${target?.host ?? e.hostname ?? ''} was not found in DNS (${code}). Check the IMAP host.`.replace('  ', ' '));
  if (code === 'ECONNREFUSED') return make('CONNECTION_REFUSED', `${where} refused the connection. Check the host and port (IMAP over TLS is usually 993).`);
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ECONNRESET') {
    return make('CONNECTION_REFUSED', `${where} could not be reached (${code}). Check the host and port.`);
  }
  if (TIMEOUT_CODES.has(code)) {
    const hint = code === 'GREETING_TIMEOUT' ? ' The server never greeted: is this an IMAP port, and is the TLS setting right?' : '';
    return make('TIMEOUT', `${where} did not answer in time (${code}).${hint}`);
  }
  if (TLS_CODES.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /\b(ssl|tls|certificate|handshake)\b/i.test(e.message ?? '')) {
    return make('TLS_ERROR', `TLS with ${where} failed: ${e.message || code}. Check the TLS setting (993 uses TLS from the start, 143 uses STARTTLS) and the server's certificate.`);
  }
  if (e.cause && e.cause !== err) {
    const inner = classifyImapError(e.cause, target);
    if (inner.code !== 'IMAP_ERROR') return inner;
  }
  const serverText = (e.responseText ?? '').trim();
  return make('IMAP_ERROR', `${where} answered with an error: ${serverText || e.message || code || 'unknown error'}`);
}

/**
 * Log in to an IMAP server for real (then log out) to check settings, within
 * `timeoutMs` overall. Resolves `{ok: true}` or `{ok: false, error}` with a
 * precise code; never rejects. Certificate verification stays on: a server
 * with an untrusted certificate is a TLS_ERROR, not a silent downgrade.
 */
export async function authenticateImap(settings: ImapLoginSettings, options: { timeoutMs?: number; log?: Logger } = {}): Promise<ImapLoginResult> {
  const timeoutMs = options.timeoutMs ?? 15000;
  const target = { host: settings.host, port: settings.port };
  const client = new ImapFlow({
    host: settings.host,
    port: settings.port,
    secure: settings.tls === 'implicit',
    // STARTTLS (RFC 3501 §6.2.1) must be used when asked for, never when 'none'.
    doSTARTTLS: settings.tls === 'starttls' ? true : settings.tls === 'none' ? false : undefined,
    auth: { user: settings.username, pass: settings.password },
    logger: false,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    disableAutoIdle: true,
    clientInfo: { name: 'Postroom' },
  } as ConstructorParameters<typeof ImapFlow>[0]);
  // imapflow also emits 'error' on the client; without a listener Node would throw it.
  client.on('error', () => undefined);

  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEOUT' })), timeoutMs);
  });
  try {
    await Promise.race([client.connect(), deadline]);
    await Promise.race([client.logout(), deadline]).catch(() => undefined);
    options.log?.info({ host: settings.host, port: settings.port }, 'IMAP login succeeded');
    return { ok: true };
  } catch (err) {
    const error = classifyImapError(err, target);
    options.log?.info({ host: settings.host, port: settings.port, code: error.code }, 'IMAP login failed');
    return { ok: false, error };
  } finally {
    clearTimeout(timer);
    try {
      client.close();
    } catch {
      // already closed
    }
  }
}
