import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import type mongoose from 'mongoose';
import { classifyImapError, type ImapLoginSettings } from '../accounts/imap-login';
import { imapLoginSettings } from '../accounts/mail-accounts';
import { SecretBoxError, type SecretBox } from '../core/crypto';
import { AppError } from '../core/errors';
import { linkedAbort } from '../core/linked-abort';
import { imapClientOptions } from '../accounts/imap-client';
import type { Logger } from '../core/log';
import type { Associator } from '../mail/ingest';
import { connectImapWithOAuth, type OAuthDeps } from '../oauth';
import type { Config } from '../core/config';
import type { Store } from '../store';
import { accountCheck, type AccountStopReason } from './account-check';
import { backoffDelayMs } from './backoff';
import { chooseFolders, type FolderChoice, type ListedFolder } from './folders';
import { checkForwardingHealth } from './forwarding-health';
import type { SyncOptions } from './options';
import { describeError, emptyTally, syncFolder, type FolderTally } from './sync-folder';

type ObjectId = mongoose.Types.ObjectId;

/**
 * One pass over one account: connect with imapflow, list the folders (one
 * LIST … RETURN (STATUS …) round trip where the server has LIST-STATUS,
 * RFC 5819), sync INBOX, \Sent and the picked folders, log out, record the
 * outcome on MailAccount.imap, check forwarding health, log one line.
 *
 * Failure policy:
 * - wrong credentials → imap.status 'failing' with the server's text; the
 *   scheduler no longer picks the account until the user re-authenticates
 *   (a retry would only feed the provider's brute-force lockout);
 * - network / TLS / timeout → exponential backoff of this account only
 *   (imap.failures, imap.nextAttemptAt);
 * - the store failing → the pass stops with the cursor where it was; not
 *   the account's fault, so no backoff.
 */

export interface SyncAccountDeps {
  store: Store;
  log: Logger;
  secrets: SecretBox;
  options: SyncOptions;
  associate?: Associator;
  /** Told about each live client so a hard stop can close it. */
  track?: (client: ImapFlow) => () => void;
  /** OAuth2 provider settings from the environment (Preferences → Business applies without them). */
  oauthConfig?: Pick<Config, 'publicUrl' | 'oauth'>;
  oauthTuning?: OAuthDeps['tuning'];
}

const NO_OAUTH_ENV: Pick<Config, 'publicUrl' | 'oauth'> = { publicUrl: '', oauth: { google: {}, microsoft: {}, oidc: {} } };

/** What the syncer reads of a MailAccount (lean). */
export interface SyncableAccount {
  _id: ObjectId;
  ownerId: ObjectId;
  imap?: {
    host?: string | null;
    port?: number | null;
    tls?: string | null;
    username?: string | null;
    passwordEnc?: string | null;
    folders?: string[] | null;
    failures?: number | null;
  } | null;
  forwarding?: { status?: string | null; verifiedAt?: Date | null } | null;
  /** Set when the account signs in with OAuth2 (XOAUTH2/OAUTHBEARER) instead of a password. */
  oauth?: { provider?: string | null } | null;
}

export type AccountOutcome = 'synced' | 'auth_failed' | 'backoff' | 'store_error' | 'stopped';

export interface AccountPassResult extends FolderTally {
  accountId: string;
  outcome: AccountOutcome;
  folders: number;
  unchangedFolders: number;
  ms: number;
  startedAt: Date;
  finishedAt: Date;
  error?: string;
  errorCode?: string;
  forwardingBroken?: boolean;
  /** Why a 'stopped' pass stopped early because of the account (deleted, disabled, …); unset for a shutdown or a lost lease. */
  stopReason?: AccountStopReason;
}

const LIST_STATUS_QUERY = { messages: true, uidNext: true, uidValidity: true, highestModseq: true } as const;

function clientOptions(settings: ImapLoginSettings, rootLog: Logger, accountId: string, options: SyncOptions): Promise<ImapFlowOptions> {
  // imapflow logs every command at debug and every NO answer at error; the
  // pass handles those and reports them in its one line per account, so
  // imapflow speaks only when the operator asked for debug.
  const imapLog = rootLog.child({ component: 'imapflow', accountId }, { level: rootLog.isLevelEnabled('debug') ? rootLog.level : 'silent' });
  return imapClientOptions(settings, { user: settings.username, pass: settings.password }, {
    connectionTimeoutMs: options.connectionTimeoutMs,
    greetingTimeoutMs: options.greetingTimeoutMs,
    socketTimeoutMs: options.socketTimeoutMs,
  }, imapLog);
}

/** Folders with their STATUS, in as few round trips as the server allows. */
async function listFolders(client: ImapFlow, picked: string[]): Promise<FolderChoice> {
  const listStatus = client.capabilities.has('LIST-STATUS') || client.capabilities.has('IMAP4rev2');
  // Without LIST-STATUS imapflow would send STATUS for every folder of the
  // account; ask only for the folders we sync instead.
  const list = (await client.list(listStatus ? { statusQuery: LIST_STATUS_QUERY } : {})) as ListedFolder[];
  const choice = chooseFolders(list, picked, client.namespace?.prefix ?? '');
  if (!listStatus) {
    for (const folder of choice.folders) {
      const status = await client.status(folder.path, LIST_STATUS_QUERY).catch(() => false as const);
      if (status) folder.status = status;
    }
  }
  return choice;
}

export async function syncAccount(deps: SyncAccountDeps, account: SyncableAccount, signal: AbortSignal): Promise<AccountPassResult> {
  const { store, options } = deps;
  const accountId = account._id.toHexString();
  const log = deps.log.child({ component: 'imap-sync', accountId });
  const startedAt = options.now();
  const started = Date.now();
  const tally = emptyTally();
  let folderCount = 0;
  let unchangedFolders = 0;
  const finish = (outcome: AccountOutcome, extra: Partial<AccountPassResult> = {}): AccountPassResult => {
    const finishedAt = options.now();
    const ms = Date.now() - started;
    const result: AccountPassResult = { accountId, outcome, ...tally, folders: folderCount, unchangedFolders, ms, startedAt, finishedAt, ...extra };
    const line = { outcome, reason: extra.stopReason, stored: tally.stored, duplicates: tally.duplicates, tombstoned: tally.tombstoned, parseErrors: tally.parseErrors, truncated: tally.truncated, unreadable: tally.unreadable, folders: folderCount, unchanged: unchangedFolders, ms, error: extra.error, code: extra.errorCode };
    if (outcome === 'synced' || outcome === 'stopped') log.info(line, 'imap sync pass');
    else log.warn(line, 'imap sync pass failed');
    return result;
  };
  const passwordEnc = account.imap?.passwordEnc ?? '';
  // Writes to the account are conditional on the password we used: if the
  // user re-authenticated meanwhile, their fresh status wins.
  const accountFilter = { _id: account._id, 'imap.passwordEnc': passwordEnc };
  // The user may delete, disable or re-configure the account while a long pass runs: checked between batches.
  const check = accountCheck(store, account);
  const deadline = new AbortController();
  const passLink = linkedAbort([signal, check.signal, deadline.signal]);
  const passSignal = passLink.signal;

  let settings: ImapLoginSettings;
  try {
    settings = imapLoginSettings(account as unknown as Parameters<typeof imapLoginSettings>[0], deps.secrets);
  } catch (err) {
    passLink.dispose();
    if (!(err instanceof SecretBoxError)) throw err;
    const message = 'The stored IMAP password cannot be decrypted (was SECRET_KEY changed?). Enter the password again and authenticate.';
    await store.models.MailAccount.updateOne(accountFilter, { $set: { 'imap.status': 'failing', 'imap.lastError': message, 'imap.lastErrorCode': err.code, 'imap.lastSyncAt': startedAt } });
    return finish('auth_failed', { error: message, errorCode: err.code });
  }

  let imapOptions: ImapFlowOptions;
  try {
    imapOptions = await clientOptions(settings, deps.log, accountId, options);
  } catch (err) {
    // The host is not in DNS or is in MAIL_SERVER_BLOCKED_NETWORKS: retried later, as a server that is down.
    return await backOff(classifyImapError(err, { host: settings.host, port: settings.port }));
  }
  let client = new ImapFlow(imapOptions);
  // imapflow also emits 'error' on the client; unhandled, Node would throw it.
  // What broke the connection, when imapflow says: a command it cuts short only rejects with 'NoConnection'.
  let connectionError: (Error & { code?: string }) | undefined;
  const onConnectionError = (err: Error) => {
    connectionError ??= err;
    log.debug({ err }, 'imap connection error');
  };
  client.on('error', onConnectionError);
  let untrack = deps.track?.(client) ?? (() => undefined);
  // At the deadline the connection is closed, which ends whatever command is still trickling in.
  const deadlineTimer = setTimeout(() => {
    deadline.abort();
    client.close();
  }, options.passDeadlineMs);
  const oauthProvider = account.oauth?.provider ?? '';
  const target = { host: settings.host, port: settings.port };
  let inboxSynced = false;
  let inboxPath = 'INBOX';
  try {
    try {
      if (oauthProvider) {
        // OAuth2: gateway/oauth hands out a valid access token and, when the
        // server refuses it, refreshes once and logs in with a new client.
        untrack();
        client.close();
        const { auth: _password, ...withoutAuth } = imapOptions;
        const oauthDeps: OAuthDeps = { store, log: deps.log, secretBox: deps.secrets, config: deps.oauthConfig ?? NO_OAUTH_ENV, tuning: deps.oauthTuning };
        client = await connectImapWithOAuth(oauthDeps, account._id, settings.username, withoutAuth, (next) => {
          next.on('error', onConnectionError);
          untrack();
          untrack = deps.track?.(next) ?? (() => undefined);
        });
      } else {
        await client.connect();
      }
    } catch (err) {
      if (deadline.signal.aborted) return await pastDeadline();
      if (err instanceof AppError && err.code.startsWith('OAUTH_')) return await oauthFailure(err);
      const failure = classifyFailure(err);
      if (failure.code === 'AUTH_FAILED' && oauthProvider) {
        // The fresh token was refused too: gateway/oauth marked the grant 're-authorisation needed'.
        const marked = await store.models.MailAccount.findById(account._id, { oauth: 1 }).lean();
        return await oauthFailure(new AppError('OAUTH_REAUTH_NEEDED', marked?.oauth?.lastError || failure.message, { status: 409 }));
      }
      if (failure.code === 'AUTH_FAILED') {
        await store.models.MailAccount.updateOne(accountFilter, {
          $set: { 'imap.status': 'failing', 'imap.lastError': failure.message, 'imap.lastErrorCode': failure.code, 'imap.authenticatedAt': null, 'imap.lastSyncAt': startedAt },
        });
        return finish('auth_failed', { error: failure.message, errorCode: failure.code });
      }
      return await backOff(failure);
    }

    const { folders, missing, suggestions, parents } = await listFolders(client, account.imap?.folders ?? []);
    const unsyncable = [
      ...missing.map((path) => {
        const likely = suggestions.get(path);
        return {
          path,
          problem: likely
            ? `This folder is not on the server under this name; the server has "${likely}" (names differ in case, separator or prefix). Write it like that under Other folders to sync in IMAP Support.`
            : 'This folder is not on the server (renamed or deleted, or its name is misspelt). Correct it under Other folders to sync in IMAP Support.',
        };
      }),
      ...parents.map(({ path, subfolders }) => ({
        path,
        problem: `This folder only holds other folders, not messages. To sync them, list them under Other folders to sync in IMAP Support: ${subfolders.slice(0, 3).join(', ')}${subfolders.length > 3 ? ', …' : ''}.`,
      })),
    ];
    // The Sent folder is whichever the server marks (or names) so now. One it marked before (renamed, deleted,
    // renamed by a language change of the webmail) would otherwise keep its row on the account page for good,
    // with a first sync that never completes if it was cut short; it keeps its cursor should it come back.
    const sentPath = folders.find((folder) => folder.role === 'sent')?.path;
    await store.models.FolderState.updateMany({ accountId: account._id, specialUse: '\\Sent', ...(sentPath ? { folder: { $ne: sentPath } } : {}) }, { $set: { specialUse: '' } });
    for (const { path, problem } of unsyncable) {
      await store.models.FolderState.updateOne({ accountId: account._id, folder: path }, { $set: { lastPassAt: startedAt, lastError: problem } }, { upsert: true });
    }

    const refusedFolders: Array<{ path: string; text: string }> = [];
    for (const folder of folders) {
      await check.check();
      if (passSignal.aborted) break;
      folderCount += 1;
      try {
        const result = await syncFolder({ client, store, log, accountId: account._id, ownerId: account.ownerId, options, signal: passSignal, checkAccount: check.check, associate: deps.associate }, folder);
        addTally(tally, result);
        if (result.unchanged) unchangedFolders += 1;
        if (folder.role === 'inbox' && result.finished) {
          inboxSynced = true;
          inboxPath = folder.path;
        }
      } catch (err) {
        addTally(tally, (err as { tally?: FolderTally }).tally);
        if (isStoreError(err)) throw err;
        // The connection is gone: network trouble, back off.
        if (!client.usable) throw err;
        // A folder the server refuses (NO to EXAMINE, …): recorded in its
        // ledger; the other folders still sync.
        refusedFolders.push({ path: folder.path, text: describeError(err) });
        log.warn({ err, folder: folder.path }, 'folder sync failed; continuing with the other folders');
      }
    }
    await client.logout().catch(() => undefined);
    const folderError = refusedFolders.length > 0 ? { message: refusedFoldersMessage(refusedFolders), code: 'FOLDER_ERROR' } : null;

    if (deadline.signal.aborted) return await pastDeadline();
    if (passSignal.aborted) return await stopped();

    const successAt = options.now();
    await store.models.MailAccount.updateOne(accountFilter, {
      $set: {
        'imap.lastSyncAt': startedAt,
        'imap.lastSuccessAt': successAt,
        'imap.lastPassStored': tally.stored,
        'imap.failures': 0,
        'imap.nextAttemptAt': null,
        'imap.lastError': folderError?.message ?? '',
        'imap.lastErrorCode': folderError?.code ?? '',
      },
    });

    let forwardingBroken = false;
    if (inboxSynced && account.forwarding?.status === 'verified') {
      const health = await checkForwardingHealth({ store, log }, account, { inboxPath, graceMs: options.forwardingGraceMs, now: successAt });
      forwardingBroken = health.broken;
    }
    return finish('synced', { forwardingBroken, ...(folderError ? { error: folderError.message, errorCode: folderError.code } : {}) });
  } catch (err) {
    if (isStoreError(err)) {
      const message = `Mail could not be stored (${err instanceof AppError ? (err.tag ?? err.code) : err.name}); the sync resumes where it stopped.`;
      await store.models.MailAccount.updateOne(accountFilter, { $set: { 'imap.lastSyncAt': startedAt, 'imap.lastError': message, 'imap.lastErrorCode': 'STORE_UNAVAILABLE' } }).catch(() => undefined);
      return finish('store_error', { error: message, errorCode: 'STORE_UNAVAILABLE' });
    }
    if (deadline.signal.aborted) return await pastDeadline();
    if (passSignal.aborted) return await stopped(describeError(err));
    return await backOff(classifyFailure(err));
  } finally {
    clearTimeout(deadlineTimer);
    passLink.dispose();
    untrack();
    client.close();
  }

  /**
   * A server that stops answering mid-command (an overloaded or half-dead
   * server: the socket stays open, nothing comes) trips imapflow's socket
   * timeout, which closes the connection; the command in flight then only
   * says 'NoConnection', which read as "the server closed it or went away".
   */
  function classifyFailure(err: unknown): AppError {
    const failure = classifyImapError(err, target);
    if (failure.code !== 'CONNECTION_LOST' || connectionError?.code !== 'ETIMEOUT') return failure;
    const seconds = Math.max(1, Math.round(options.socketTimeoutMs / 1000));
    return new AppError('TIMEOUT', `${target.host}:${target.port} stopped answering in the middle of the sync: nothing came for ${seconds} s (ETIMEOUT), so Postroom closed the connection. What was stored stays; the next attempt resumes there.`, { status: 504, cause: err });
  }

  /** The pass ran out of time: what it stored stays (the next pass resumes there); a pass that got nothing backs off. */
  async function pastDeadline(): Promise<AccountPassResult> {
    const minutes = Math.max(1, Math.round(options.passDeadlineMs / 60_000));
    if (tally.stored + tally.duplicates > 0) return stopped(`The pass was ended after ${minutes} min; the next one resumes where it stopped.`);
    return backOff(new AppError('IMAP_TOO_SLOW', `The IMAP server at ${target.host}:${target.port} kept the connection open without finishing anything for ${minutes} min (it answers too slowly, or not as IMAP); trying again later.`, { status: 504 }));
  }

  /**
   * Shutdown, a lost lease, or the user changed the account: the cursors are
   * exact (saved per whole batch). A deleted account's folder cursors, which
   * the last batch may have written after the delete removed them, go too.
   */
  async function stopped(error?: string): Promise<AccountPassResult> {
    if (check.reason === 'deleted') {
      await store.models.FolderState.deleteMany({ accountId: account._id });
    } else {
      await store.models.MailAccount.updateOne(accountFilter, { $set: { 'imap.lastSyncAt': startedAt, 'imap.lastPassStored': tally.stored } });
    }
    return finish('stopped', { ...(error ? { error } : {}), ...(check.reason ? { stopReason: check.reason } : {}) });
  }

  /**
   * A grant that needs the user (re-authorisation, disconnected) stops the
   * account like a wrong password: status 'failing', not picked again until
   * the user signs in, so nothing retries. Provider outages and client
   * misconfiguration back off like network trouble.
   */
  async function oauthFailure(error: AppError): Promise<AccountPassResult> {
    if (error.code === 'OAUTH_REAUTH_NEEDED' || error.code === 'OAUTH_NOT_CONNECTED') {
      await store.models.MailAccount.updateOne(accountFilter, {
        $set: { 'imap.status': 'failing', 'imap.lastError': error.message, 'imap.lastErrorCode': error.code, 'imap.authenticatedAt': null, 'imap.lastSyncAt': startedAt },
      });
      return finish('auth_failed', { error: error.message, errorCode: error.code });
    }
    return backOff(error);
  }

  async function backOff(failure: AppError): Promise<AccountPassResult> {
    const failures = (account.imap?.failures ?? 0) + 1;
    const delay = backoffDelayMs(failures, options.backoffBaseMs, options.backoffCapMs);
    const nextAttemptAt = new Date(options.now().getTime() + delay);
    await store.models.MailAccount.updateOne(accountFilter, {
      $set: { 'imap.failures': failures, 'imap.nextAttemptAt': nextAttemptAt, 'imap.lastError': failure.message, 'imap.lastErrorCode': failure.code, 'imap.lastSyncAt': startedAt },
    });
    log.debug({ failures, nextAttemptAt }, 'backing off');
    return finish('backoff', { error: failure.message, errorCode: failure.code });
  }
}

/**
 * The account's error when the server let us log in but refused folders
 * (a NO to EXAMINE, SEARCH or FETCH: permissions, a damaged mail store).
 * Every one is named, in sync order (INBOX first): naming only the last
 * one hid that INBOX itself was unreadable behind a picked folder's error.
 */
function refusedFoldersMessage(refused: Array<{ path: string; text: string }>): string {
  const named = refused.map(({ path, text }) => `${path} ("${text.slice(0, 200)}")`).join(', ');
  const which = refused.length === 1 ? `the folder ${named}` : `${refused.length} folders: ${named}`;
  return `The server let Postroom sign in but would not let it read ${which}. The server's words say why; a folder it cannot read at all usually means its permissions or a damaged mail store on the server: ask your mail provider. The other folders still sync, and ${refused.length === 1 ? 'this one is' : 'these are'} tried again at every pass.`;
}

/** The store, not the IMAP server, failed: ingest's STORE_UNAVAILABLE, or the driver's own errors on cursor/ledger writes. */
function isStoreError(err: unknown): err is Error {
  if (err instanceof AppError) return err.code === 'STORE_UNAVAILABLE';
  return err instanceof Error && /^Mongo/.test(err.name);
}

function addTally(into: FolderTally, from: FolderTally | undefined): void {
  if (!from) return;
  for (const key of Object.keys(into) as Array<keyof FolderTally>) into[key] += from[key];
}
