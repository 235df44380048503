/**
 * `npm start`: the whole appliance in one terminal, without Docker.
 *
 * Starts the store (the embedded FerretDB under DATA_DIR/store when
 * MONGODB_URI is unset), then the admin console, the SMTP gateway (Haraka as
 * a child process) and the IMAP syncer against it. Ctrl-C (SIGINT) or
 * SIGTERM stops them in reverse order; a second signal exits at once.
 */
import { startAdmin } from '../../admin/server';
import { ensureFirstAdmin } from '../accounts';
import { loadConfigOrExit } from '../core/config';
import { createLogger } from '../core/log';
import { openConfiguredStore } from '../store';
import { startGateway } from './gateway';
import { startSyncer } from './syncer';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const log = createLogger({ level: config.logLevel, base: { app: 'postroom' } });
  const stops: Array<{ name: string; stop: () => Promise<unknown> }> = [];
  let stopping = false;

  const shutdown = async (reason: string, code = 0) => {
    if (stopping) {
      log.warn('second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ reason }, 'stopping Postroom');
    for (const { name, stop } of stops.reverse()) {
      await stop().catch((err: Error) => log.error({ err, part: name }, 'error while stopping'));
    }
    log.info('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  try {
    const store = await openConfiguredStore(config, log);
    stops.push({ name: 'store', stop: () => store.close() });
    const mongoUri = store.embedded ? `${store.embedded.uri.replace(/\/$/, '')}/postroom` : config.mongodbUri!;

    await ensureFirstAdmin(store, { email: config.adminEmail, password: config.adminPassword }, log);
    const admin = await startAdmin({ config, log, store });
    stops.push({ name: 'admin', stop: () => admin.close() });

    const gateway = await startGateway({ config, log, mongoUri });
    stops.push({ name: 'gateway', stop: () => gateway.close() });

    const syncer = await startSyncer({ config, log, store });
    stops.push({ name: 'syncer', stop: () => syncer.stop() });

    log.info(
      { smtp: `${config.bindAddress}:${config.smtpPort}`, console: config.publicUrl, store: store.embedded ? 'embedded FerretDB' : 'MongoDB' },
      'Postroom is running (Ctrl-C to stop)',
    );
  } catch (err) {
    log.fatal({ err }, 'cannot start Postroom');
    await shutdown('start failed', 1);
  }
}

void main();
