import crypto from 'node:crypto';
import { AppError } from '../core/errors';
import { dayInZone, DEFAULT_TIME_ZONE, formatInZone } from '../core/time-zone';
import { acquireLease, newHolderId } from '../sync/lease';
import type { SendDeps } from './deps';
import type { SendingAccount } from './settings';

/**
 * SEND_RATE_LIMIT per account: at most `max` messages in any `windowMs`
 * (a sliding window). The account has `max` slots; sending takes one whose
 * last use is older than the window. A slot is a lease (gateway/sync/lease.ts)
 * held for the window and never given back: a free slot is an expired lease,
 * and taking one is the lease's unique insert — the one claim FerretDB 1.24
 * and MongoDB both make atomic (FerretDB runs findAndModify as a read, then a
 * write, so two sends could take the last slot together). So the limit holds
 * for any number of concurrent requests and processes, and a restart forgets
 * nothing. A message refused by the server still used its slot: it reached
 * the provider, which is what the limit protects.
 */
export class RateLimitedError extends AppError {
  /** Seconds until a slot frees up (the HTTP Retry-After). */
  readonly retryAfter: number;
  constructor(message: string, retryAfterSeconds: number) {
    super('RATE_LIMITED', message, { status: 429 });
    this.retryAfter = retryAfterSeconds;
  }
}

function describeWindow(windowMs: number): string {
  if (windowMs % 86_400_000 === 0) return `${windowMs / 86_400_000} d`;
  if (windowMs % 3_600_000 === 0) return `${windowMs / 3_600_000} h`;
  if (windowMs % 60_000 === 0) return `${windowMs / 60_000} min`;
  return `${windowMs / 1000} s`;
}

const slotKey = (accountId: unknown, n: number) => `send-slot:${String(accountId)}:${n}`;

/** When each slot frees up: its newest lease's expiry (a slot never used has none, and is free). */
async function slotsFreeAt(deps: Pick<SendDeps, 'store'>, keys: string[]): Promise<Map<string, number>> {
  const leases = await deps.store.models.SyncLease.find({ key: { $in: keys } }, { key: 1, epoch: 1, expiresAt: 1 }).sort({ epoch: 1 }).lean();
  return new Map(leases.map((lease) => [lease.key, lease.expiresAt.getTime()]));
}

/** The wait in words a person reads at a glance: "40 s", "12 min", "3 h 5 min". */
function describeWait(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 120) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h${minutes % 60 ? ` ${minutes % 60} min` : ''}`;
}

/** Take a send slot for the account or throw 429 RATE_LIMITED with the seconds to wait. */
export async function takeSendSlot(deps: Pick<SendDeps, 'store' | 'rateLimit'>, account: Pick<SendingAccount, '_id' | 'email'>, now: Date, zoneOfSender: () => Promise<string> = async () => DEFAULT_TIME_ZONE): Promise<void> {
  const { max, windowMs } = deps.rateLimit;
  const keys = Array.from({ length: max }, (_, n) => slotKey(account._id, n));
  let freeAt = await slotsFreeAt(deps, keys);
  const free = keys.filter((key) => (freeAt.get(key) ?? 0) <= now.getTime());
  // From a random free slot on, so concurrent senders mostly try different ones.
  const first = free.length ? crypto.randomInt(free.length) : 0;
  const holder = newHolderId();
  for (const key of [...free.slice(first), ...free.slice(0, first)]) {
    if (await acquireLease(deps.store, key, holder, windowMs, now)) return;
  }
  if (free.length) freeAt = await slotsFreeAt(deps, keys); // others took them meanwhile: their times, not the old ones
  const soonest = Math.min(...keys.map((key) => freeAt.get(key) ?? now.getTime()));
  const seconds = Math.max(1, Math.ceil((soonest - now.getTime()) / 1000));
  // On the sender's clock (viewerTimeZone), zone named; with the date when that is not today there.
  const nextAt = new Date(now.getTime() + seconds * 1000);
  const timeZone = await zoneOfSender();
  const at = dayInZone(nextAt, timeZone) === dayInZone(now, timeZone) ? formatInZone(nextAt, timeZone).slice(11) : formatInZone(nextAt, timeZone);
  throw new RateLimitedError(
    `${account.email} has sent ${max} message${max === 1 ? '' : 's'} in the last ${describeWindow(windowMs)}, the most the administrator allows (SEND_RATE_LIMIT). `
      + `The next one can go in ${describeWait(seconds)}${seconds >= 120 ? ` (at ${at})` : ''}.`,
    seconds,
  );
}
