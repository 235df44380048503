import session from 'express-session';
import { LRUCache } from 'lru-cache';
import type { Types } from 'mongoose';
import type { Logger } from '../gateway/core/log';
import type { Store } from '../gateway/store';

type SessionData = session.SessionData & { userId?: string };
type Callback<T = unknown> = (err?: unknown, value?: T) => void;

/** Sessions without an explicit cookie expiry still end after this long. */
const DEFAULT_TTL_MS = 12 * 3600 * 1000;
/**
 * A session nobody signed in to (the sign-in or invite form's CSRF token, a message for that form) is kept
 * an hour from its last request: anyone can make one, and each is a stored row until it expires.
 */
const ANONYMOUS_TTL_MS = 3600 * 1000;

/**
 * express-session store on the `sessions` collection. connect-mongo relies on
 * a TTL index, which FerretDB lacks; here every read checks `expiresAt`
 * itself and `sweep()` deletes expired rows through the expiresAt index.
 */
export class DatabaseSessionStore extends session.Store {
  private sweeper: NodeJS.Timeout | undefined;
  /**
   * Sessions destroyed (signed out) by this process. express-session saves a
   * changed session when its request ends, as an upsert: a request still
   * running when the same browser signs out (a slow Send in another tab)
   * would store the session again, signed in, and its response would set the
   * cookie again. Such a save is dropped. One admin process serves the
   * console; the entries outlive the longest session.
   */
  private readonly destroyed = new LRUCache<string, true>({ max: 100_000, ttl: DEFAULT_TTL_MS });

  constructor(private readonly store: Store, private readonly log: Logger, private readonly clock: () => Date = () => new Date()) {
    super();
  }

  private expiry(data: SessionData): Date {
    const expires = data.cookie?.expires;
    const until = expires ? new Date(expires) : new Date(this.clock().getTime() + (data.cookie?.originalMaxAge ?? DEFAULT_TTL_MS));
    if (data.userId) return until;
    return new Date(Math.min(until.getTime(), this.clock().getTime() + ANONYMOUS_TTL_MS));
  }

  override get(sid: string, callback: Callback<SessionData | null>): void {
    this.store.models.Session.findById(sid).lean().then(
      (row) => {
        if (!row) return callback(null, null);
        if (row.expiresAt.getTime() <= this.clock().getTime()) {
          this.store.models.Session.deleteOne({ _id: sid }).catch(() => undefined);
          return callback(null, null);
        }
        try {
          callback(null, JSON.parse(row.data) as SessionData);
        } catch (err) {
          this.log.warn({ err }, 'unreadable session, starting a new one');
          callback(null, null);
        }
      },
      (err) => callback(err),
    );
  }

  override set(sid: string, data: SessionData, callback?: Callback): void {
    if (this.destroyed.has(sid)) return callback?.();
    const update = { data: JSON.stringify(data), expiresAt: this.expiry(data), userId: data.userId ?? null };
    this.store.models.Session.updateOne({ _id: sid }, { $set: update }, { upsert: true }).then(
      () => callback?.(),
      (err) => callback?.(err),
    );
  }

  override touch(sid: string, data: SessionData, callback?: Callback): void {
    this.store.models.Session.updateOne({ _id: sid }, { $set: { expiresAt: this.expiry(data) } }).then(
      () => callback?.(),
      (err) => callback?.(err),
    );
  }

  override destroy(sid: string, callback?: Callback): void {
    this.destroyed.set(sid, true);
    this.store.models.Session.deleteOne({ _id: sid }).then(
      () => callback?.(),
      (err) => callback?.(err),
    );
  }

  /** End every session of a user (disabled): for good, as destroy() does, so enabling the user later does not bring one back. */
  async destroyUserSessions(userId: Types.ObjectId | string): Promise<number> {
    for (const row of await this.store.models.Session.find({ userId }, { _id: 1 }).lean()) this.destroyed.set(row._id, true);
    const result = await this.store.models.Session.deleteMany({ userId });
    return result.deletedCount ?? 0;
  }

  /** Delete expired sessions; returns how many. */
  async sweep(): Promise<number> {
    const result = await this.store.models.Session.deleteMany({ expiresAt: { $lte: this.clock() } });
    return result.deletedCount ?? 0;
  }

  startSweeping(intervalMs = 10 * 60_000): void {
    this.stopSweeping();
    this.sweeper = setInterval(() => {
      this.sweep().then(
        (count) => count > 0 && this.log.debug({ count }, 'swept expired sessions'),
        (err) => this.log.warn({ err }, 'session sweep failed; retrying next interval'),
      );
    }, intervalMs);
    this.sweeper.unref();
  }

  stopSweeping(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}
