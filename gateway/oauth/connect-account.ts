import { imapClientOptions, type ImapEndpoint } from '../accounts/imap-client';
import { recordAudit, SYSTEM_ACTOR, type Actor } from '../accounts/audit';
import { classifyImapError } from '../accounts/imap-login';
import { authenticateMailAccountImap, getMailAccount, type Viewer } from '../accounts/mail-accounts';
import { findPreset } from '../accounts/presets';
import { AppError, isAppError, notFound } from '../core/errors';
import { now, type OAuthDeps } from './deps';
import { connectImapWithOAuth } from './imap';
import { isProviderId, resolveProvider, type OAuthProviderId } from './providers';

/** The connection preset (gateway/accounts/presets.ts) of each provider's mail servers. */
const PROVIDER_PRESET: Partial<Record<OAuthProviderId, string>> = { google: 'gmail', microsoft: 'outlook' };

export interface VerifyOAuthImapResult {
  ok: boolean;
  error: AppError | null;
}

/**
 * After "Sign in with …" came back: fill the IMAP settings the provider
 * implies (host/port/TLS of its preset, the mailbox address as user name),
 * turn IMAP Support on and log in for real with the new token, recording
 * the outcome on MailAccount.imap the way a password Authenticate does, so
 * the syncer picks the account up (status 'authenticated').
 */
export async function verifyOAuthImap(deps: OAuthDeps & { actor?: Actor; timeoutMs?: number }, accountId: string): Promise<VerifyOAuthImapResult> {
  const account = await deps.store.models.MailAccount.findById(accountId);
  if (!account) throw notFound('mail account');
  const providerId = account.oauth?.provider;
  if (!isProviderId(providerId)) throw new AppError('OAUTH_NOT_CONNECTED', `${account.email} is not connected with OAuth2.`, { status: 409 });
  const imap = account.imap!;
  // The settings as saved when the check starts: its outcome is recorded only while they still are.
  const saved = { host: imap.host ?? '', port: imap.port ?? 0, username: imap.username ?? '' };
  const preset = findPreset(PROVIDER_PRESET[providerId] ?? '')?.imap;
  if (!imap.host && preset) {
    imap.service = PROVIDER_PRESET[providerId]!;
    imap.host = preset.host;
    imap.port = preset.port;
    imap.tls = preset.tls;
  }
  if (!imap.username) imap.username = account.email;
  imap.enabled = true;
  const at = now(deps);
  let error: AppError | null = null;
  if (!imap.host || !imap.port) {
    const provider = await resolveProvider(deps, providerId);
    error = new AppError('VALIDATION_FAILED', `Signed in with ${provider.label}. Now enter the IMAP host and port of this mailbox and click Authenticate.`, { status: 400, fields: { 'imap.host': 'is needed to authenticate' } });
  } else {
    const timeoutMs = deps.timeoutMs ?? 15_000;
    const target = { host: imap.host, port: imap.port };
    try {
      const client = await connectImapWithOAuth(deps, account._id, imap.username, await imapClientOptions(imap as ImapEndpoint, undefined, timeoutMs));
      await client.logout().catch(() => undefined);
      client.close();
    } catch (err) {
      error = isAppError(err) && err.code.startsWith('OAUTH_') ? err : classifyImapError(err, target);
    }
  }
  if (error) {
    imap.status = 'failing';
    imap.authenticatedAt = null;
    imap.lastError = error.message;
    imap.lastErrorCode = error.code;
  } else {
    imap.status = 'authenticated';
    imap.authenticatedAt = at;
    imap.lastError = '';
    imap.lastErrorCode = '';
    // A fresh grant ends any backoff the syncer was in; its cursors are kept, so it resumes where it stopped.
    imap.failures = 0;
    imap.nextAttemptAt = null;
  }
  // The login can take up to its timeout. The mailbox removed meanwhile is a 404 (was a 500: a save of a
  // removed document); disconnected or pointed elsewhere meanwhile, the newer settings' state stands.
  const current = await deps.store.models.MailAccount.findById(account._id, { oauth: 1, imap: 1 }).lean();
  if (!current) throw notFound('mail account');
  const unchanged = current.oauth?.provider === providerId && (current.imap?.host ?? '') === saved.host && (current.imap?.port ?? 0) === saved.port && (current.imap?.username ?? '') === saved.username;
  if (unchanged) {
    await account.save().catch((err: Error) => {
      throw err.name === 'DocumentNotFoundError' ? notFound('mail account') : err;
    });
  }
  await recordAudit(deps.store, deps.actor ?? SYSTEM_ACTOR, {
    action: error ? 'account.imap.failed' : 'account.imap.authenticated',
    targetType: 'mail_account',
    targetId: account._id.toString(),
    details: { email: account.email, host: imap.host, method: `oauth2:${providerId}`, ...(error ? { code: error.code } : {}) },
  }, at);
  deps.log.child({ component: 'oauth', accountId: account._id.toHexString(), provider: providerId }).info({ ok: !error, code: error?.code }, 'imap login with oauth2 checked');
  return { ok: !error, error };
}

/**
 * The "Authenticate" of IMAP Support, shared by the console and the API so
 * both branch the same way: an account signed in with OAuth2 logs in with
 * its access token (verifyOAuthImap), any other with its password
 * (authenticateMailAccountImap). The account must be visible to `viewer`
 * (404 otherwise). Resolves with the login error, or null when it worked.
 */
export async function authenticateAccountImap(deps: OAuthDeps & { actor: Actor; timeoutMs?: number }, viewer: Viewer, id: string): Promise<{ error: AppError | null }> {
  const account = await getMailAccount(deps.store, viewer, id);
  if (!account) throw notFound('mail account');
  if (account.oauth) return verifyOAuthImap(deps, account.id);
  return authenticateMailAccountImap({ store: deps.store, secretBox: deps.secretBox, actor: deps.actor, log: deps.log, timeoutMs: deps.timeoutMs, now: now(deps) }, viewer, account.id);
}
