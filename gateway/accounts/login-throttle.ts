/**
 * Login throttling per account and per client IP (OWASP Authentication
 * Cheat Sheet, "Account lockout"): after a few free failures every further
 * failure locks the key for twice as long as the previous one, up to a cap.
 * The per-account limit stops guessing one password from many IPs; the
 * per-IP limit stops one client spraying many accounts. Locks are soft (they
 * expire), so an attacker cannot lock a user out for long.
 *
 * State is in memory: one admin process serves the console, and a restart
 * only forgives a few attempts.
 */
export interface ThrottlePolicy {
  /** Failures allowed before the first lock. */
  freeFailures: number;
  /** First lock length. */
  baseLockMs: number;
  maxLockMs: number;
  /** A key with no failure for this long starts over. */
  forgetAfterMs: number;
}

export const ACCOUNT_POLICY: ThrottlePolicy = { freeFailures: 5, baseLockMs: 30_000, maxLockMs: 15 * 60_000, forgetAfterMs: 60 * 60_000 };
export const IP_POLICY: ThrottlePolicy = { freeFailures: 20, baseLockMs: 60_000, maxLockMs: 15 * 60_000, forgetAfterMs: 60 * 60_000 };

interface Entry {
  failures: number;
  lastFailureAt: number;
  lockedUntil: number;
}

const MAX_KEYS = 50_000;

class KeyedThrottle {
  private readonly entries = new Map<string, Entry>();
  constructor(private readonly policy: ThrottlePolicy) {}

  retryAfterMs(key: string, now: number): number {
    const entry = this.fresh(key, now);
    return entry && entry.lockedUntil > now ? entry.lockedUntil - now : 0;
  }

  fail(key: string, now: number): void {
    const entry = this.fresh(key, now) ?? { failures: 0, lastFailureAt: now, lockedUntil: 0 };
    entry.failures += 1;
    entry.lastFailureAt = now;
    const over = entry.failures - this.policy.freeFailures;
    if (over > 0) entry.lockedUntil = now + Math.min(this.policy.baseLockMs * 2 ** (over - 1), this.policy.maxLockMs);
    this.entries.delete(key); // re-insert: Map order is then least-recently-failed first
    this.entries.set(key, entry);
    if (this.entries.size > MAX_KEYS) this.entries.delete(this.entries.keys().next().value as string);
  }

  clear(key: string): void {
    this.entries.delete(key);
  }

  private fresh(key: string, now: number): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry && now - entry.lastFailureAt > this.policy.forgetAfterMs && entry.lockedUntil <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }
}

export type ThrottleVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number; scope: 'account' | 'ip' };

export class LoginThrottle {
  private readonly accounts: KeyedThrottle;
  private readonly ips: KeyedThrottle;

  constructor(private readonly clock: () => Date = () => new Date(), policies: { account?: ThrottlePolicy; ip?: ThrottlePolicy } = {}) {
    this.accounts = new KeyedThrottle(policies.account ?? ACCOUNT_POLICY);
    this.ips = new KeyedThrottle(policies.ip ?? IP_POLICY);
  }

  /** Ask before checking a password: a locked key is refused without spending argon2 time on it. */
  check(email: string, ip: string): ThrottleVerdict {
    const now = this.clock().getTime();
    const account = this.accounts.retryAfterMs(email.trim().toLowerCase(), now);
    const byIp = this.ips.retryAfterMs(ip, now);
    if (account === 0 && byIp === 0) return { allowed: true };
    const wait = Math.max(account, byIp);
    return { allowed: false, retryAfterSeconds: Math.ceil(wait / 1000), scope: account >= byIp ? 'account' : 'ip' };
  }

  recordFailure(email: string, ip: string): void {
    const now = this.clock().getTime();
    this.accounts.fail(email.trim().toLowerCase(), now);
    this.ips.fail(ip, now);
  }

  /** A correct password clears the account's count; the IP's stays, so one valid login cannot launder a spray. */
  recordSuccess(email: string): void {
    this.accounts.clear(email.trim().toLowerCase());
  }
}
