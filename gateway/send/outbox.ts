import { AppError, notFound } from '../core/errors';
import { parseObjectId, type ObjectId } from '../accounts/ids';
import { isAdmin, type Viewer } from '../accounts/mail-accounts';
import type { Store } from '../store';

/** The Outbox page and API: what was sent from Postroom and what became of it. */
export interface OutboxItemView {
  id: string;
  accountId: string;
  ownerId: string;
  messageId: string;
  subject: string;
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  status: 'queued' | 'sent' | 'failed';
  /** The label people see: "Queued", "Sent", "Sent (1 refused)", "Failed". */
  label: string;
  recipients: Array<{ address: string; state: string; reply: string }>;
  attempts: number;
  nextAttemptAt: Date | null;
  lastError: string;
  lastErrorCode: string;
  storedMessageId: string | null;
  sentFolder: { state: string; folder: string; error: string };
  /** A failed message whose copy was kept (it failed in the background): GET it with openFailedCopy. */
  copyKept: boolean;
  createdAt: Date;
  finishedAt: Date | null;
}

type Row = {
  _id: ObjectId; accountId: ObjectId; ownerId: ObjectId; messageId: string; subject?: string | null;
  from?: { address?: string | null; name?: string | null } | null;
  to?: Array<{ address?: string | null }> | null; cc?: Array<{ address?: string | null }> | null; bcc?: Array<{ address?: string | null }> | null;
  status: string; recipients?: Array<{ address: string; state?: string | null; reply?: string | null }> | null; attempts?: number | null;
  nextAttemptAt?: Date | null; lastError?: string | null; lastErrorCode?: string | null; storedMessageId?: ObjectId | null;
  sentFolder?: { state?: string | null; folder?: string | null; error?: string | null } | null; createdAt: Date; finishedAt?: Date | null;
  fileBlobId?: ObjectId | null;
};

function label(row: Row): string {
  const refused = (row.recipients ?? []).filter((r) => r.state === 'refused').length;
  if (row.status === 'queued') return 'Queued';
  if (row.status === 'failed') return 'Failed';
  return refused > 0 ? `Sent (${refused} refused)` : 'Sent';
}

export function toOutboxItemView(row: Row): OutboxItemView {
  const addresses = (list: Row['to']) => (list ?? []).map((m) => m.address ?? '').filter(Boolean);
  return {
    id: row._id.toHexString(),
    accountId: row.accountId.toHexString(),
    ownerId: row.ownerId.toHexString(),
    messageId: row.messageId,
    subject: row.subject ?? '',
    from: row.from?.address ?? '',
    to: addresses(row.to),
    cc: addresses(row.cc),
    bcc: addresses(row.bcc),
    status: row.status as OutboxItemView['status'],
    label: label(row),
    recipients: (row.recipients ?? []).map((r) => ({ address: r.address, state: r.state ?? 'pending', reply: r.reply ?? '' })),
    attempts: row.attempts ?? 0,
    nextAttemptAt: row.nextAttemptAt ?? null,
    lastError: row.lastError ?? '',
    lastErrorCode: row.lastErrorCode ?? '',
    storedMessageId: row.storedMessageId ? row.storedMessageId.toHexString() : null,
    sentFolder: { state: row.sentFolder?.state ?? 'pending', folder: row.sentFolder?.folder ?? '', error: row.sentFolder?.error ?? '' },
    copyKept: row.status === 'failed' && Boolean(row.fileBlobId),
    createdAt: row.createdAt,
    finishedAt: row.finishedAt ?? null,
  };
}

const scope = (viewer: Viewer) => (isAdmin(viewer) ? {} : { ownerId: viewer.id });

/** Newest first; employees see their own accounts' entries, admins all (served by the ownerId/createdAt indexes). */
export async function listOutbox(store: Store, viewer: Viewer, options: { limit?: number; accountId?: string } = {}): Promise<OutboxItemView[]> {
  const filter: Record<string, unknown> = { ...scope(viewer) };
  if (options.accountId) {
    const id = parseObjectId(options.accountId);
    if (!id) return [];
    filter.accountId = id;
  }
  const rows = await store.models.Outbox.find(filter).sort({ createdAt: -1 }).limit(Math.min(options.limit ?? 100, 500)).lean();
  return rows.map((row) => toOutboxItemView(row as unknown as Row));
}

export async function getOutboxItem(store: Store, viewer: Viewer, id: string): Promise<OutboxItemView | null> {
  const objectId = parseObjectId(id);
  const row = objectId ? await store.models.Outbox.findOne({ _id: objectId, ...scope(viewer) }).lean() : null;
  return row ? toOutboxItemView(row as unknown as Row) : null;
}

/** The kept copy of a failed message (the sender's own, with Bcc), for the sender to send again; null when there is none. */
export async function openFailedCopy(store: Store, viewer: Viewer, id: string): Promise<{ subject: string; bytes: Buffer } | null> {
  const objectId = parseObjectId(id);
  const row = objectId ? await store.models.Outbox.findOne({ _id: objectId, status: 'failed', ...scope(viewer) }).lean() : null;
  if (!row?.fileBlobId) return null;
  return { subject: row.subject ?? '', bytes: await store.blobs.get(row.fileBlobId) };
}

async function queuedEntry(store: Store, viewer: Viewer, id: string) {
  const objectId = parseObjectId(id);
  const row = objectId ? await store.models.Outbox.findOne({ _id: objectId, ...scope(viewer) }).lean() : null;
  if (!row) throw notFound('outbox entry');
  if (row.status !== 'queued') throw new AppError('NOT_QUEUED', 'Only a queued message can be retried or discarded.', { status: 409 });
  return row;
}

/**
 * How long a finished entry (sent, or given up) stays on the Outbox page. The
 * outbox is a work queue: the worker looks for due entries in it every 15 s,
 * and on the embedded store that query reads the whole collection, so entries
 * kept for ever cost seconds of every pass after some thousands of sends. The
 * sent mail itself stays stored with the rest of the mail. Same keeping time
 * as webhook deliveries (crm/retention.ts).
 */
export const OUTBOX_HISTORY_DAYS = 30;

/**
 * Delete entries finished more than OUTBOX_HISTORY_DAYS before `now`; an
 * entry with work left (a retry, filing in Sent) is kept however old. A
 * failed entry's kept copy is then owned by nothing and goes with the hourly
 * sweep of orphaned blobs (store/blob-sweep.ts).
 */
export async function pruneOutboxHistory(store: Store, now = new Date()): Promise<number> {
  const before = new Date(now.getTime() - OUTBOX_HISTORY_DAYS * 86_400_000);
  const result = await store.models.Outbox.deleteMany({ nextAttemptAt: null, finishedAt: { $ne: null, $lt: before } });
  return result.deletedCount ?? 0;
}

/** "Retry now": make a queued entry due at once (the worker takes it on its next pass or kick). */
export async function retryOutboxNow(store: Store, viewer: Viewer, id: string, now = new Date()): Promise<void> {
  const row = await queuedEntry(store, viewer, id);
  await store.models.Outbox.updateOne({ _id: row._id, status: 'queued' }, { $set: { nextAttemptAt: now } });
}

/** "Discard": stop retrying a queued entry; recipients not reached are marked refused by the user. Not while a sender holds it. */
export async function discardOutboxEntry(store: Store, viewer: Viewer, id: string, now = new Date()): Promise<void> {
  const row = await queuedEntry(store, viewer, id);
  const recipients = (row.recipients ?? []).map((r) => (r.state === 'pending' || r.state === 'deferred' ? { ...r, state: 'refused', reply: 'discarded by the sender', at: now } : r));
  const accepted = recipients.some((r) => r.state === 'accepted');
  const filingLeft = accepted && (!row.storedMessageId || row.sentFolder?.state === 'pending');
  const result = await store.models.Outbox.updateOne(
    { _id: row._id, status: 'queued', $or: [{ lockedUntil: null }, { lockedUntil: { $lte: now } }] },
    {
      $set: {
        recipients, status: accepted ? 'sent' : 'failed', lastError: 'Discarded by the sender.', lastErrorCode: 'DISCARDED',
        nextAttemptAt: filingLeft ? now : null, finishedAt: filingLeft ? null : now,
      },
    },
  );
  if (result.matchedCount === 0) throw new AppError('BUSY', 'This message is being sent right now; try again in a moment.', { status: 409 });
  if (!filingLeft) {
    const ids = [row.transmitBlobId, row.fileBlobId].filter((blob): blob is ObjectId => Boolean(blob));
    await Promise.allSettled(ids.filter((blob, i) => ids.findIndex((o) => o.equals(blob)) === i).map((blob) => store.blobs.delete(blob)));
    await store.models.Outbox.updateOne({ _id: row._id }, { $set: { transmitBlobId: null, fileBlobId: null } });
  }
}
