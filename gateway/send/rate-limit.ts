import { AppError, isDuplicateKeyError } from '../core/errors';
import type { SendDeps } from './deps';
import type { SendingAccount } from './settings';

/**
 * SEND_RATE_LIMIT per account: at most `max` messages in any `windowMs`
 * (a sliding window). The account has `max` slots (gateway/models/send-rate.ts);
 * a message may go when a slot was last used before the window began, and
 * claiming it is one atomic findOneAndUpdate — so the limit holds for any
 * number of concurrent requests and processes, with no transaction, and a
 * restart forgets nothing. A message refused by the server still used its
 * slot: it reached the provider, which is what the limit protects.
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

/** Take a send slot for the account or throw 429 RATE_LIMITED with the seconds to wait. */
export async function takeSendSlot(deps: SendDeps, account: SendingAccount, now: Date): Promise<void> {
  const { SendRateSlot } = deps.store.models;
  const { max, windowMs } = deps.rateLimit;
  const since = new Date(now.getTime() - windowMs);
  for (let attempt = 0; attempt < 5; attempt++) {
    const claimed = await SendRateSlot.findOneAndUpdate(
      { accountId: account._id, n: { $lt: max }, usedAt: { $lte: since } },
      { $set: { usedAt: now } },
      // No projection: FerretDB 1.24 does not implement findAndModify "fields".
      { sort: { usedAt: 1 }, returnDocument: 'after' },
    ).lean();
    if (claimed) return;
    const used = await SendRateSlot.countDocuments({ accountId: account._id, n: { $lt: max } });
    if (used >= max) break;
    try {
      // A slot never used yet; the unique (accountId, n) index settles a race for it.
      await SendRateSlot.create({ accountId: account._id, n: used, usedAt: now });
      return;
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
    }
  }
  const oldest = await SendRateSlot.findOne({ accountId: account._id, n: { $lt: max } }).sort({ usedAt: 1 }).lean();
  const freeAt = oldest ? oldest.usedAt.getTime() + windowMs : now.getTime() + windowMs;
  const seconds = Math.max(1, Math.ceil((freeAt - now.getTime()) / 1000));
  throw new RateLimitedError(`${account.email} has sent ${max} message${max === 1 ? '' : 's'} in the last ${describeWindow(windowMs)}, the limit (SEND_RATE_LIMIT). Try again in ${seconds} s.`, seconds);
}
