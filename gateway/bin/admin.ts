/**
 * The admin process: console + JSON API. `npm run admin` (after a build).
 *
 * SIGINT/SIGTERM: stop accepting, let requests in flight finish (10 s at
 * most), close the store. A second signal exits at once: a send cut off
 * there is in the outbox, and the outbox worker finishes it.
 */
import { assertSecretKeyMatchesStore, ensureFirstAdmin } from '../accounts';
import { loadConfigOrExit } from '../core/config';
import { createLogger } from '../core/log';
import { openConfiguredStore } from '../store';
import { createLifecycle, failStart, serveHealthIfConfigured } from './lifecycle';
import { startAdmin } from '../../admin/server';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const log = createLogger({ level: config.logLevel, base: { app: 'postroom', process: 'admin' } });
  const lifecycle = createLifecycle(log, 'the admin', 'requests in flight are cut off');
  try {
    const store = await openConfiguredStore(config, log);
    lifecycle.add('store', () => store.close());
    await assertSecretKeyMatchesStore(store, config, log);
    await ensureFirstAdmin(store, { email: config.adminEmail, password: config.adminPassword }, log);
    const admin = await startAdmin({ config, log, store });
    lifecycle.add('admin', () => admin.close());
    // The console answers /healthz on ADMIN_PORT; HEALTH_PORT (off unless set) adds /metrics, kept off the console's port.
    await serveHealthIfConfigured(config, log, lifecycle, { conn: store.conn, what: 'the console' });
  } catch (err) {
    await failStart(lifecycle, log, 'the admin', err, config);
  }
}

void main();
