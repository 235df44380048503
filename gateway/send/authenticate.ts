import type { SecretBox } from '../core/crypto';
import { AppError, notFound } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import type { Store } from '../store';
import { recordAudit, type Actor } from '../accounts/audit';
import { parseObjectId, type ObjectId } from '../accounts/ids';
import { accountScope, applyLoginResult, toMailAccountView, type MailAccountView, type Viewer } from '../accounts/mail-accounts';
import { classifyOAuthSendError, isSmtpTokenRefused, tokenRefusedError, withSmtpLogin, type SendOAuthOptions } from './oauth';
import { classifySmtpError } from './smtp-errors';
import { smtpServer, smtpSettingsFor, type SendingAccount, type SmtpSettings } from './settings';
import { createSmtpTransport, type SmtpTimeouts } from './transport';

export type SmtpLoginResult = { ok: true } | { ok: false; error: AppError };

export interface SmtpLoginOptions {
  timeoutMs?: number;
  log?: Logger;
  /** OAuth2 settings (`auth.type` 'oauth2'): where the access token comes from; refreshed once if refused. */
  oauth?: { store: Store; log: Logger; secretBox: SecretBox; accountId: ObjectId | string } & SendOAuthOptions;
}

/**
 * Log in to an SMTP server for real (EHLO, STARTTLS when asked, AUTH, QUIT:
 * nodemailer's `verify()`), within `timeoutMs` overall. Resolves `{ok: true}`
 * or `{ok: false, error}` with a precise code (AUTH_FAILED with the server's
 * text, HOST_NOT_FOUND, CONNECTION_REFUSED, TLS_ERROR, TIMEOUT); never rejects.
 */
export async function authenticateSmtp(settings: SmtpSettings, options: SmtpLoginOptions = {}): Promise<SmtpLoginResult> {
  const timeoutMs = options.timeoutMs ?? 15000;
  const target = { host: settings.host, port: settings.port };
  const timeouts: SmtpTimeouts = { connectionTimeoutMs: timeoutMs, greetingTimeoutMs: timeoutMs, socketTimeoutMs: timeoutMs };
  const login = async (session: SmtpSettings) => {
    const transport = await createSmtpTransport(session, { timeouts });
    try {
      await transport.verify();
    } finally {
      transport.close();
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEOUT' })), timeoutMs);
  });
  try {
    await Promise.race([options.oauth ? withSmtpLogin(options.oauth, options.oauth.accountId, settings, login) : login(settings), deadline]);
    options.log?.info(target, 'SMTP login succeeded');
    return { ok: true };
  } catch (err) {
    const error = classifyOAuthSendError(err)?.error
      ?? (settings.auth.type === 'oauth2' && isSmtpTokenRefused(err) && options.oauth
        ? (await tokenRefusedError(options.oauth.store, options.oauth.accountId, classifySmtpError(err, target).error.message)).error
        : classifySmtpError(err, target).error);
    options.log?.info({ ...target, code: error.code }, 'SMTP login failed');
    return { ok: false, error };
  } finally {
    clearTimeout(timer);
  }
}

export interface AuthenticateSmtpDeps extends SendOAuthOptions {
  store: Store;
  secretBox: SecretBox;
  actor: Actor;
  log?: Logger;
  timeoutMs?: number;
  now?: Date;
}

/**
 * The console's and API's "Authenticate SMTP": log in with the account's
 * resolved SMTP settings and record the outcome on MailAccount.smtp (status
 * authenticated/failing, last error) plus an audit event. Missing settings
 * are a 400 VALIDATION_FAILED naming each field.
 */
export async function authenticateMailAccountSmtp(deps: AuthenticateSmtpDeps, viewer: Viewer, id: string): Promise<{ account: MailAccountView; error: AppError | null }> {
  const objectId = parseObjectId(id);
  const account = objectId ? await deps.store.models.MailAccount.findOne({ _id: objectId, ...accountScope(viewer) }) : null;
  if (!account) throw notFound('mail account');
  const settings = smtpSettingsFor(account as unknown as SendingAccount, deps.secretBox);
  const oauth = { store: deps.store, log: deps.log ?? silentLogger, secretBox: deps.secretBox, accountId: account._id, oauthConfig: deps.oauthConfig, oauthTuning: deps.oauthTuning, clock: deps.clock };
  const result = await authenticateSmtp(settings, { timeoutMs: deps.timeoutMs, log: deps.log, oauth });
  const now = deps.now ?? new Date();
  // A login can take up to the timeout. Meanwhile another tab may have saved other sending settings and
  // authenticated them, or removed the mailbox: the outcome is recorded only while the settings tried are
  // still the saved ones (a stale failure made the account unable to send, and put the old server back).
  const fresh = await deps.store.models.MailAccount.findOne({ _id: account._id, ...accountScope(viewer) });
  if (!fresh) throw notFound('mail account');
  const smtp = fresh.smtp!;
  // Keep the resolved server on the account, so what was verified is what is shown and used.
  const server = smtpServer(fresh as unknown as SendingAccount);
  if (sameSmtpSettings(settings, fresh as unknown as SendingAccount, deps.secretBox)) {
    smtp.host = server.host;
    smtp.port = server.port;
    smtp.tls = server.tls;
    applyLoginResult(smtp, result, now);
    await fresh.save().catch((err: Error) => {
      throw err.name === 'DocumentNotFoundError' ? notFound('mail account') : err;
    });
  }
  await recordAudit(deps.store, deps.actor, {
    action: result.ok ? 'account.smtp.authenticated' : 'account.smtp.failed',
    targetType: 'mail_account',
    targetId: account._id.toString(),
    details: { email: account.email, host: settings.host, ...(result.ok ? {} : { code: result.error.code }) },
  }, now);
  return { account: toMailAccountView(fresh), error: result.ok ? null : result.error };
}

/** Whether the account's saved sending settings are still those of `tried` (same server, same login). */
function sameSmtpSettings(tried: SmtpSettings, account: SendingAccount, secretBox: SecretBox): boolean {
  let now: SmtpSettings;
  try {
    now = smtpSettingsFor(account, secretBox);
  } catch {
    return false;
  }
  const login = (settings: SmtpSettings) => [settings.auth.type, settings.auth.user, settings.auth.type === 'password' ? settings.auth.pass : ''];
  return now.host === tried.host && now.port === tried.port && now.tls === tried.tls && login(now).join('\n') === login(tried).join('\n');
}
