import { ImapFlow } from 'imapflow';
import { AppError } from '../core/errors';
import type { Logger } from '../core/log';
import { imapClientOptions } from './imap-client';
import { classifyNetworkError, IMAP_WORDING } from './network-errors';
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
export const IMAP_ERROR_CODES = ['AUTH_FAILED', 'SERVER_UNAVAILABLE', 'HOST_NOT_FOUND', 'CONNECTION_REFUSED', 'CONNECTION_LOST', 'TLS_ERROR', 'TIMEOUT', 'MAIL_SERVER_BLOCKED', 'IMAP_ERROR'] as const;

/**
 * imapflow's codes for a connection that went away under a command (the
 * server stopped, restarted or dropped us), or closed before greeting. Not
 * an error answer of the server: reported as such, a sync that died with a
 * server restart read "answered with an error: Connection not available".
 */
const CONNECTION_LOST_CODES = new Set(['NoConnection', 'EConnectionClosed', 'ClosedAfterConnectText', 'EPIPE']);
export type ImapErrorCode = (typeof IMAP_ERROR_CODES)[number];

type ErrorLike = Error & {
  code?: string;
  authenticationFailed?: boolean;
  responseText?: string;
  serverResponseCode?: string;
  response?: string;
  hostname?: string;
  address?: string;
  /** imapflow: the text of the server's BYE when it closed the connection with one. */
  reason?: string;
  port?: number;
  cause?: unknown;
};

/**
 * RFC 5530 response codes of a server that could not check the credentials
 * just now (its auth backend is down, too many sessions, a bug): the login
 * failed, but not because of the user name or password. imapflow flags every
 * tagged NO to LOGIN/AUTHENTICATE as authenticationFailed; taken as a wrong
 * password, Gmail's "NO [UNAVAILABLE] Temporary System Error" turned the
 * sync off until the user typed the (right) password again.
 */
const TEMPORARY_LOGIN_CODES = new Set(['UNAVAILABLE', 'INUSE', 'LIMIT', 'SERVERBUG']);

/** The server refused these credentials (not a temporary failure of its own, not a network problem). */
export function isImapCredentialsRefusal(err: unknown): boolean {
  const e = (err ?? {}) as ErrorLike;
  if (TEMPORARY_LOGIN_CODES.has(String(e.serverResponseCode ?? '').toUpperCase())) return false;
  return Boolean(e.authenticationFailed || e.serverResponseCode === 'AUTHENTICATIONFAILED' || e.serverResponseCode === 'AUTHORIZATIONFAILED');
}

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

  if (isImapCredentialsRefusal(err)) {
    const serverText = (e.responseText ?? '').trim();
    return make('AUTH_FAILED', `The server rejected the user name or password${serverText ? `: "${serverText}"` : ''}. Check them; most providers need an app password for IMAP.`);
  }
  const responseCode = String(e.serverResponseCode ?? '').toUpperCase();
  if (TEMPORARY_LOGIN_CODES.has(responseCode)) {
    const serverText = (e.responseText ?? '').trim();
    return make('SERVER_UNAVAILABLE', `${where} could not check the user name and password just now (${responseCode}${serverText ? `: "${serverText}"` : ''}). This is a temporary problem of the server, not a wrong password: try again in a few minutes.`);
  }
  const network = classifyNetworkError(err, target, IMAP_WORDING);
  if (network) return make(network.code, network.message);
  if (CONNECTION_LOST_CODES.has(code)) {
    const bye = (e.reason ?? '').trim();
    return make('CONNECTION_LOST', `The connection to ${where} was lost (${code})${bye ? `: the server said "${bye}"` : ': the server closed it or went away'}. Check that the server is up; the sync picks up where it stopped.`);
  }
  if (e.cause && e.cause !== err) {
    const inner = classifyImapError(e.cause, target);
    if (inner.code !== 'IMAP_ERROR') return inner;
  }
  const serverText = (e.responseText ?? '').trim();
  return make('IMAP_ERROR', `${where} answered with an error: ${serverText || e.message || code || 'unknown error'}`);
}

/**
 * Microsoft's IMAP servers refuse every password, app passwords included, since Microsoft turned basic
 * authentication off (Exchange Online in 2022, Outlook.com in September 2024): "check the password"
 * sends the user round in circles. Hosts: outlook.office365.com, imap-mail.outlook.com, outlook.office.com.
 */
const MICROSOFT_IMAP_HOST = /(^|\.)(office365\.com|outlook\.com|office\.com)$/i;

/** A password login's failure in the words that help with this host. */
export function explainPasswordLoginFailure(error: AppError, host: string): AppError {
  if (error.code !== 'AUTH_FAILED' || !MICROSOFT_IMAP_HOST.test(host.trim().replace(/\.$/, ''))) return error;
  const serverText = /: "(.*)"\./.exec(error.message)?.[1];
  return new AppError('AUTH_FAILED',
    `${host} refused the password${serverText ? ` ("${serverText}")` : ''}: Microsoft 365 and Outlook.com no longer accept passwords for IMAP, not even app passwords. ` +
    'Use "Sign in with Microsoft" instead (if the button is missing, a Postroom admin sets it up under Preferences → Business).',
    { status: error.status, cause: error.cause });
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
  // Connecting and the greeting get two thirds of the limit: a server that answers but is not IMAP (an
  // SMTP port, say) then fails as GREETING_TIMEOUT, whose message says so, before the overall deadline.
  const stepMs = Math.max(1, Math.floor((timeoutMs * 2) / 3));
  let client: ImapFlow | undefined;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEOUT' })), timeoutMs);
  });
  try {
    const imapOptions = await Promise.race([imapClientOptions(settings, { user: settings.username, pass: settings.password }, { connectionTimeoutMs: stepMs, greetingTimeoutMs: stepMs, socketTimeoutMs: timeoutMs }), deadline]);
    client = new ImapFlow(imapOptions);
    // imapflow also emits 'error' on the client; without a listener Node would throw it.
    client.on('error', () => undefined);
    await Promise.race([client.connect(), deadline]);
    await Promise.race([client.logout(), deadline]).catch(() => undefined);
    options.log?.info({ host: settings.host, port: settings.port }, 'IMAP login succeeded');
    return { ok: true };
  } catch (err) {
    const error = explainPasswordLoginFailure(classifyImapError(err, target), settings.host);
    options.log?.info({ host: settings.host, port: settings.port, code: error.code }, 'IMAP login failed');
    return { ok: false, error };
  } finally {
    clearTimeout(timer);
    try {
      client?.close();
    } catch {
      // already closed
    }
  }
}
