import type { ImapFlowOptions } from 'imapflow';
import type { Logger } from '../core/log';
import type { TlsMode } from './presets';
import { checkedLookup } from '../core/checked-host';
import { pinMailServer } from './mail-server-address';

/**
 * The imapflow options every Postroom IMAP connection uses (Authenticate,
 * sync, OAuth verification, Sent append), so TLS and timeouts are decided in
 * one place. Certificates are always verified; trust comes from the system
 * store (plus NODE_EXTRA_CA_CERTS), never from turning checks off. The
 * host is resolved and checked against MAIL_SERVER_BLOCKED_NETWORKS here
 * (pinMailServer), so no connection to a mailbox's server skips the check;
 * a refused host rejects with MailServerBlockedError.
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

export async function imapClientOptions(
  endpoint: ImapEndpoint,
  auth: ImapFlowOptions['auth'] | undefined,
  timeouts: ImapClientTimeouts | number,
  logger: Logger | false = false,
): Promise<ImapFlowOptions> {
  const t = typeof timeouts === 'number' ? { connectionTimeoutMs: timeouts, greetingTimeoutMs: timeouts, socketTimeoutMs: timeouts } : timeouts;
  const server = await pinMailServer(endpoint.host, t.connectionTimeoutMs);
  return {
    // A name is connected to by name (imapflow keeps it for SNI and the certificate check) through a lookup
    // that answers with the addresses checked, each tried in turn; `tls` holds options for net/tls.connect.
    host: server.servername ?? server.host,
    ...(server.servername ? { tls: { lookup: checkedLookup(server) } } : {}),
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
