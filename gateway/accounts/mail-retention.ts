import { VARIABLES } from '../core/config';
import type { Logger } from '../core/log';
import { startSerialLoop, type SerialLoop } from '../core/serial-loop';
import type { Store } from '../store';
import { recordAudit, SYSTEM_ACTOR } from './audit';
import { getBusinessSettings } from './business-settings';
import { removeMessage, REMOVABLE_MESSAGE_FIELDS, type RemovableMessage } from './mailbox';

const DAY_MS = 86_400_000;
const BATCH = 200;
const DEFAULT_INTERVAL_MS = 60 * 60 * 1000;

export interface RetentionResult {
  retentionDays: number;
  /** Tombstones of expired mail dropped because no IMAP sync reaches back to them (pruneExpiredTombstones). */
  tombstonesDropped: number;
  /** Mail received before this was removed; null when retention is off (0 days) or not confirmed. */
  before: Date | null;
  deleted: number;
  /** A value kept from before retention was applied: nothing is deleted until an admin saves it again. */
  unconfirmed?: true;
}

/**
 * Preferences → Business → "Keep mail for (days)": remove every message
 * (inbox, quarantine, sent) received more than that many days ago, with its
 * raw bytes, attachments and CRM links, as Delete does. Each leaves a
 * tombstone, so an IMAP sync that reaches further back (a new UIDVALIDITY,
 * IMAP_BACKFILL_DAYS above the retention) does not bring it back. 0 keeps
 * mail forever. Oldest first, in batches by the receivedAt index.
 *
 * Those tombstones are dropped again once the mail is older than
 * IMAP_BACKFILL_DAYS (`backfillDays`, plus two days for IMAP's date-only
 * SINCE): no first sync or re-read fetches it then. Kept for ever, every
 * incoming message's deletion check read a tombstone collection growing by
 * the whole inflow (on the embedded store a read of all of it: about 0.9 s
 * per check at 10,000). Mail a person deleted keeps its tombstone.
 */
export async function expireOldMail(store: Store, options: { now?: Date; batchSize?: number; backfillDays?: number } = {}): Promise<RetentionResult> {
  const now = options.now ?? new Date();
  const expired = await expire(store, now, options.batchSize ?? BATCH);
  // Also with retention off: the tombstones an earlier setting left still go once no sync reaches back to them.
  const tombstonesDropped = await pruneExpiredTombstones(store, { now, backfillDays: options.backfillDays ?? DEFAULT_BACKFILL_DAYS });
  return { ...expired, tombstonesDropped };
}

async function expire(store: Store, now: Date, batchSize: number): Promise<Omit<RetentionResult, 'tombstonesDropped'>> {
  const { retentionDays, retentionConfirmed } = await getBusinessSettings(store, { businessDomains: [] });
  if (!retentionDays) return { retentionDays: 0, before: null, deleted: 0 };
  if (!retentionConfirmed) return { retentionDays, before: null, deleted: 0, unconfirmed: true };
  const before = new Date(now.getTime() - retentionDays * DAY_MS);
  let deleted = 0;
  for (;;) {
    const batch = (await store.models.Message.find({ receivedAt: { $lt: before } }, REMOVABLE_MESSAGE_FIELDS)
      .sort({ receivedAt: 1, _id: 1 }).limit(batchSize).lean()) as unknown as RemovableMessage[];
    for (const message of batch) await removeMessage(store, message, { now, deletedBy: null, expired: true });
    deleted += batch.length;
    if (batch.length < batchSize) break;
  }
  if (deleted > 0) await recordAudit(store, SYSTEM_ACTOR, { action: 'message.expire', targetType: 'message', details: { deleted, retentionDays, receivedBefore: before.toISOString() } }, now);
  return { retentionDays, before, deleted };
}

/** IMAP_BACKFILL_DAYS's default, for callers without the configuration. */
const DEFAULT_BACKFILL_DAYS = Number(VARIABLES.IMAP_BACKFILL_DAYS.default);

/**
 * Drop the tombstones of expired mail that arrived before any IMAP sync could reach back (expireOldMail).
 * Releases before expiredReceivedAt wrote retention's tombstones without it, with deletedBy null (a person's
 * deletion always names them): such a record deleted before the reach is of mail that arrived earlier still.
 */
export async function pruneExpiredTombstones(store: Store, options: { now: Date; backfillDays: number }): Promise<number> {
  const reach = new Date(options.now.getTime() - (options.backfillDays + 2) * DAY_MS);
  // One command (on the embedded store one read of the collection): this release's records of expired mail,
  // and those an earlier release left (no expiredReceivedAt, no person named, deleted before the reach).
  const result = await store.models.Tombstone.deleteMany({
    $or: [
      { expiredReceivedAt: { $ne: null, $lt: reach } },
      { expiredReceivedAt: { $exists: false }, deletedBy: null, deletedAt: { $lt: reach } },
    ],
  });
  return result.deletedCount ?? 0;
}

/** Retention on a timer (the admin process runs it): a pass soon after start, then hourly; passes never overlap. */
export function startMailRetention(store: Store, log: Logger, options: { intervalMs?: number; backfillDays?: number } = {}): SerialLoop {
  const retentionLog = log.child({ component: 'mail-retention' });
  let warned = false;
  return startSerialLoop(
    async () => {
      const result = await expireOldMail(store, { backfillDays: options.backfillDays });
      if (result.unconfirmed && !warned) {
        warned = true;
        retentionLog.warn({ retentionDays: result.retentionDays }, 'Keep mail for (days) was set before Postroom applied it, so no mail is deleted: an admin who wants it applied saves Preferences → Business again');
      }
      if (result.deleted > 0) retentionLog.info({ deleted: result.deleted, retentionDays: result.retentionDays, receivedBefore: result.before }, 'deleted mail older than the retention period');
      if (result.tombstonesDropped > 0) retentionLog.info({ dropped: result.tombstonesDropped, backfillDays: options.backfillDays }, 'dropped the deletion records of expired mail no IMAP sync reaches back to');
    },
    options.intervalMs ?? DEFAULT_INTERVAL_MS,
    (err) => retentionLog.error({ err }, 'mail retention pass failed; it runs again at the next interval'),
  );
}
