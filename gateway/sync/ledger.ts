import mongoose from 'mongoose';
import type { Store } from '../store';
import { accountLeaseKey, leaseHeld } from './lease';
import { UNREADABLE_ATTEMPTS } from './sync-folder';

/**
 * The sync ledger of one account, shaped for the console: per account the
 * sync status, backfill progress (n of N), last successful sync, messages
 * stored in the last pass and the last error; per folder UIDVALIDITY, last
 * stored UID, server UIDNEXT, lag, last pass, last error and stall flag.
 * Read-only; the syncer writes FolderState and MailAccount.imap.
 */

export interface FolderLedger {
  folder: string;
  specialUse: string;
  uidValidity: string;
  /** Incremental cursor: mail above backfill.topUid is stored up to here. */
  lastUid: number;
  uidNext: number;
  messagesOnServer: number;
  /** Messages on the server the sync has not stored yet (as of the last pass). */
  lag: number;
  backfill: { total: number; done: number; completed: boolean; percent: number };
  lastPassAt: Date | null;
  lastPassStored: number;
  lastError: string;
  /** UIDNEXT moved and the last pass found mail to read, yet stored none of it. */
  stalled: boolean;
  /** Messages the server kept returning without their content: skipped (they stay on the server). */
  skippedUids: number[];
  /**
   * The folder was read again from the backfill window although it had been synced: the server recreated it
   * (UIDVALIDITY changed) or restored it from a backup (UIDs reused). Null when that never happened.
   */
  resync: { at: Date; reason: ResyncReason } | null;
}

export interface SyncLedger {
  accountId: string;
  email: string;
  enabled: boolean;
  imapEnabled: boolean;
  status: string;
  /** A syncer holds the account's lease: a pass is running now. */
  syncing: boolean;
  lastError: string;
  lastErrorCode: string;
  lastSyncAt: Date | null;
  lastSuccessAt: Date | null;
  lastPassStored: number;
  /** Consecutive network failures and when the next attempt is due (backoff). */
  failures: number;
  nextAttemptAt: Date | null;
  /** Sum over folders, for one progress bar. */
  backfill: { total: number; done: number; completed: boolean; percent: number };
  lag: number;
  stalled: boolean;
  folders: FolderLedger[];
}

const RESYNC_REASONS = ['uidvalidity-changed', 'uids-reused'] as const;
type ResyncReason = (typeof RESYNC_REASONS)[number];
const isResyncReason = (value: unknown): value is ResyncReason => RESYNC_REASONS.includes(value as ResyncReason);
const resyncOf = (state: { resyncedAt?: Date | null; resyncReason?: string | null }): FolderLedger['resync'] =>
  state.resyncedAt && isResyncReason(state.resyncReason) ? { at: state.resyncedAt, reason: state.resyncReason } : null;

const percent = (done: number, total: number, completed: boolean) => (completed || total === 0 ? (completed ? 100 : 0) : Math.min(100, Math.floor((done / total) * 100)));

/** Null when the account does not exist. Folders: INBOX first, then by name. */
export async function getSyncLedger(store: Store, accountId: string | mongoose.Types.ObjectId): Promise<SyncLedger | null> {
  if (typeof accountId === 'string' && !mongoose.isValidObjectId(accountId)) return null;
  const id = typeof accountId === 'string' ? new mongoose.Types.ObjectId(accountId) : accountId;
  const account = await store.models.MailAccount.findById(id, { email: 1, enabled: 1, imap: 1 }).lean();
  if (!account) return null;
  // Only the folders the next pass syncs: INBOX, the Sent folder and the picked ones. A folder the user
  // took off the list keeps its cursor (picked again, it resumes), but its row — an error saying to
  // correct its name, or a first sync that never completes — would stay on the page for good.
  const picked = new Set(account.imap?.folders ?? []);
  const states = (await store.models.FolderState.find({ accountId: id }).lean())
    .filter((state) => state.folder.toUpperCase() === 'INBOX' || state.specialUse === '\\Sent' || picked.has(state.folder));
  const syncing = await leaseHeld(store, accountLeaseKey(id.toHexString()));

  const folders: FolderLedger[] = states
    .map((state) => ({
      folder: state.folder,
      specialUse: state.specialUse ?? '',
      uidValidity: state.uidValidity ?? '',
      lastUid: state.lastUid ?? 0,
      uidNext: state.uidNext ?? 0,
      messagesOnServer: state.messagesOnServer ?? 0,
      lag: state.lag ?? 0,
      backfill: {
        total: state.backfill?.total ?? 0,
        done: state.backfill?.done ?? 0,
        completed: state.backfill?.completed ?? false,
        percent: percent(state.backfill?.done ?? 0, state.backfill?.total ?? 0, state.backfill?.completed ?? false),
      },
      lastPassAt: state.lastPassAt ?? null,
      lastPassStored: state.lastPassStored ?? 0,
      lastError: state.lastError ?? '',
      stalled: state.stalled ?? false,
      skippedUids: (state.unreadable ?? []).filter((entry) => entry.attempts >= UNREADABLE_ATTEMPTS).map((entry) => entry.uid).sort((a, b) => a - b),
      resync: resyncOf(state),
    }))
    .sort((a, b) => (a.folder.toUpperCase() === 'INBOX' ? -1 : b.folder.toUpperCase() === 'INBOX' ? 1 : a.folder.localeCompare(b.folder)));

  const total = folders.reduce((sum, f) => sum + f.backfill.total, 0);
  const done = folders.reduce((sum, f) => sum + f.backfill.done, 0);
  // A picked folder never opened (not on the server, or only a parent) does not hold the first sync up; INBOX and
  // the Sent folder, which every account syncs, do: one the server refuses to open was not "first sync complete".
  const promised = (f: FolderLedger) => f.folder.toUpperCase() === 'INBOX' || f.specialUse === '\\Sent';
  const completed = folders.length > 0 && folders.every((f) => f.backfill.completed || (f.uidValidity === '' && !promised(f)));
  const imap = account.imap;
  return {
    accountId: id.toHexString(),
    email: account.email,
    enabled: account.enabled ?? true,
    imapEnabled: imap?.enabled ?? false,
    status: imap?.status ?? 'off',
    syncing,
    lastError: imap?.lastError ?? '',
    lastErrorCode: imap?.lastErrorCode ?? '',
    lastSyncAt: imap?.lastSyncAt ?? null,
    lastSuccessAt: imap?.lastSuccessAt ?? null,
    lastPassStored: imap?.lastPassStored ?? 0,
    failures: imap?.failures ?? 0,
    nextAttemptAt: imap?.nextAttemptAt ?? null,
    backfill: { total, done, completed, percent: percent(done, total, completed) },
    lag: folders.reduce((sum, f) => sum + f.lag, 0),
    stalled: folders.some((f) => f.stalled),
    folders,
  };
}
