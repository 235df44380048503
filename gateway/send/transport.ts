import net from 'node:net';
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport';
import type { Logger } from '../core/log';
import type { SmtpSettings } from './settings';
import { pinMailServer } from '../accounts/mail-server-address';
import { checkedLookup, type CheckedHost } from '../core/checked-host';

/** Timeouts of one SMTP session (nodemailer's names); tests shorten them. */
export interface SmtpTimeouts {
  connectionTimeoutMs: number;
  greetingTimeoutMs: number;
  socketTimeoutMs: number;
}

export const DEFAULT_SMTP_TIMEOUTS: SmtpTimeouts = {
  connectionTimeoutMs: 30_000,
  greetingTimeoutMs: 30_000,
  // RFC 5321 §4.5.3.2 suggests minutes per command; 2 min of silence is a dead peer for submission.
  socketTimeoutMs: 2 * 60_000,
};

export interface TransportOptions {
  timeouts?: Partial<SmtpTimeouts>;
  log?: Logger;
  /** EHLO name (RFC 5321 §4.1.1.1); nodemailer's default is the machine's host name. */
  name?: string;
}

function smtpAuthOption(auth: SmtpSettings['auth']): SMTPTransport.Options['auth'] {
  if (auth.type === 'password') return { user: auth.user, pass: auth.pass };
  if (!auth.accessToken) throw new Error('an OAuth2 SMTP session needs an access token: open it with withSmtpLogin()');
  return { type: 'OAuth2', user: auth.user, accessToken: auth.accessToken };
}

/**
 * The one place a nodemailer SMTP transport is built for an account, so
 * every session (Authenticate SMTP, sending, retries) uses the same TLS and
 * authentication rules:
 *
 * - `implicit`: TLS from the first byte (RFC 8314 §3.3, port 465);
 * - `starttls`: STARTTLS is required — a server that does not offer it is
 *   an error, never a silent plaintext login (RFC 3207, RFC 8314 §3.1);
 * - `none`: plaintext, only when the user chose it.
 *
 * Certificates are always verified (Node's default trust store plus
 * NODE_EXTRA_CA_CERTS). OAuth2 accounts authenticate with SASL XOAUTH2
 * (nodemailer's `{type: 'OAuth2', user, accessToken}`); the token must have
 * been put in by withSmtpLogin (smtp-login.ts). No refresh token or client
 * secret is handed to nodemailer: refreshing is gateway/oauth's job, one
 * refresh at a time per account.
 *
 * The host is resolved and checked against MAIL_SERVER_BLOCKED_NETWORKS
 * first (pinMailServer) and the session goes to the address checked, with
 * the name kept for TLS; a refused host rejects with MailServerBlockedError.
 * nodemailer would resolve a name again itself, so it is handed a socket
 * (its getSocket hook) connected through the addresses checked, each tried
 * in turn as Node does for a name (connectedSocket).
 */
export async function createSmtpTransport(settings: SmtpSettings, options: TransportOptions = {}): Promise<Transporter<SMTPTransport.SentMessageInfo>> {
  const timeouts = { ...DEFAULT_SMTP_TIMEOUTS, ...options.timeouts };
  const server = await pinMailServer(settings.host, timeouts.connectionTimeoutMs);
  const transportOptions: SMTPTransport.Options = {
    // By name: nodemailer keeps it for SNI and the certificate check (also when STARTTLS upgrades the socket).
    host: server.servername ?? server.host,
    port: settings.port,
    secure: settings.tls === 'implicit',
    requireTLS: settings.tls === 'starttls',
    ignoreTLS: settings.tls === 'none',
    auth: smtpAuthOption(settings.auth),
    connectionTimeout: timeouts.connectionTimeoutMs,
    greetingTimeout: timeouts.greetingTimeoutMs,
    socketTimeout: timeouts.socketTimeoutMs,
    // The composed message is handed over as raw bytes: nothing may be read from files or URLs.
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
    debug: false,
  };
  if (options.name) transportOptions.name = options.name;
  const servername = server.servername;
  if (servername) transportOptions.getSocket = (_options, callback) => connectedSocket(server, servername, settings.port, timeouts.connectionTimeoutMs, callback);
  return nodemailer.createTransport(transportOptions);
}

/**
 * A TCP connection to the pinned addresses of a name, for nodemailer's
 * getSocket: each address is tried in turn (Node's autoSelectFamily, with
 * the connection's time shared between them), and the socket is handed over
 * once connected, so a refusal or a timeout of every address is the error
 * nodemailer rejects with (ECONNREFUSED, ETIMEDOUT), classified as before.
 */
function connectedSocket(server: CheckedHost, servername: string, port: number, timeoutMs: number, callback: (err: Error | null, socketOptions?: { connection: net.Socket }) => void): void {
  let settled = false;
  const settle = (err: Error | null) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.removeListener('error', settle);
    if (err) {
      socket.destroy();
      callback(err);
    } else {
      callback(null, { connection: socket });
    }
  };
  const socket = net.connect({
    host: servername,
    port,
    lookup: checkedLookup(server),
    autoSelectFamily: true,
    autoSelectFamilyAttemptTimeout: Math.max(250, Math.floor(timeoutMs / Math.max(1, server.addresses.length))),
  });
  const timer = setTimeout(() => settle(Object.assign(new Error(`${servername}:${port} did not accept the connection within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
  socket.once('connect', () => settle(null));
  socket.once('error', settle);
}
