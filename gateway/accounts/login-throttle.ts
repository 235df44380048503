import crypto from 'node:crypto';
import ipaddr from 'ipaddr.js';

/**
 * Login throttling per account and per client IP (OWASP Authentication
 * Cheat Sheet, "Account lockout"): after a few free failures every further
 * failure locks the key for twice as long as the previous one, up to a cap.
 * The per-account limit stops guessing one password from many IPs; the
 * per-IP limit stops one client spraying many accounts. Locks are soft (they
 * expire), so an attacker cannot lock a user out for long.
 *
 * A password check takes argon2 time, so attempts overlap: each one holds a
 * slot from `begin` until its verdict, and attempts in flight count against
 * the free failures. Otherwise a burst of parallel guesses would all pass the
 * check before the first failure is recorded, however many there are.
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
  /** Attempts begun and not yet decided, per key (bounded by the requests in progress). */
  private readonly inFlight = new Map<string, number>();
  constructor(private readonly policy: ThrottlePolicy) {}

  /** Room for one more attempt: while failures are free, as many as remain free; past them, one at a time. */
  hasRoom(key: string, now: number): boolean {
    const failures = this.fresh(key, now)?.failures ?? 0;
    return (this.inFlight.get(key) ?? 0) < Math.max(1, this.policy.freeFailures - failures);
  }

  reserve(key: string): void {
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
  }

  release(key: string): void {
    const left = (this.inFlight.get(key) ?? 0) - 1;
    if (left > 0) this.inFlight.set(key, left);
    else this.inFlight.delete(key);
  }

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

/** One password check in progress (LoginThrottle.begin). Whichever of its methods is called first ends it. */
export interface LoginAttempt {
  /** The password was wrong. */
  failed(): void;
  /** The password was right: the account's failures are forgiven. */
  succeeded(): void;
  /** No verdict (the check itself failed): only frees the slot. Call it in a `finally`. */
  release(): void;
}

/** Attempts wait for those in flight; they take an argon2 verification each, well under a second. */
const IN_FLIGHT_RETRY_SECONDS = 1;

/** RFC 5321 §4.5.3.1.3: a path is at most 256 octets, so no account's address is longer. */
const MAX_ADDRESS_LENGTH = 256;

/**
 * The per-account key: the address as typed, case and surrounding space aside. Whatever is longer than
 * any address (a sign-in form may carry 100 KB in its email field) is kept as its hash: the throttle holds
 * up to MAX_KEYS keys, and whole such strings as keys would let a sprayer fill gigabytes of memory.
 */
function accountKey(email: string): string {
  const key = email.trim().toLowerCase();
  return key.length <= MAX_ADDRESS_LENGTH ? key : `sha256:${crypto.createHash('sha256').update(key).digest('hex')}`;
}

/**
 * The per-IP key: the address, or for IPv6 its /64. A host is given a whole
 * /64 and picks addresses in it freely (RFC 4941 temporary addresses, RFC
 * 7934 many addresses per host), so counting single IPv6 addresses would
 * hand a sprayer a fresh one for every guess. IPv4-mapped addresses count
 * as the IPv4 address they carry.
 */
export function throttleIpKey(ip: string): string {
  if (!ipaddr.isValid(ip)) return ip;
  const address = ipaddr.process(ip);
  if (address.kind() === 'ipv4') return address.toString();
  return `${ipaddr.IPv6.networkAddressFromCIDR(`${address.toString()}/64`).toString()}/64`;
}

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
    const key = accountKey(email);
    const network = throttleIpKey(ip);
    const account = this.accounts.retryAfterMs(key, now);
    const byIp = this.ips.retryAfterMs(network, now);
    if (account === 0 && byIp === 0) {
      if (!this.accounts.hasRoom(key, now)) return { allowed: false, retryAfterSeconds: IN_FLIGHT_RETRY_SECONDS, scope: 'account' };
      if (!this.ips.hasRoom(network, now)) return { allowed: false, retryAfterSeconds: IN_FLIGHT_RETRY_SECONDS, scope: 'ip' };
      return { allowed: true };
    }
    const wait = Math.max(account, byIp);
    return { allowed: false, retryAfterSeconds: Math.ceil(wait / 1000), scope: account >= byIp ? 'account' : 'ip' };
  }

  /**
   * `check`, and when allowed hold a slot until the attempt's verdict: what
   * the sign-in and password forms use, so parallel guesses are counted as
   * they are made rather than after they are all answered.
   */
  begin(email: string, ip: string): Exclude<ThrottleVerdict, { allowed: true }> | { allowed: true; attempt: LoginAttempt } {
    const verdict = this.check(email, ip);
    if (!verdict.allowed) return verdict;
    const key = accountKey(email);
    const network = throttleIpKey(ip);
    this.accounts.reserve(key);
    this.ips.reserve(network);
    let open = true;
    const end = (after?: () => void) => {
      if (!open) return;
      open = false;
      // Record before freeing the slot, so no attempt slips in between seeing neither.
      after?.();
      this.accounts.release(key);
      this.ips.release(network);
    };
    return {
      allowed: true,
      attempt: {
        failed: () => end(() => this.recordFailure(email, ip)),
        succeeded: () => end(() => this.recordSuccess(email)),
        release: () => end(),
      },
    };
  }

  recordFailure(email: string, ip: string): void {
    const now = this.clock().getTime();
    this.accounts.fail(accountKey(email), now);
    this.ips.fail(throttleIpKey(ip), now);
  }

  /** A correct password clears the account's count; the IP's stays, so one valid login cannot launder a spray. */
  recordSuccess(email: string): void {
    this.accounts.clear(accountKey(email));
  }
}
