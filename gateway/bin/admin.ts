/**
 * The admin process: console + JSON API. `npm run admin` (after a build).
 */
import { ensureFirstAdmin } from '../accounts';
import { loadConfigOrExit } from '../core/config';
import { createLogger } from '../core/log';
import { openConfiguredStore } from '../store';
import { describeStartFailure } from './lifecycle';
import { startAdmin } from '../../admin/server';

const config = loadConfigOrExit();

async function main(): Promise<void> {
  const log = createLogger({ level: config.logLevel, base: { app: 'postroom', process: 'admin' } });
  const store = await openConfiguredStore(config, log);
  await ensureFirstAdmin(store, { email: config.adminEmail, password: config.adminPassword }, log);
  const admin = await startAdmin({ config, log, store });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      log.error('shutdown took longer than 15 s; exiting');
      process.exit(1);
    }, 15_000);
    force.unref();
    try {
      await admin.close();
      await store.close();
      process.exit(0);
    } catch (err) {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err) => {
  const known = describeStartFailure(err, config.dataDir);
  process.stderr.write(`postroom admin: ${known ? `cannot start: ${known.line}` : ((err as Error).stack ?? err)}\n`);
  process.exit(known?.status ?? 1);
});
