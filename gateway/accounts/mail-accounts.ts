import net from 'node:net';
import type { SecretBox } from '../core/crypto';
import { AppError, isDuplicateKeyError, notFound } from '../core/errors';
import type { Logger } from '../core/log';
import { TLS_MODES } from '../models/mail-account';
import type { Store } from '../store';
import { recordAudit, SYSTEM_ACTOR, type Actor } from './audit';
import { canonicalMailbox, domainOf, emailProblem, normalizeEmail } from './email-address';
import { buildForwardingAddress } from './forwarding-address';
import { adoptKeptMail } from './kept-mail';
import { parseObjectId, type ObjectId } from './ids';
import { authenticateImap, type ImapLoginSettings } from './imap-login';
import { describeFields } from './users';
import { findPreset, SERVICE_IDS, type TlsMode } from './presets';
import { smtpServer, type SendingAccount } from '../send/settings';

/** Who looks: employees see their own accounts, admins every account. */
export interface Viewer {
  id: ObjectId;
  role: string;
}

export const isAdmin = (viewer: Viewer) => viewer.role === 'admin';

export interface ServerSettingsView {
  enabled: boolean;
  service: string;
  host: string;
  port: number;
  tls: TlsMode;
  username: string;
  /** Whether a password is stored; the password itself never leaves the store. */
  passwordSet: boolean;
  status: string;
  lastError: string;
  lastErrorCode: string;
  authenticatedAt: Date | null;
}

export interface MailAccountView {
  id: string;
  ownerId: string;
  email: string;
  enabled: boolean;
  forwardingAddress: string;
  forwarding: {
    status: string;
    provider: string;
    confirmationCode: string;
    confirmationLink: string;
    confirmationAt: Date | null;
    verifiedAt: Date | null;
    lastForwardedAt: Date | null;
    problem: string;
    /** The latest confirmation held in Quarantine because another mailbox asked for it (model: forwarding.held*). */
    held: { at: Date; requester: string; provider: string; messageId: string; forOtherAccount: boolean } | null;
    /** The latest mail to the forwarding address quarantined (authentication failed) before forwarding was verified. */
    quarantined: { at: Date; reason: string; messageId: string } | null;
  };
  /** folders: what the user picked to sync besides INBOX and the Sent folder (which are always synced). */
  imap: ServerSettingsView & { lastSyncAt: Date | null; lastSuccessAt: Date | null; folders: string[] };
  smtp: ServerSettingsView & { sameCredentials: boolean };
  /** Signed in with OAuth2 (gateway/oauth): which provider and whether the grant still works. Never a token. Null for password accounts. */
  oauth: { provider: string; status: string } | null;
  lastMailAt: Date | null;
  messageCount: number;
  createdAt: Date | null;
  updatedAt: Date | null;
}

// A loose shape of the stored document (lean or hydrated).
type ServerDoc = {
  enabled?: boolean | null; service?: string | null; host?: string | null; port?: number | null; tls?: string | null; username?: string | null;
  passwordEnc?: string | null; status?: string | null; lastError?: string | null; lastErrorCode?: string | null; authenticatedAt?: Date | null;
};
type AccountDoc = {
  _id: ObjectId; ownerId: ObjectId; email: string; enabled?: boolean | null; forwardingAddress: string;
  forwarding?: { status?: string | null; provider?: string | null; confirmationCode?: string | null; confirmationLink?: string | null; confirmationAt?: Date | null; verifiedAt?: Date | null; lastForwardedAt?: Date | null; problem?: string | null;
    heldAt?: Date | null; heldRequester?: string | null; heldProvider?: string | null; heldMessageId?: ObjectId | null; heldForOtherAccount?: boolean | null;
    quarantinedAt?: Date | null; quarantinedReason?: string | null; quarantinedMessageId?: ObjectId | null } | null;
  imap?: (ServerDoc & { lastSyncAt?: Date | null; lastSuccessAt?: Date | null; folders?: string[] | null }) | null;
  smtp?: (ServerDoc & { sameCredentials?: boolean | null }) | null;
  oauth?: { provider?: string | null; status?: string | null } | null;
  lastMailAt?: Date | null; messageCount?: number | null; createdAt?: Date | null; updatedAt?: Date | null;
};

function serverView(doc: ServerDoc | null | undefined): ServerSettingsView {
  return {
    enabled: Boolean(doc?.enabled),
    service: doc?.service ?? 'custom',
    host: doc?.host ?? '',
    port: doc?.port ?? 0,
    tls: (doc?.tls ?? 'implicit') as TlsMode,
    username: doc?.username ?? '',
    passwordSet: Boolean(doc?.passwordEnc),
    status: doc?.status ?? 'off',
    lastError: doc?.lastError ?? '',
    lastErrorCode: doc?.lastErrorCode ?? '',
    authenticatedAt: doc?.authenticatedAt ?? null,
  };
}

export function toMailAccountView(doc: AccountDoc): MailAccountView {
  return {
    id: doc._id.toString(),
    ownerId: doc.ownerId.toString(),
    email: doc.email,
    enabled: doc.enabled !== false,
    forwardingAddress: doc.forwardingAddress,
    forwarding: {
      status: doc.forwarding?.status ?? 'waiting',
      provider: doc.forwarding?.provider ?? '',
      confirmationCode: doc.forwarding?.confirmationCode ?? '',
      confirmationLink: doc.forwarding?.confirmationLink ?? '',
      confirmationAt: doc.forwarding?.confirmationAt ?? null,
      verifiedAt: doc.forwarding?.verifiedAt ?? null,
      lastForwardedAt: doc.forwarding?.lastForwardedAt ?? null,
      problem: doc.forwarding?.problem ?? '',
      held: doc.forwarding?.heldAt && doc.forwarding.heldMessageId
        ? { at: doc.forwarding.heldAt, requester: doc.forwarding.heldRequester ?? '', provider: doc.forwarding.heldProvider ?? '', messageId: doc.forwarding.heldMessageId.toString(), forOtherAccount: Boolean(doc.forwarding.heldForOtherAccount) }
        : null,
      quarantined: doc.forwarding?.quarantinedAt && doc.forwarding.quarantinedMessageId
        ? { at: doc.forwarding.quarantinedAt, reason: doc.forwarding.quarantinedReason ?? '', messageId: doc.forwarding.quarantinedMessageId.toString() }
        : null,
    },
    imap: { ...serverView(doc.imap), lastSyncAt: doc.imap?.lastSyncAt ?? null, lastSuccessAt: doc.imap?.lastSuccessAt ?? null, folders: [...(doc.imap?.folders ?? [])] },
    smtp: { ...serverView(doc.smtp), sameCredentials: doc.smtp?.sameCredentials !== false },
    // Only the provider and status: the sealed tokens stay in the document.
    oauth: doc.oauth?.provider ? { provider: doc.oauth.provider, status: doc.oauth.status ?? 'ok' } : null,
    lastMailAt: doc.lastMailAt ?? null,
    messageCount: doc.messageCount ?? 0,
    createdAt: doc.createdAt ?? null,
    updatedAt: doc.updatedAt ?? null,
  };
}

function isDuplicateKey(err: unknown): { field: string } | null {
  const e = err as { code?: number; message?: string; keyPattern?: Record<string, unknown> };
  if (!isDuplicateKeyError(err)) return null;
  const field = e.keyPattern ? Object.keys(e.keyPattern).join(',') : /forwarding/i.test(e.message ?? '') ? 'forwarding' : 'email';
  return { field };
}

/**
 * Refuse a mailbox address that cannot work as one of `owner`'s accounts (400/409 with the `email` field
 * named): a Postroom address (a forwarding address pasted back into Add, a dropbox), or the same Gmail
 * mailbox as another of their accounts under another spelling (dots, googlemail.com) — it would get a
 * second forwarding address that Gmail never forwards to, waiting for ever.
 */
async function refuseUnusableMailbox(store: Store, owner: ObjectId, address: string, gatewayDomain: string, exceptId?: ObjectId): Promise<void> {
  const gateway = gatewayDomain.toLowerCase();
  const domain = domainOf(address);
  if (domain === gateway || domain.endsWith(`.${gateway}`)) {
    const problem = `is a Postroom address (@${gateway}), not a mailbox of yours: type the address you read your mail at, such as bob@acme.com`;
    throw new AppError('VALIDATION_FAILED', `email ${problem}`, { status: 400, fields: { email: problem } });
  }
  const canonical = canonicalMailbox(address);
  if (!canonical.endsWith('@gmail.com')) return;
  const same = (await store.models.MailAccount.find({ ownerId: owner, domain: { $in: ['gmail.com', 'googlemail.com'] } }, { email: 1 }).lean())
    .find((row) => row.email !== address && !(exceptId && row._id.equals(exceptId)) && canonicalMailbox(row.email) === canonical);
  if (same) {
    const problem = `is the same Gmail mailbox as your account ${same.email} (Gmail ignores dots, and googlemail.com is gmail.com)`;
    throw new AppError('ACCOUNT_EXISTS', `${address} ${problem}`, { status: 409, fields: { email: problem } });
  }
}

export interface CreateMailAccountOptions {
  gatewayDomain: string;
  actor?: Actor;
  now?: Date;
  /** The id the console's Add form gave the account: the same form sent twice adds it once. */
  id?: ObjectId;
}

/**
 * Add a mailbox for a user and give it its forwarding address (shared
 * contract: `<readable>.<token>@<GATEWAY_DOMAIN>`, see forwarding-address.ts).
 * The same user adding the same mailbox twice → 409 ACCOUNT_EXISTS, except
 * the same Add form sent twice (a double click): with `options.id` (the form
 * carries the id the account will have) the second finds the account the
 * first made and answers with it.
 */
export async function createMailAccount(store: Store, ownerId: ObjectId | string, email: string, options: CreateMailAccountOptions): Promise<MailAccountView> {
  const owner = typeof ownerId === 'string' ? parseObjectId(ownerId) : ownerId;
  if (!owner) throw notFound('user');
  const issue = emailProblem(email);
  if (issue) throw new AppError('VALIDATION_FAILED', `email ${issue}`, { status: 400, fields: { email: issue } });
  const address = normalizeEmail(email);
  await refuseUnusableMailbox(store, owner, address, options.gatewayDomain);
  const actor = options.actor ?? SYSTEM_ACTOR;
  // A token collision is astronomically unlikely (80 bits), but the unique index decides; retry with a fresh token.
  for (let attempt = 0; attempt < 3; attempt++) {
    const { forwardingAddress, forwardingToken } = buildForwardingAddress(address, options.gatewayDomain);
    try {
      const account = await store.models.MailAccount.create({ ...(options.id ? { _id: options.id } : {}), ownerId: owner, email: address, domain: domainOf(address), forwardingAddress, forwardingToken });
      const keptMessages = await adoptKeptMail(store, owner, address, account._id);
      await recordAudit(store, actor, { action: 'account.create', targetType: 'mail_account', targetId: account._id.toString(), details: { email: address, ownerId: owner.toString(), forwardingAddress, ...(keptMessages ? { keptMessages } : {}) } }, options.now);
      if (keptMessages) account.messageCount = (account.messageCount ?? 0) + keptMessages;
      return toMailAccountView(account);
    } catch (err) {
      const dup = isDuplicateKey(err);
      if (!dup) throw err;
      const first = options.id ? await store.models.MailAccount.findById(options.id) : null;
      if (first && first.ownerId.equals(owner) && first.email === address) return toMailAccountView(first);
      if (!/forwarding/i.test(dup.field)) {
        throw new AppError('ACCOUNT_EXISTS', `${address} is already one of your mail accounts`, { status: 409, fields: { email: 'is already one of your mail accounts' } });
      }
    }
  }
  throw new AppError('INTERNAL', 'could not generate a unique forwarding address', { status: 500 });
}

/**
 * Forwarding addresses issued on a domain other than GATEWAY_DOMAIN (it was
 * changed after accounts were added): the gateway refuses mail to them as
 * relaying, and employees' providers keep forwarding there. Said at start so
 * the operator learns it from the log, not from bounces. Reads one field of
 * every account, once per start.
 */
export async function warnForwardingAddressesOffDomain(store: Store, gatewayDomain: string, log: Logger): Promise<number> {
  const domain = gatewayDomain.toLowerCase();
  const rows = await store.models.MailAccount.find({}, { forwardingAddress: 1 }).lean();
  const counts = new Map<string, number>();
  for (const row of rows) {
    const other = String(row.forwardingAddress).split('@').pop() ?? '';
    if (other !== domain) counts.set(other, (counts.get(other) ?? 0) + 1);
  }
  const total = [...counts.values()].reduce((sum, n) => sum + n, 0);
  if (total > 0) {
    const domains = [...counts.entries()].map(([name, n]) => `${name} (${n})`).join(', ');
    log.warn(
      { accounts: total, domains: [...counts.keys()], gatewayDomain: domain },
      `${total} forwarding address${total === 1 ? ' was' : 'es were'} issued on another domain than GATEWAY_DOMAIN=${domain}: ${domains}; the gateway refuses mail to them (550 5.7.1 Relaying denied). Set GATEWAY_DOMAIN back, or delete and add those accounts again for new addresses`,
    );
  }
  return total;
}

export function accountScope(viewer: Viewer): Record<string, unknown> {
  return isAdmin(viewer) ? {} : { ownerId: viewer.id };
}

export async function listMailAccounts(store: Store, viewer: Viewer, options: { ownerId?: ObjectId } = {}): Promise<MailAccountView[]> {
  const filter: Record<string, unknown> = { ...accountScope(viewer) };
  if (options.ownerId && isAdmin(viewer)) filter.ownerId = options.ownerId;
  const rows = await store.models.MailAccount.find(filter).sort({ email: 1 }).limit(1000).lean();
  return rows.map((row) => toMailAccountView(row as AccountDoc));
}

/** The account when the viewer may see it; otherwise null (callers answer 404, never 403, so ids reveal nothing). */
export async function getMailAccount(store: Store, viewer: Viewer, id: string): Promise<MailAccountView | null> {
  const objectId = parseObjectId(id);
  if (!objectId) return null;
  const row = await store.models.MailAccount.findOne({ _id: objectId, ...accountScope(viewer) }).lean();
  return row ? toMailAccountView(row as AccountDoc) : null;
}

async function loadForChange(store: Store, viewer: Viewer, id: string) {
  const objectId = parseObjectId(id);
  const account = objectId ? await store.models.MailAccount.findOne({ _id: objectId, ...accountScope(viewer) }) : null;
  if (!account) throw notFound('mail account');
  return account;
}

export interface ServerSettingsPatch {
  enabled?: boolean;
  service?: string;
  host?: string;
  port?: number;
  tls?: string;
  username?: string;
  /** Write-only. An empty string keeps the stored password (forms never show it again). */
  password?: string;
  sameCredentials?: boolean;
}

export interface MailAccountPatch {
  email?: string;
  enabled?: boolean;
  imap?: ServerSettingsPatch & { folders?: string[] };
  smtp?: ServerSettingsPatch;
}

/** What a bad IMAP/SMTP port is told, in the console and the API alike (0, "not set", is accepted too). */
export const PORT_PROBLEM = 'must be a whole number from 1 to 65535';

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*\.?$/i;

function validateServerPatch(prefix: string, patch: ServerSettingsPatch, fields: Record<string, string>): void {
  if (patch.service !== undefined && !SERVICE_IDS.includes(patch.service)) fields[`${prefix}.service`] = `must be one of ${SERVICE_IDS.join(', ')}`;
  if (patch.host !== undefined && patch.host.trim() !== '' && !HOSTNAME.test(patch.host.trim()) && net.isIP(patch.host.trim()) === 0) {
    fields[`${prefix}.host`] = 'must be a host name such as imap.example.com or an IP address';
  }
  // 0 means "not set" (what an unconfigured account reads as), so a GET document can be PATCHed back.
  if (patch.port !== undefined && (!Number.isInteger(patch.port) || patch.port < 0 || patch.port > 65535)) fields[`${prefix}.port`] = PORT_PROBLEM;
  if (patch.tls !== undefined && !(TLS_MODES as readonly string[]).includes(patch.tls)) fields[`${prefix}.tls`] = `must be one of ${TLS_MODES.join(', ')}`;
  if (patch.username !== undefined && patch.username.length > 320) fields[`${prefix}.username`] = 'must be at most 320 characters';
  if (patch.password !== undefined && patch.password.length > 1024) fields[`${prefix}.password`] = 'must be at most 1024 characters';
}

/** Folders a user may pick to sync besides INBOX and the Sent folder. */
export const MAX_SYNC_FOLDERS = 20;
const MAX_FOLDER_NAME = 200;

/**
 * The folders to sync as the user wrote them, cleaned: names trimmed,
 * blanks, repeats and INBOX (always synced; RFC 3501 §5.1: its name is
 * case-insensitive) dropped. A problem is named for the `imap.folders` field.
 */
export function normalizeSyncFolders(names: readonly string[]): { folders: string[]; problem?: string } {
  const folders: string[] = [];
  for (const raw of names) {
    const name = raw.trim();
    if (!name || name.toUpperCase() === 'INBOX' || folders.includes(name)) continue;
    if (/[\u0000-\u001f\u007f]/.test(name)) return { folders, problem: 'a folder name cannot contain control characters' };
    if (name.length > MAX_FOLDER_NAME) return { folders, problem: `a folder name is at most ${MAX_FOLDER_NAME} characters` };
    folders.push(name);
  }
  if (folders.length > MAX_SYNC_FOLDERS) return { folders, problem: `at most ${MAX_SYNC_FOLDERS} folders besides INBOX and Sent` };
  return { folders };
}

type ServerSub = ServerDoc & { set?: unknown };

/**
 * Apply a settings patch to the imap/smtp sub-document. A preset fills
 * host/port/TLS unless the patch names them. Any change to where or as whom
 * we log in makes earlier authentication void ('unverified').
 */
function applyServerPatch(sub: ServerSub, patch: ServerSettingsPatch, seal: (password: string) => string, changed: string[], prefix: string): void {
  const before = { host: sub.host ?? '', port: sub.port ?? 0, tls: sub.tls ?? 'implicit', username: sub.username ?? '' };
  if (patch.service !== undefined && patch.service !== sub.service) {
    sub.service = patch.service;
    changed.push(`${prefix}.service`);
    const preset = findPreset(patch.service)?.[prefix === 'imap' ? 'imap' : 'smtp'];
    if (preset) {
      if (patch.host === undefined) sub.host = preset.host;
      if (patch.port === undefined) sub.port = preset.port;
      if (patch.tls === undefined) sub.tls = preset.tls;
    }
  }
  if (patch.host !== undefined) sub.host = patch.host.trim().toLowerCase();
  if (patch.port !== undefined) sub.port = patch.port;
  if (patch.tls !== undefined) sub.tls = patch.tls;
  if (patch.username !== undefined) sub.username = patch.username.trim();
  let credentialsChanged = before.host !== sub.host || before.port !== sub.port || before.tls !== sub.tls || before.username !== sub.username;
  for (const key of ['host', 'port', 'tls', 'username'] as const) if (before[key] !== sub[key]) changed.push(`${prefix}.${key}`);
  if (patch.password !== undefined && patch.password !== '') {
    sub.passwordEnc = seal(patch.password);
    credentialsChanged = true;
    changed.push(`${prefix}.password`);
  }
  if (credentialsChanged) {
    sub.authenticatedAt = null;
    sub.lastError = '';
    sub.lastErrorCode = '';
  }
  if (patch.enabled !== undefined && patch.enabled !== Boolean(sub.enabled)) {
    sub.enabled = patch.enabled;
    changed.push(`${prefix}.enabled`);
  }
  if (!sub.enabled) sub.status = 'off';
  else if (credentialsChanged || sub.status === 'off') sub.status = sub.authenticatedAt ? 'authenticated' : 'unverified';
}

/** `signsInWithOAuth`: the account holds an OAuth2 grant (gateway/oauth), so no password is needed. */
function missingForEnable(prefix: string, sub: ServerDoc, fields: Record<string, string>, signsInWithOAuth = false): void {
  if (!sub.enabled) return;
  if (!sub.host) fields[`${prefix}.host`] = 'is needed to turn this on';
  if (!sub.port) fields[`${prefix}.port`] = 'is needed to turn this on';
  if (!sub.username) fields[`${prefix}.username`] = 'is needed to turn this on';
  if (!sub.passwordEnc && !signsInWithOAuth) fields[`${prefix}.password`] = 'is needed to turn this on';
}

/** Where a login goes: the saved secret is sent to this server. */
const serverOf = (sub: { host?: string | null; port?: number | null; tls?: string | null } | null | undefined) => `${sub?.host ?? ''}|${sub?.port ?? 0}|${sub?.tls ?? ''}`;
/** Where sending signs in: the saved SMTP server, or else its service's preset (as the sender picks it). */
const smtpServerOf = (account: AccountDoc) => serverOf(smtpServer(account as unknown as SendingAccount));

const PASSWORD_STAYS = "the saved password is only sent to the server it was saved for: enter the password again to change the server";
const GRANT_STAYS = "the OAuth sign-in is only used with the server it was granted for: Disconnect it first to change the server";

/**
 * A saved password (or OAuth grant) is the owner's. Someone else who manages
 * the account (an admin) may not send it to another server: pointing the
 * login at a server they run and pressing Authenticate would hand it to them
 * (admins manage mailboxes; they do not learn their passwords). Nor may an
 * API token, which is handed to integrations (a CRM sync) and must not be a
 * way to the mailbox password itself. Either may change the server together
 * with the password. The owner at the console knows the password, so their
 * own changes there are not limited.
 */
function keepSavedSecrets(account: AccountDoc, before: { imap: string; smtp: string; sameCredentials: boolean }, patch: MailAccountPatch, fields: Record<string, string>): void {
  const oauth = Boolean(account.oauth?.provider);
  const refusal = oauth ? GRANT_STAYS : PASSWORD_STAYS;
  const newImapPassword = Boolean(patch.imap?.password);
  const newSmtpPassword = Boolean(patch.smtp?.password);
  if (serverOf(account.imap) !== before.imap && (oauth || (account.imap?.passwordEnc && !newImapPassword))) fields['imap.password'] = refusal;
  // Sending with the IMAP sign-in (sameCredentials) sends the IMAP password to the SMTP server.
  const sameCredentials = account.smtp?.sameCredentials !== false;
  const smtpSecretIsOwners = oauth || (sameCredentials ? Boolean(account.imap?.passwordEnc) && !newImapPassword : Boolean(account.smtp?.passwordEnc) && !newSmtpPassword);
  const smtpMoved = smtpServerOf(account) !== before.smtp || (sameCredentials && !before.sameCredentials);
  if (smtpMoved && smtpSecretIsOwners) fields['smtp.password'] = refusal;
}

export interface ChangeDeps {
  store: Store;
  secretBox: SecretBox;
  actor: Actor;
  now?: Date;
  /** The change comes with an API token rather than the owner's console session (see keepSavedSecrets). */
  byApiToken?: boolean;
}

/**
 * Change an account. Validation problems come back all at once as a 400
 * VALIDATION_FAILED with `fields` keyed like the API (`imap.port`).
 * Passwords are sealed under the account id (shared contract) and audited
 * as "changed", never with their value.
 */
export async function updateMailAccount(deps: ChangeDeps, viewer: Viewer, id: string, patch: MailAccountPatch): Promise<MailAccountView> {
  const { store, secretBox, actor } = deps;
  const fields: Record<string, string> = {};
  if (patch.email !== undefined) {
    const issue = emailProblem(patch.email);
    if (issue) fields.email = issue;
  }
  if (patch.imap) validateServerPatch('imap', patch.imap, fields);
  if (patch.smtp) validateServerPatch('smtp', patch.smtp, fields);
  const folders = patch.imap?.folders ? normalizeSyncFolders(patch.imap.folders) : undefined;
  if (folders?.problem) fields['imap.folders'] = folders.problem;
  if (Object.keys(fields).length > 0) throw new AppError('VALIDATION_FAILED', describeFields(fields), { status: 400, fields });

  const account = await loadForChange(store, viewer, id);
  const context = account._id.toString();
  const seal = (password: string) => secretBox.seal(password, context);
  const changed: string[] = [];
  const before = { imap: serverOf(account.imap), smtp: smtpServerOf(account as unknown as AccountDoc), sameCredentials: account.smtp?.sameCredentials !== false };
  if (patch.email !== undefined && normalizeEmail(patch.email) !== account.email) {
    // The forwarding address's own domain is the gateway domain the account was issued on.
    await refuseUnusableMailbox(store, account.ownerId, normalizeEmail(patch.email), domainOf(account.forwardingAddress), account._id);
    // The forwarding address stays: the user already configured it at the provider.
    account.email = normalizeEmail(patch.email);
    account.domain = domainOf(account.email);
    changed.push('email');
  }
  if (patch.enabled !== undefined && patch.enabled !== account.enabled) {
    account.enabled = patch.enabled;
    changed.push('enabled');
  }
  if (patch.imap) applyServerPatch(account.imap as unknown as ServerSub, patch.imap, seal, changed, 'imap');
  // The syncer reads these at its next pass (a pass under way keeps its folders).
  if (folders && folders.folders.join('\n') !== (account.imap?.folders ?? []).join('\n')) {
    account.imap!.folders = folders.folders;
    changed.push('imap.folders');
  }
  if (patch.smtp) {
    applyServerPatch(account.smtp as unknown as ServerSub, patch.smtp, seal, changed, 'smtp');
    if (patch.smtp.sameCredentials !== undefined && patch.smtp.sameCredentials !== account.smtp!.sameCredentials) {
      account.smtp!.sameCredentials = patch.smtp.sameCredentials;
      changed.push('smtp.sameCredentials');
    }
  }
  if (deps.byApiToken || !account.ownerId.equals(viewer.id)) keepSavedSecrets(account as unknown as AccountDoc, before, patch, fields);
  const signsInWithOAuth = Boolean(account.oauth?.provider);
  missingForEnable('imap', account.imap as ServerDoc, fields, signsInWithOAuth);
  if (!account.smtp?.sameCredentials) missingForEnable('smtp', account.smtp as ServerDoc, fields, signsInWithOAuth);
  if (Object.keys(fields).length > 0) throw new AppError('VALIDATION_FAILED', describeFields(fields), { status: 400, fields });

  if (changed.length === 0) return toMailAccountView(account);
  try {
    await account.save();
  } catch (err) {
    if (isDuplicateKey(err)) throw new AppError('ACCOUNT_EXISTS', `${account.email} is already one of this user's mail accounts`, { status: 409, fields: { email: 'is already one of your mail accounts' } });
    throw err;
  }
  await recordAudit(store, actor, { action: 'account.update', targetType: 'mail_account', targetId: context, details: { email: account.email, changed } }, deps.now);
  return toMailAccountView(account);
}

export async function setMailAccountEnabled(deps: ChangeDeps, viewer: Viewer, id: string, enabled: boolean): Promise<MailAccountView> {
  const account = await loadForChange(deps.store, viewer, id);
  if (account.enabled !== enabled) {
    account.enabled = enabled;
    await account.save();
    await recordAudit(deps.store, deps.actor, { action: enabled ? 'account.enable' : 'account.disable', targetType: 'mail_account', targetId: account._id.toString(), details: { email: account.email } }, deps.now);
  }
  return toMailAccountView(account);
}

/**
 * Remove an account. Its stored mail stays (nothing is lost; the owner still
 * sees it); the forwarding address stops accepting mail at once; sync state
 * of its folders goes with it.
 */
export async function deleteMailAccount(deps: Omit<ChangeDeps, 'secretBox'>, viewer: Viewer, id: string): Promise<void> {
  const account = await loadForChange(deps.store, viewer, id);
  await deps.store.models.MailAccount.deleteOne({ _id: account._id });
  await deps.store.models.FolderState.deleteMany({ accountId: account._id });
  await recordAudit(deps.store, deps.actor, { action: 'account.delete', targetType: 'mail_account', targetId: account._id.toString(), details: { email: account.email, forwardingAddress: account.forwardingAddress } }, deps.now);
}

/** The stored IMAP settings with the password opened, for a login or a sync. */
export function imapLoginSettings(account: AccountDoc, secretBox: SecretBox): ImapLoginSettings {
  const imap = account.imap ?? {};
  return {
    host: imap.host ?? '',
    port: imap.port ?? 0,
    tls: (imap.tls ?? 'implicit') as TlsMode,
    username: imap.username ?? '',
    password: imap.passwordEnc ? secretBox.open(imap.passwordEnc, account._id.toString()) : '',
  };
}

/**
 * Log in with the account's stored IMAP settings and record the outcome
 * (status authenticated/failing, last error) plus an audit event. Resolves
 * with the view and, on failure, the AppError (code AUTH_FAILED, …).
 */
export async function authenticateMailAccountImap(deps: ChangeDeps & { log?: Logger; timeoutMs?: number }, viewer: Viewer, id: string): Promise<{ account: MailAccountView; error: AppError | null }> {
  const account = await loadForChange(deps.store, viewer, id);
  const fields: Record<string, string> = {};
  const imap = account.imap!;
  if (!imap.host) fields['imap.host'] = 'is needed to authenticate';
  if (!imap.port) fields['imap.port'] = 'is needed to authenticate';
  if (!imap.username) fields['imap.username'] = 'is needed to authenticate';
  if (!imap.passwordEnc) fields['imap.password'] = 'is needed to authenticate';
  if (Object.keys(fields).length > 0) throw new AppError('VALIDATION_FAILED', describeFields(fields), { status: 400, fields });

  // The settings this login tries, as saved when it started: the outcome is recorded only while they still are.
  // (Not TLS: a store from an earlier release may lack the field, read here as its default. Nor `enabled` as
  // such: off may be missing too, and the status written below depends on it.)
  const tried = {
    _id: account._id, 'imap.host': imap.host, 'imap.port': imap.port, 'imap.username': imap.username, 'imap.passwordEnc': imap.passwordEnc,
    'imap.enabled': imap.enabled ? true : { $ne: true },
  };
  const result = await authenticateImap(imapLoginSettings(account as unknown as AccountDoc, deps.secretBox), { timeoutMs: deps.timeoutMs ?? 15000, log: deps.log });
  const now = deps.now ?? new Date();
  if (result.ok) {
    // Fresh credentials end any backoff the syncer was in.
    imap.failures = 0;
    imap.nextAttemptAt = null;
  }
  applyLoginResult(imap, result, now);
  // A login can take up to the timeout. Meanwhile another tab (or an admin) may have saved other settings
  // and authenticated them, or removed the mailbox: this outcome is about settings no longer saved and
  // must not overwrite theirs (a stale failure stopped the sync of a mailbox that signs in fine).
  const recorded = await deps.store.models.MailAccount.updateOne(tried, {
    $set: {
      'imap.authenticatedAt': imap.authenticatedAt, 'imap.lastError': imap.lastError, 'imap.lastErrorCode': imap.lastErrorCode, 'imap.status': imap.status,
      ...(result.ok ? { 'imap.failures': 0, 'imap.nextAttemptAt': null } : {}),
    },
  });
  if (recorded.matchedCount === 0 && !(await deps.store.models.MailAccount.exists({ _id: account._id }))) throw notFound('mail account');
  await recordAudit(deps.store, deps.actor, {
    action: result.ok ? 'account.imap.authenticated' : 'account.imap.failed',
    targetType: 'mail_account',
    targetId: account._id.toString(),
    details: { email: account.email, host: imap.host, ...(result.ok ? {} : { code: result.error.code }) },
  }, now);
  return { account: toMailAccountView(account), error: result.ok ? null : result.error };
}

/**
 * Record the outcome of a real login (IMAP Authenticate, Authenticate SMTP)
 * on the account's imap or smtp settings: what the console shows as the
 * status badge and the last error.
 */
export function applyLoginResult(
  side: { enabled?: boolean | null; authenticatedAt?: Date | null; lastError?: string | null; lastErrorCode?: string | null; status?: string | null },
  result: { ok: true } | { ok: false; error: AppError },
  now: Date,
): void {
  side.authenticatedAt = result.ok ? now : null;
  side.lastError = result.ok ? '' : result.error.message;
  side.lastErrorCode = result.ok ? '' : result.error.code;
  side.status = !side.enabled ? 'off' : result.ok ? 'authenticated' : 'failing';
}
