/**
 * `npm run syncer`: the IMAP syncer alone (scale out by running several; the
 * per-account leases keep them from syncing one account twice).
 *
 *   npm run syncer             # passes on IMAP_SYNC_CRON until SIGINT/SIGTERM
 *   npm run syncer -- --once   # one pass, then exit (cron jobs, debugging)
 *
 * SIGINT/SIGTERM: stop the schedule, let the current batches finish (their
 * cursors are saved) or, after a timeout, abandon them — safe, because an
 * IMAP cursor only moves after its batch is stored. A second signal exits
 * at once, which is just as safe for the same reason.
 *
 * `npm start` runs the same syncer in-process through startSyncer().
 */
import { loadConfigOrExit } from '../core/config';
import { pingStore } from '../core/db';
import { startHealthServer } from '../core/health';
import { createLogger } from '../core/log';
import { openConfiguredStore } from '../store';
import { startSyncer } from '../sync/schedule';

export { startSyncer } from '../sync/schedule';
export type { Syncer, SyncerDeps, PassReport } from '../sync/schedule';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const log = createLogger({ level: config.logLevel, base: { app: 'postroom', process: 'syncer' } });
  const once = process.argv.includes('--once');
  let stopping = false;
  const stops: Array<() => Promise<unknown>> = [];

  const shutdown = async (reason: string, code = 0) => {
    if (stopping) {
      log.warn('second signal: exiting now (unfinished batches are fetched again next time)');
      process.exit(1);
    }
    stopping = true;
    log.info({ reason }, 'stopping the syncer');
    for (const stop of stops.reverse()) await stop().catch((err: Error) => log.error({ err }, 'error while stopping'));
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  try {
    const store = await openConfiguredStore(config, log);
    stops.push(() => store.close());
    const syncer = startSyncer({ config, log, store, schedule: !once });
    stops.push(() => syncer.stop());
    if (config.healthPort > 0) {
      const health = await startHealthServer({
        port: config.healthPort,
        host: config.bindAddress,
        check: async () => ({ store: (await pingStore(store.conn)) ? 'up' : 'down' }),
      });
      stops.push(() => health.close());
      log.info({ port: health.port }, 'health endpoint listening (GET /healthz)');
    }
    if (once) {
      const report = await syncer.runPassNow();
      log.info({ accounts: report.accounts.length, skipped: report.skipped.length }, 'one pass done');
      await shutdown('--once done');
    }
  } catch (err) {
    log.fatal({ err }, 'cannot start the syncer');
    await shutdown('start failed', 1);
  }
}

// start-all imports startSyncer from here; only running this file starts a process.
if (require.main === module) void main();
