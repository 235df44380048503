/**
 * `npm start`: the whole appliance in one terminal, without Docker.
 *
 * Starts the store (the embedded FerretDB under DATA_DIR/store when
 * MONGODB_URI is unset), then the admin console, the SMTP gateway (Haraka as
 * a child process) and the IMAP syncer against it. Ctrl-C (SIGINT) or
 * SIGTERM stops them in reverse order; a second signal exits at once.
 */
import { startAdmin } from '../../admin/server';
import { assertSecretKeyMatchesStore, ensureFirstAdmin, warnForwardingAddressesOffDomain } from '../accounts';
import { loadConfigOrExit } from '../core/config';
import { createLogger } from '../core/log';
import { startOutboxWorkerFromConfig } from '../send';
import { openConfiguredStore, storeUri, warnIfEmbeddedStoreOutgrown } from '../store';
import { startGateway } from './gateway';
import { createLifecycle, failStart, serveHealthIfConfigured } from './lifecycle';
import { startSyncer } from './syncer';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const log = createLogger({ level: config.logLevel, base: { app: 'postroom' } });
  const lifecycle = createLifecycle(log, 'Postroom', 'anything unacknowledged is retried');
  try {
    // exclusive: a second appliance on this DATA_DIR would share the first one's store and Haraka directory.
    const store = await openConfiguredStore(config, log, { exclusive: true });
    lifecycle.add('store', () => store.close());
    await assertSecretKeyMatchesStore(store, config, log);

    await ensureFirstAdmin(store, { email: config.adminEmail, password: config.adminPassword }, log);
    await warnForwardingAddressesOffDomain(store, config.gatewayDomain, log);
    const admin = await startAdmin({ config, log, store });
    lifecycle.add('admin', () => admin.close());

    const gateway = await startGateway({ config, log, mongoUri: storeUri(store, config) });
    lifecycle.add('gateway', () => gateway.close());
    // The admin answers /healthz on ADMIN_PORT; HEALTH_PORT (off unless set) adds /metrics for the whole appliance.
    await serveHealthIfConfigured(config, log, lifecycle, { conn: store.conn, what: 'the IMAP syncer and the console', gateway });

    const syncer = startSyncer({ config, log, store });
    lifecycle.add('syncer', () => syncer.stop());

    // Retries of mail a provider deferred (4xx) or could not be reached for.
    const outbox = startOutboxWorkerFromConfig(config, { store, log });
    lifecycle.add('outbox', () => outbox.stop());

    log.info(
      { smtp: `${config.bindAddress}:${config.smtpPort}`, console: config.publicUrl, store: store.embedded ? 'embedded FerretDB' : 'MongoDB' },
      'Postroom is running (Ctrl-C to stop)',
    );
    // After the start, not before it: counting must never hold up mail.
    warnIfEmbeddedStoreOutgrown(store, log).catch((err) => log.debug({ err }, 'could not count the embedded store\'s messages'));
  } catch (err) {
    await failStart(lifecycle, log, 'Postroom', err, config);
  }
}

void main();
