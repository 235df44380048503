import type { SecretBox } from '../core/crypto';
import { AppError } from '../core/errors';
import { canonicalMailbox } from '../accounts/email-address';
import { findPreset, type TlsMode } from '../accounts/presets';
import { describeFields } from '../accounts/users';
import type { ObjectId } from '../accounts/ids';
import type { Store } from '../store';

/**
 * Where and as whom Postroom submits mail for an account (RFC 6409
 * submission). Host/port/TLS come from the SMTP settings the user saved, or
 * else from the service preset (the SMTP service, or the IMAP one when the
 * SMTP side was never set); the user name and password are the IMAP ones
 * unless the user gave others (`smtp.sameCredentials` false).
 */
export interface SmtpSettings {
  host: string;
  port: number;
  tls: TlsMode;
  /** How the client authenticates: the stored password, or an OAuth2 access token (SASL XOAUTH2). */
  auth: SmtpPasswordAuth | SmtpOAuth2Auth;
}

export interface SmtpPasswordAuth {
  type: 'password';
  user: string;
  pass: string;
}

/**
 * An account signed in with OAuth2 (MailAccount.oauth.provider set): no
 * password. The access token is put in per SMTP session by withSmtpLogin
 * (smtp-login.ts), which refreshes it once when the server refuses it; it is
 * never stored here longer than that session.
 */
export interface SmtpOAuth2Auth {
  type: 'oauth2';
  user: string;
  accessToken?: string;
}

/**
 * Providers that put a copy of mail submitted over SMTP into the Sent folder
 * themselves, so appending one would file it twice. Gmail does for every
 * authenticated submission; Microsoft 365 / Outlook.com save SMTP AUTH
 * submissions to Sent Items as well.
 */
const PROVIDERS_FILING_SENT = new Set(['gmail', 'outlook']);

export function providerFilesSentMail(service: string): boolean {
  return PROVIDERS_FILING_SENT.has(service);
}

/** What this module reads of a MailAccount (lean or hydrated). */
export interface SendingAccount {
  _id: ObjectId;
  ownerId: ObjectId;
  email: string;
  enabled?: boolean | null;
  imap?: {
    service?: string | null; host?: string | null; port?: number | null; tls?: string | null; username?: string | null;
    passwordEnc?: string | null; status?: string | null; authenticatedAt?: Date | null;
  } | null;
  smtp?: {
    enabled?: boolean | null; service?: string | null; host?: string | null; port?: number | null; tls?: string | null;
    username?: string | null; passwordEnc?: string | null; status?: string | null; sameCredentials?: boolean | null; authenticatedAt?: Date | null;
  } | null;
  oauth?: { provider?: string | null; status?: string | null } | null;
}

/** Signed in with OAuth2: sending and the Sent append use access tokens, never a password. */
export function usesOAuth(account: Pick<SendingAccount, 'oauth'>): boolean {
  return Boolean(account.oauth?.provider);
}

/** The service whose preset applies to sending: the SMTP choice, else the IMAP one. */
export function smtpService(account: SendingAccount): string {
  const chosen = account.smtp?.service;
  return chosen && chosen !== 'custom' ? chosen : account.imap?.service || chosen || 'custom';
}

/** Host, port and TLS mode: saved values first, then the preset. Empty host / port 0 when neither has one. */
export function smtpServer(account: SendingAccount): { host: string; port: number; tls: TlsMode } {
  const preset = findPreset(smtpService(account))?.smtp ?? null;
  const smtp = account.smtp ?? {};
  return {
    host: smtp.host || preset?.host || '',
    port: smtp.port || preset?.port || 0,
    tls: ((smtp.host ? smtp.tls : preset?.tls ?? smtp.tls) || 'implicit') as TlsMode,
  };
}

/**
 * The settings to submit with, the password opened (or, for an OAuth2
 * account, the user name only: the token comes per session). Throws a 400
 * VALIDATION_FAILED naming each missing piece (`smtp.host`, `smtp.password`…).
 */
export function smtpSettingsFor(account: SendingAccount, secretBox: SecretBox): SmtpSettings {
  const server = smtpServer(account);
  const same = account.smtp?.sameCredentials !== false;
  const source = same ? account.imap ?? {} : account.smtp ?? {};
  const prefix = same ? 'imap' : 'smtp';
  const fields: Record<string, string> = {};
  if (!server.host) fields['smtp.host'] = 'is needed to send (or choose an email service)';
  if (!server.port) fields['smtp.port'] = 'is needed to send';
  const oauth = usesOAuth(account);
  // The token is granted for the mailbox address, which is also the XOAUTH2 user (RFC 7628 §3.1 authzid).
  if (!source.username && !oauth) fields[`${prefix}.username`] = same ? 'is needed: sending uses the IMAP user name' : 'is needed to send';
  if (!source.passwordEnc && !oauth) fields[`${prefix}.password`] = same ? 'is needed: sending uses the IMAP password' : 'is needed to send';
  if (Object.keys(fields).length > 0) throw new AppError('VALIDATION_FAILED', describeFields(fields), { status: 400, fields });
  if (oauth) return { ...server, auth: { type: 'oauth2', user: source.username || account.email } };
  return {
    ...server,
    auth: { type: 'password', user: source.username!, pass: secretBox.open(source.passwordEnc!, account._id.toString()) },
  };
}

/**
 * Why the account cannot send yet, or null when it can. Sending needs an
 * enabled account whose IMAP login was authenticated (the rule: send
 * through a mailbox we know is the user's) and whose SMTP login was
 * authenticated with the Authenticate SMTP step.
 */
export function sendingProblem(account: SendingAccount): string | null {
  if (account.enabled === false) return 'this account is disabled';
  if (usesOAuth(account) && account.oauth?.status === 'reauth_needed') {
    return 'its OAuth2 sign-in must be renewed (re-authorisation needed: Preferences → Email → IMAP Support → sign in again)';
  }
  if (!account.imap?.authenticatedAt) return 'its IMAP login is not authenticated yet (Preferences → Email → IMAP Support → Authenticate)';
  if (!account.smtp?.enabled) return 'sending is not turned on for it (Preferences → Email → Sending)';
  if (account.smtp.status !== 'authenticated') {
    return account.smtp.status === 'failing'
      ? 'its SMTP login failed; check the settings and press Authenticate SMTP again'
      : 'its SMTP login is not authenticated yet (Preferences → Email → Sending → Authenticate SMTP)';
  }
  return null;
}

/** What Compose offers: the user's own accounts, each with why it cannot send (null: it can). */
export interface SendableAccount {
  id: string;
  email: string;
  problem: string | null;
}

/** What answeringAccountId reads of the message answered. */
export interface AnsweredMessage {
  accountId?: { toString(): string } | null;
  from?: { address?: string | null } | null;
  to?: Array<{ address?: string | null }> | null;
  cc?: Array<{ address?: string | null }> | null;
}

/**
 * The account a reply or forward goes out from unless the user picks another: the one the message came to,
 * when it can send; else the sendable account the message names, its From first (mail the user sent from
 * another client and logged through the dropbox, which belongs to no account), then To and Cc. Null: the
 * caller takes its usual default. Without this a dropbox message was answered from the first account in
 * alphabetical order, another address than the customer had been writing to.
 */
export function answeringAccountId(message: AnsweredMessage, accounts: readonly SendableAccount[]): string | null {
  const sendable = accounts.filter((account) => !account.problem);
  const receivedBy = message.accountId?.toString();
  if (receivedBy && sendable.some((account) => account.id === receivedBy)) return receivedBy;
  const named = [message.from, ...(message.to ?? []), ...(message.cc ?? [])].map((m) => m?.address).filter((a): a is string => Boolean(a)).map(canonicalMailbox);
  for (const address of named) {
    const account = sendable.find((candidate) => canonicalMailbox(candidate.email) === address);
    if (account) return account.id;
  }
  return null;
}

/**
 * The viewer's own accounts for the From choice ("from any of the user's
 * sendable accounts"): even admins send only as themselves from Compose.
 */
export async function listSendableAccounts(store: Store, ownerId: ObjectId): Promise<SendableAccount[]> {
  const rows = (await store.models.MailAccount.find({ ownerId }, { email: 1, enabled: 1, imap: 1, smtp: 1, ownerId: 1, oauth: 1 }).sort({ email: 1 }).limit(200).lean()) as unknown as SendingAccount[];
  return rows.map((row) => ({ id: row._id.toHexString(), email: row.email, problem: sendingProblem(row) }));
}
