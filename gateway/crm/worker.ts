import { startSerialLoop } from '../core/serial-loop';
import type { SecretBox } from '../core/crypto';
import { runPendingJobs, sweep } from './backfill';
import type { CrmDeps } from './link';
import { pruneCrmHistory } from './retention';
import { startWebhookDispatcher, type Dispatcher, type DispatchOptions } from './webhook-dispatch';

/**
 * The CRM background loop a process runs (the admin process, or any other:
 * several may run at once, jobs and deliveries are claimed with leases):
 * backfill/prune/relink jobs, the crash-recovery sweep, webhook delivery,
 * and, hourly, deleting history past its keeping time (retention.ts). `kick()` starts a pass now instead of at the next tick.
 */
export interface CrmWorker {
  kick(): void;
  /** Resolve when the current pass (if any) is over; for tests and shutdown. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

export interface CrmWorkerOptions {
  intervalMs?: number;
  /** Sweep messages/links left unassociated for longer than this. */
  sweepAfterMs?: number;
  /**
   * How often the sweep runs (default 5 minutes; it also runs at start). It
   * recovers from crashes, so it need not run with every job pass: on
   * FerretDB its query reads the whole messages collection (about 0.75 ms
   * per stored message), which every 5 s kept the embedded store busy from
   * about 5,000 messages on. MongoDB answers it from the {status, linkedAt}
   * index.
   */
  sweepIntervalMs?: number;
  /** Webhook delivery; omitted when no SecretBox is given. */
  secretBox?: SecretBox;
  webhooks?: DispatchOptions & { intervalMs?: number };
}

const PRUNE_INTERVAL_MS = 3_600_000;

export function startCrmWorker(deps: CrmDeps, options: CrmWorkerOptions = {}): CrmWorker {
  const intervalMs = options.intervalMs ?? 5000;
  const log = deps.log.child({ component: 'crm-worker' });
  const dispatcher: Dispatcher | null = options.secretBox
    ? startWebhookDispatcher({ store: deps.store, log: deps.log, secretBox: options.secretBox }, options.webhooks)
    : null;
  const workDeps: CrmDeps = { ...deps, onEventsQueued: () => dispatcher?.kick() };
  const sweepIntervalMs = options.sweepIntervalMs ?? 5 * 60_000;
  let lastSweep = -Infinity;
  let lastPrune = -Infinity;
  const loop = startSerialLoop(
    async () => {
      await runPendingJobs(workDeps);
      if (Date.now() - lastPrune >= PRUNE_INTERVAL_MS) {
        lastPrune = Date.now();
        const pruned = await pruneCrmHistory(deps.store);
        if (pruned.deliveries + pruned.jobs > 0) log.info(pruned, 'deleted CRM history past its keeping time (webhook deliveries, finished jobs)');
      }
      if (Date.now() - lastSweep < sweepIntervalMs) return;
      lastSweep = Date.now();
      await sweep(workDeps, { olderThanMs: options.sweepAfterMs });
    },
    intervalMs,
    (err) => log.error({ err }, 'CRM worker pass failed'),
  );
  loop.kick();

  return {
    kick: () => {
      loop.kick();
      dispatcher?.kick();
    },
    idle: loop.idle,
    async stop() {
      await loop.stop();
      await dispatcher?.stop();
    },
  };
}
