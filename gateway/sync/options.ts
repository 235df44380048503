import type { Config } from '../core/config';

/**
 * Tunables of the IMAP syncer. Most come from the configuration; the rest
 * are engineering limits with defaults that tests may shorten.
 */
export interface SyncOptions {
  /** Messages per FETCH batch; the cursor advances after each stored batch. */
  batchSize: number;
  /** Upper bound on the bytes of one batch, so a batch of big messages cannot exhaust memory. */
  batchBytes: number;
  /** Largest message fetched whole; bigger ones are stored truncated with a flag (never skipped). */
  maxMessageBytes: number;
  /**
   * Messages of a folder ingested at once (the window spans the current
   * batch and the next, which is fetched while the current one finishes):
   * overlaps store round trips, and their writes share group commits
   * (gateway/store/group-insert.ts, group-lookup.ts). Memory stays bounded
   * by two batches (2 × batchBytes), which are fetched anyway. 32 measured
   * best on FerretDB (bench: imap.sync 0.8 at 16, 0.9 at 32).
   */
  ingestConcurrency: number;
  /** How far back the first sync of a folder reaches (SEARCH SINCE). */
  backfillDays: number;
  /** Accounts synced at once by one syncer process. */
  concurrency: number;
  /** Exponential backoff after network/TLS/timeout failures: first delay and cap. */
  backoffBaseMs: number;
  backoffCapMs: number;
  /** Lifetime of an account lease; it is renewed at a third of it while syncing. */
  leaseTtlMs: number;
  /** How long forwarding may lag behind IMAP before forwarding is called broken. */
  forwardingGraceMs: number;
  /** imapflow timeouts. */
  connectionTimeoutMs: number;
  greetingTimeoutMs: number;
  socketTimeoutMs: number;
  /** How long stop() lets the current batches finish before it abandons them. */
  stopTimeoutMs: number;
  /**
   * Longest pass over one account. A server can keep a connection alive with a
   * byte now and then (never silent for socketTimeoutMs) and never finish; the
   * pass would hold one of the syncer's slots for good. Cursors are saved per
   * batch, so a long first sync simply resumes in the next pass.
   */
  passDeadlineMs: number;
  /**
   * Time a folder's pass spends marking mail read that was read in the mailbox (seen-since.ts) before it
   * leaves the rest to the next pass. The embedded FerretDB writes one document at a time (about 25 ms
   * each on two busy cores): "Mark all as read" on a phone over 3,000 messages held a pass for 9 minutes.
   */
  seenCatchUpMs: number;
  /** Clock (tests move it forward to skip a backoff). */
  now: () => Date;
}

export const DEFAULT_SYNC_OPTIONS: Omit<SyncOptions, 'maxMessageBytes' | 'backfillDays' | 'concurrency' | 'forwardingGraceMs'> = {
  batchSize: 100,
  batchBytes: 32 * 1024 * 1024,
  ingestConcurrency: 32,
  backoffBaseMs: 60_000,
  backoffCapMs: 60 * 60_000,
  leaseTtlMs: 2 * 60_000,
  connectionTimeoutMs: 30_000,
  greetingTimeoutMs: 16_000,
  socketTimeoutMs: 2 * 60_000,
  stopTimeoutMs: 20_000,
  passDeadlineMs: 30 * 60_000,
  seenCatchUpMs: 10_000,
  now: () => new Date(),
};

export function syncOptionsFromConfig(config: Config, overrides: Partial<SyncOptions> = {}): SyncOptions {
  return {
    ...DEFAULT_SYNC_OPTIONS,
    maxMessageBytes: config.smtpMaxMessageSize,
    backfillDays: config.imapBackfillDays,
    concurrency: config.imapSyncConcurrency,
    forwardingGraceMs: config.forwardingGraceMinutes * 60_000,
    ...overrides,
  };
}
