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
import { assertSecretKeyMatchesStore } from '../accounts';
import { loadConfigOrExit } from '../core/config';
import { createLogger } from '../core/log';
import { openConfiguredStore } from '../store';
import { startOutboxWorkerFromConfig } from '../send';
import { startSyncer } from '../sync/schedule';
import { createLifecycle, failStart, serveHealthIfConfigured } from './lifecycle';

export { startSyncer } from '../sync/schedule';
export type { Syncer, SyncerDeps, PassReport } from '../sync/schedule';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const log = createLogger({ level: config.logLevel, base: { app: 'postroom', process: 'syncer' } });
  const once = process.argv.includes('--once');
  const lifecycle = createLifecycle(log, 'the syncer', 'unfinished batches are fetched again next time');
  try {
    const store = await openConfiguredStore(config, log);
    lifecycle.add('store', () => store.close());
    await assertSecretKeyMatchesStore(store, config, log);
    const syncer = startSyncer({ config, log, store, schedule: !once });
    lifecycle.add('syncer', () => syncer.stop());
    // The syncer process also retries the outbox (deferred sends); any number may run it.
    const outbox = startOutboxWorkerFromConfig(config, { store, log });
    lifecycle.add('outbox', () => outbox.stop());
    await serveHealthIfConfigured(config, log, lifecycle, { conn: store.conn, what: 'the IMAP syncer' });
    if (once) {
      await outbox.runOnce();
      const report = await syncer.runPassNow();
      log.info({ accounts: report.accounts.length, skipped: report.skipped.length }, 'one pass done');
      await lifecycle.shutdown('--once done');
    }
  } catch (err) {
    await failStart(lifecycle, log, 'the syncer', err, config);
  }
}

// start-all imports startSyncer from here; only running this file starts a process.
if (require.main === module) void main();
