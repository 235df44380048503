/**
 * `npm run gateway`: the SMTP gateway alone — Haraka with the Postroom
 * plugins as a supervised child process (gateway/haraka/launcher.ts),
 * listening on SMTP_PORT.
 *
 * The store: MONGODB_URI, or the embedded FerretDB under DATA_DIR/store
 * started here (Haraka's plugins connect to it through the URI passed in
 * their environment). SIGINT/SIGTERM: Haraka stops accepting connections,
 * lets transactions that are storing finish, then the store stops. A second
 * signal exits at once — safe, because a message is only acknowledged (250)
 * after it is stored, so the sender retries anything cut short.
 *
 * `npm start` runs the same gateway through startGateway().
 */
import { loadConfigOrExit } from '../core/config';
import { createLogger } from '../core/log';
import { openConfiguredStore, storeUri } from '../store';
import { warnForwardingAddressesOffDomain } from '../accounts';
import { startGateway } from '../haraka/launcher';
import { createLifecycle, failStart, serveHealthIfConfigured } from './lifecycle';

export { startGateway } from '../haraka/launcher';
export type { Gateway, StartGatewayOptions } from '../haraka/launcher';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const log = createLogger({ level: config.logLevel, base: { app: 'postroom', process: 'gateway' } });
  const lifecycle = createLifecycle(log, 'the gateway', 'unacknowledged messages are retried by their senders');
  try {
    const store = await openConfiguredStore(config, log);
    lifecycle.add('store', () => store.close());
    await warnForwardingAddressesOffDomain(store, config.gatewayDomain, log);
    const gateway = await startGateway({ config, log, mongoUri: storeUri(store, config) });
    lifecycle.add('gateway', () => gateway.close());
    await serveHealthIfConfigured(config, log, lifecycle, { conn: store.conn, what: 'the gateway', gateway });
  } catch (err) {
    await failStart(lifecycle, log, 'the gateway', err, config);
  }
}

// start-all imports startGateway from here; only running this file starts a process.
if (require.main === module) void main();
