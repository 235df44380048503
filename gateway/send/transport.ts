import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport';
import type { Logger } from '../core/log';
import type { SmtpSettings } from './settings';
import { pinMailServer } from '../accounts/mail-server-address';

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
 * One address (IPv4 first): nodemailer would resolve a name again itself,
 * so unlike IMAP a submission server's other addresses are not tried.
 * Outbox retries cover an address that is down.
 */
export async function createSmtpTransport(settings: SmtpSettings, options: TransportOptions = {}): Promise<Transporter<SMTPTransport.SentMessageInfo>> {
  const timeouts = { ...DEFAULT_SMTP_TIMEOUTS, ...options.timeouts };
  const server = await pinMailServer(settings.host, timeouts.connectionTimeoutMs);
  const transportOptions: SMTPTransport.Options = {
    host: server.address,
    ...(server.servername ? { servername: server.servername } : {}),
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
  return nodemailer.createTransport(transportOptions);
}
