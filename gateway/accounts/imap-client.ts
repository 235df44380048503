import type { ImapFlowOptions } from 'imapflow';
import type { Logger } from '../core/log';
import type { TlsMode } from './presets';

/**
 * The imapflow options every Postroom IMAP connection uses (Authenticate,
 * sync, OAuth verification, Sent append), so TLS and timeouts are decided in
 * one place. Certificates are always verified; trust comes from the system
 * store (plus NODE_EXTRA_CA_CERTS), never from turning checks off.
 */
export interface ImapEndpoint {
  host: string;
  port: number;
  tls: TlsMode;
}

export interface ImapClientTimeouts {
  connectionTimeoutMs: number;
  greetingTimeoutMs: number;
  socketTimeoutMs: number;
}

export function imapClientOptions(
  endpoint: ImapEndpoint,
  auth: ImapFlowOptions['auth'] | undefined,
  timeouts: ImapClientTimeouts | number,
  logger: Logger | false = false,
): ImapFlowOptions {
  const t = typeof timeouts === 'number' ? { connectionTimeoutMs: timeouts, greetingTimeoutMs: timeouts, socketTimeoutMs: timeouts } : timeouts;
  return {
    host: endpoint.host,
    port: endpoint.port,
    secure: endpoint.tls === 'implicit',
    // STARTTLS (RFC 3501 §6.2.1) is required when asked for; never attempted for 'none'.
    doSTARTTLS: endpoint.tls === 'starttls' ? true : endpoint.tls === 'none' ? false : undefined,
    ...(auth ? { auth } : {}),
    logger: logger as ImapFlowOptions['logger'],
    connectionTimeout: t.connectionTimeoutMs,
    greetingTimeout: t.greetingTimeoutMs,
    socketTimeout: t.socketTimeoutMs,
    disableAutoIdle: true,
    clientInfo: { name: 'Postroom' },
  } as ImapFlowOptions;
}
