import type { ImapFlow } from 'imapflow';
import cron, { type ScheduledTask } from 'node-cron';
import type { Config } from '../core/config';
import { linkedAbort } from '../core/linked-abort';
import { canonicalTimeZone } from '../core/time-zone';
import { resolveMasterKey, SecretBox } from '../core/crypto';
import type { Logger } from '../core/log';
import { metrics } from '../core/metrics';
import { associatorOrDefault } from '../crm/link';
import type { Associator } from '../mail/ingest';
import type { Store } from '../store';
import { accountLeaseKey, holdLease, newHolderId } from './lease';
import { syncOptionsFromConfig, type SyncOptions } from './options';
import { syncAccount, type AccountPassResult, type SyncableAccount } from './sync-account';

/**
 * The syncer: on the IMAP_SYNC_CRON schedule, a pass over every enabled
 * account with IMAP on whose credentials are good ('authenticated') and
 * whose backoff, if any, has elapsed. Up to IMAP_SYNC_CONCURRENCY accounts
 * at once per process; each under a database lease, so two syncer
 * processes — or two overlapping passes — never sync one account at once.
 */

export interface SyncerDeps {
  config: Config;
  log: Logger;
  store: Store;
  /** Opens the stored IMAP passwords; default: from SECRET_KEY (or DATA_DIR/secret.key). */
  secretBox?: SecretBox;
  /** CRM association of synced mail; default: crmAssociator; null: none (tests of the syncer alone). */
  associate?: Associator | null;
  options?: Partial<SyncOptions>;
  /** false: no cron schedule, passes only through runPassNow() (tests, `syncer --once`). */
  schedule?: boolean;
}

export type SkipReason = 'in-progress' | 'leased' | 'not-due' | 'stopping';

export interface PassReport {
  startedAt: Date;
  finishedAt: Date;
  accounts: AccountPassResult[];
  skipped: Array<{ accountId: string; reason: SkipReason }>;
}

export interface Syncer {
  /** Lease holder id of this syncer. */
  readonly holder: string;
  /** Run a pass now (the schedule keeps running); resolves with what happened to each account. */
  runPassNow(): Promise<PassReport>;
  /**
   * Stop the schedule and let the current batches finish (their cursors are
   * saved), up to options.stopTimeoutMs; then close the connections, which
   * abandons unfinished batches — safe, since their cursors never moved —
   * and after as long again resolve even if a pass still waits on the store.
   */
  stop(): Promise<void>;
}

/**
 * Accounts a pass takes: IMAP on and authenticated, backoff elapsed, and an
 * owner who is not disabled. A disabled user (someone who left) has their
 * forwarded mail refused by the gateway; signing in to their mailbox every
 * minute with the stored password would go on behind the admin's back.
 * No joins on FerretDB ($lookup): the few disabled owners are read first.
 */
async function dueFilter(store: Store, now: Date): Promise<Record<string, unknown>> {
  const disabledOwners = (await store.models.User.find({ disabled: true }, { _id: 1 }).lean()).map((user) => user._id);
  return {
    enabled: true,
    'imap.enabled': true,
    'imap.status': 'authenticated',
    $or: [{ 'imap.nextAttemptAt': null }, { 'imap.nextAttemptAt': { $lte: now } }],
    ...(disabledOwners.length > 0 ? { ownerId: { $nin: disabledOwners } } : {}),
  };
}

const ACCOUNT_FIELDS = { ownerId: 1, imap: 1, forwarding: 1, oauth: 1 } as const;

class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];
  constructor(size: number) {
    this.free = size;
  }
  async take(): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free += 1;
  }
}

export function startSyncer(deps: SyncerDeps): Syncer {
  const { config, store } = deps;
  const options = syncOptionsFromConfig(config, deps.options);
  const log = deps.log.child({ component: 'syncer' });
  const secrets = deps.secretBox ?? new SecretBox(resolveMasterKey(config.secretKey, config.dataDir).key);
  const associate = associatorOrDefault(deps.associate, { store, log: deps.log, settings: { businessDomains: config.businessDomains } });
  const holder = newHolderId();
  const slots = new Slots(options.concurrency);
  const inProgress = new Set<string>();
  const clients = new Set<ImapFlow>();
  const passes = new Set<Promise<PassReport>>();
  const stopping = new AbortController();

  const track = (client: ImapFlow) => {
    clients.add(client);
    return () => clients.delete(client);
  };

  async function runAccount(account: SyncableAccount, passStartedAt: Date, report: PassReport): Promise<void> {
    const accountId = account._id.toHexString();
    const skip = (reason: SkipReason): void => {
      report.skipped.push({ accountId, reason });
    };
    inProgress.add(accountId);
    try {
      await slots.take();
      try {
        if (stopping.signal.aborted) return skip('stopping');
        const lease = await holdLease(store, accountLeaseKey(accountId), holder, {
          ttlMs: options.leaseTtlMs,
          onError: (err) => log.warn({ err, accountId }, 'lease renewal failed; retrying'),
        });
        if (!lease) return skip('leased');
        try {
          // Re-read under the lease: another syncer may have synced it, or
          // marked it failing, since this pass listed it. A pass syncs each
          // due account once, whichever syncer gets there first.
          const now = options.now();
          const fresh = await store.models.MailAccount.findOne(
            { _id: account._id, ...(await dueFilter(store, now)), $and: [{ $or: [{ 'imap.lastSyncAt': null }, { 'imap.lastSyncAt': { $lt: passStartedAt } }] }] },
            ACCOUNT_FIELDS,
          ).lean<SyncableAccount>();
          if (!fresh) return skip('not-due');
          // Not AbortSignal.any: stopping.signal lives as long as the process (core/linked-abort.ts).
          const linked = linkedAbort([stopping.signal, lease.lost]);
          let result: AccountPassResult;
          try {
            result = await syncAccount({ store, log: deps.log, secrets, options, associate, track, oauthConfig: deps.config }, fresh, linked.signal);
          } finally {
            linked.dispose();
          }
          metrics().imapSyncs.inc({ outcome: result.outcome });
          metrics().imapSyncSeconds.observe({ outcome: result.outcome }, result.ms / 1000);
          report.accounts.push(result);
        } finally {
          await lease.release().catch((err) => log.warn({ err, accountId }, 'lease release failed; it expires on its own'));
        }
      } finally {
        slots.give();
      }
    } finally {
      inProgress.delete(accountId);
    }
  }

  async function runPass(): Promise<PassReport> {
    const startedAt = options.now();
    const report: PassReport = { startedAt, finishedAt: startedAt, accounts: [], skipped: [] };
    const due = await store.models.MailAccount.find(await dueFilter(store, startedAt), ACCOUNT_FIELDS).sort({ 'imap.lastSyncAt': 1 }).lean<SyncableAccount[]>();
    const work: Array<Promise<void>> = [];
    for (const account of due) {
      const accountId = account._id.toHexString();
      // An overlapping pass (the previous one still running) leaves its accounts alone.
      if (inProgress.has(accountId)) report.skipped.push({ accountId, reason: 'in-progress' });
      else work.push(runAccount(account, startedAt, report));
    }
    const settled = await Promise.allSettled(work);
    for (const outcome of settled) if (outcome.status === 'rejected') log.error({ err: outcome.reason }, 'account sync failed unexpectedly');
    report.finishedAt = options.now();
    log.debug({ accounts: report.accounts.length, skipped: report.skipped.length, ms: report.finishedAt.getTime() - startedAt.getTime() }, 'sync pass done');
    return report;
  }

  function runPassNow(): Promise<PassReport> {
    if (stopping.signal.aborted) {
      const now = options.now();
      return Promise.resolve({ startedAt: now, finishedAt: now, accounts: [], skipped: [] });
    }
    const pass = runPass();
    passes.add(pass);
    void pass.catch(() => undefined).finally(() => passes.delete(pass));
    return pass;
  }

  let task: ScheduledTask | null = null;
  if (deps.schedule !== false) {
    task = cron.schedule(
      config.imapSyncCron,
      () => {
        runPassNow().catch((err) => log.error({ err }, 'sync pass failed (store unreachable?); the next one retries'));
      },
      // The operator's clock, not the process's TZ: "0 2 * * *" is 02:00 in IMAP_SYNC_TIMEZONE, DST included.
      { name: 'imap-sync', timezone: config.imapSyncTimeZone },
    );
    log.info({ cron: config.imapSyncCron, timeZone: config.imapSyncTimeZone, nextPassAt: task.getNextRun()?.toISOString() ?? null, concurrency: options.concurrency, holder }, 'IMAP syncer scheduled');
    warnIfScheduleMoved(config, log);
  }

  return {
    holder,
    runPassNow,
    async stop() {
      if (task) {
        await task.stop();
        await task.destroy();
        task = null;
      }
      stopping.abort();
      const running = Promise.allSettled([...passes]);
      let hardStop: NodeJS.Timeout | undefined;
      let giveUp: NodeJS.Timeout | undefined;
      const abandoned = new Promise<void>((resolve) => {
        hardStop = setTimeout(() => {
          log.warn({ connections: clients.size }, 'batches did not finish in time: closing IMAP connections (their cursors were not advanced)');
          for (const client of clients) client.close();
          // Closing the connections ends every pass that waits on IMAP; one that waits on a store
          // operation that never answers (a stalled store) would hold the shutdown forever, and
          // Ctrl-C with it. Nothing it holds is acknowledged, so the process may go without it.
          giveUp = setTimeout(() => {
            log.warn({ accounts: [...inProgress] }, 'a sync pass is still waiting on the store: stopping without it (its cursor was not advanced)');
            resolve();
          }, options.stopTimeoutMs);
        }, options.stopTimeoutMs);
      });
      try {
        await Promise.race([running, abandoned]);
      } finally {
        clearTimeout(hardStop);
        clearTimeout(giveUp);
      }
    },
  };
}

/**
 * Versions before IMAP_SYNC_TIMEZONE read IMAP_SYNC_CRON in the machine's
 * zone. An upgraded server outside UTC whose schedule names hours or days
 * ("0 2 * * *") now runs its passes at other local times: said once at
 * start, with the setting that keeps the old ones. Every-few-minutes
 * schedules are the same in every zone and say nothing.
 */
function warnIfScheduleMoved(config: Pick<Config, 'imapSyncCron' | 'imapSyncTimeZone' | 'imapSyncTimeZoneSet'>, log: Logger): void {
  if (config.imapSyncTimeZoneSet) return;
  const machineZone = canonicalTimeZone(new Intl.DateTimeFormat().resolvedOptions().timeZone);
  if (!machineZone || machineZone === config.imapSyncTimeZone) return;
  const fields = config.imapSyncCron.trim().split(/\s+/);
  const clockFields = fields.slice(fields.length === 6 ? 2 : 1);
  if (clockFields.every((field) => field === '*')) return;
  log.warn(
    { cron: config.imapSyncCron, timeZone: config.imapSyncTimeZone, machineZone },
    `IMAP_SYNC_CRON "${config.imapSyncCron}" is read in ${config.imapSyncTimeZone}, not in this machine's zone ${machineZone} as before IMAP_SYNC_TIMEZONE existed: set IMAP_SYNC_TIMEZONE=${machineZone} to keep the times it ran at`,
  );
}
