import type { Config } from '../core/config';
import { resolveMasterKey, SecretBox } from '../core/crypto';
import type { Logger } from '../core/log';
import type { Store } from '../store';
import { attemptDelivery, claimDueEntry } from './deliver';
import { newHolder, sendDepsFromConfig, type SendDeps } from './deps';
import { pruneOutboxHistory } from './outbox';

/**
 * The outbox loop any process can run (start-all, the syncer; several at
 * once are fine — each entry is taken under a lock with an expiry): every
 * `intervalMs`, and whenever kicked, it takes the entries that are due —
 * retries after a 4xx reply or a network failure, filing left unfinished,
 * entries whose sender crashed — one at a time, and runs an attempt on each.
 */
export interface OutboxWorker {
  /** Run a pass now (or right after the current one). */
  kick(): void;
  /** Resolve when no pass is running; for tests and shutdown. */
  idle(): Promise<void>;
  /** Run one full pass and resolve with how many entries it attempted. */
  runOnce(): Promise<number>;
  stop(): Promise<void>;
}

export interface OutboxWorkerOptions {
  /** How often to look for due entries (default 15 s). */
  intervalMs?: number;
  /** Most entries one pass attempts, so a long queue cannot starve shutdown. */
  maxPerPass?: number;
}

const PRUNE_INTERVAL_MS = 3_600_000;

export function startOutboxWorker(deps: SendDeps, options: OutboxWorkerOptions = {}): OutboxWorker {
  const intervalMs = options.intervalMs ?? 15_000;
  const maxPerPass = options.maxPerPass ?? 100;
  const holder = newHolder('outbox');
  const log = deps.log.child({ component: 'outbox-worker', holder });
  let running: Promise<number> | null = null;
  let again = false;
  let stopped = false;
  let wake: NodeJS.Timeout | undefined;

  // An entry queued in this process is retried at its time, not at the next tick.
  const workerDeps: SendDeps = {
    ...deps,
    onQueued: (at) => {
      deps.onQueued?.(at);
      planWake(at);
    },
  };

  function planWake(at: Date): void {
    if (stopped) return;
    const delay = Math.max(0, at.getTime() - Date.now()) + 5;
    if (delay >= intervalMs) return;
    clearTimeout(wake);
    wake = setTimeout(pass, delay);
    wake.unref();
  }

  /** Hourly (and at start): entries finished long ago leave the queue this worker reads every pass. */
  let lastPrune = -Infinity;
  async function pruneHistory(): Promise<void> {
    if (Date.now() - lastPrune < PRUNE_INTERVAL_MS) return;
    lastPrune = Date.now();
    const deleted = await pruneOutboxHistory(deps.store, deps.clock?.() ?? new Date());
    if (deleted > 0) log.info({ deleted }, 'deleted outbox entries finished more than 30 days ago');
  }

  async function drain(): Promise<number> {
    await pruneHistory().catch((err: Error) => log.warn({ err }, 'could not delete old outbox entries; trying again next hour'));
    let attempted = 0;
    while (!stopped && attempted < maxPerPass) {
      const now = deps.clock?.() ?? new Date();
      const entry = await claimDueEntry(workerDeps, holder, now);
      if (!entry) break;
      attempted += 1;
      await attemptDelivery(workerDeps, entry, holder, { background: true }).catch((err: Error) => {
        // The lock expires on its own; the entry is tried again then.
        log.error({ err, outboxId: entry._id }, 'outbox attempt failed unexpectedly');
      });
    }
    if (attempted > 0) log.debug({ attempted }, 'outbox pass done');
    return attempted;
  }

  function pass(): Promise<number> {
    if (stopped) return Promise.resolve(0);
    if (running) {
      again = true;
      return running;
    }
    running = drain()
      .catch((err: Error) => {
        log.error({ err }, 'outbox pass failed');
        return 0;
      })
      .finally(() => {
        running = null;
        if (again) {
          again = false;
          void pass();
        }
      });
    return running;
  }

  const timer = setInterval(() => void pass(), intervalMs);
  timer.unref();
  void pass();

  return {
    kick: () => void pass(),
    async idle() {
      while (running) await running;
    },
    async runOnce() {
      while (running) await running;
      return pass();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      clearTimeout(wake);
      while (running) await running;
    },
  };
}

/**
 * For process entry points (start-all, the syncer): the outbox worker with
 * the limits from the configuration, CRM association after storing, and the
 * passwords opened with the key from SECRET_KEY (or DATA_DIR/secret.key) —
 * the same SecretBox the console seals them with.
 */
export function startOutboxWorkerFromConfig(
  config: Parameters<typeof sendDepsFromConfig>[0] & Pick<Config, 'secretKey' | 'dataDir'>,
  base: { store: Store; log: Logger; secretBox?: SecretBox },
  options: OutboxWorkerOptions = {},
): OutboxWorker {
  const secretBox = base.secretBox ?? new SecretBox(resolveMasterKey(config.secretKey, config.dataDir).key);
  return startOutboxWorker(sendDepsFromConfig(config, { store: base.store, log: base.log, secretBox }), options);
}
