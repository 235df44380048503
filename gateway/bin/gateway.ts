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
import { pingStore } from '../core/db';
import { startHealthServer } from '../core/health';
import { createLogger } from '../core/log';
import { openConfiguredStore } from '../store';
import { startGateway } from '../haraka/launcher';

export { startGateway } from '../haraka/launcher';
export type { Gateway, StartGatewayOptions } from '../haraka/launcher';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const log = createLogger({ level: config.logLevel, base: { app: 'postroom', process: 'gateway' } });
  let stopping = false;
  const stops: Array<() => Promise<unknown>> = [];

  const shutdown = async (reason: string, code = 0) => {
    if (stopping) {
      log.warn('second signal: exiting now (unacknowledged messages are retried by their senders)');
      process.exit(1);
    }
    stopping = true;
    log.info({ reason }, 'stopping the gateway');
    for (const stop of stops.reverse()) await stop().catch((err: Error) => log.error({ err }, 'error while stopping'));
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  try {
    const store = await openConfiguredStore(config, log);
    stops.push(() => store.close());
    const mongoUri = store.embedded ? `${store.embedded.uri.replace(/\/$/, '')}/postroom` : config.mongodbUri!;
    const gateway = await startGateway({ config, log, mongoUri });
    stops.push(() => gateway.close());
    if (config.healthPort > 0) {
      const health = await startHealthServer({
        port: config.healthPort,
        host: config.bindAddress,
        check: async () => ({ store: (await pingStore(store.conn)) ? 'up' : 'down', smtp: gateway.isUp() ? 'up' : 'down' }),
      });
      stops.push(() => health.close());
      log.info({ port: health.port }, 'health endpoint listening (GET /healthz)');
    }
  } catch (err) {
    log.fatal({ err }, 'cannot start the gateway');
    await shutdown('start failed', 1);
  }
}

// start-all imports startGateway from here; only running this file starts a process.
if (require.main === module) void main();
