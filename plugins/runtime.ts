import { AppError } from '../gateway/core/errors';
import { createLogger, type Logger } from '../gateway/core/log';
import { crmAssociator } from '../gateway/crm/link';
import { readRuntimeSettings, STORE_DB_ENV, STORE_URI_ENV, type GatewayRuntimeSettings } from '../gateway/haraka/runtime-settings';
import { createBusinessPolicyLoader } from '../gateway/mail/business-policy';
import { createDnsResolver } from '../gateway/mail/dns-resolver';
import type { InboundDeps } from '../gateway/mail/inbound';
import { createRecipientResolver, type RecipientResolver } from '../gateway/mail/recipients';
import { ensureIndexes } from '../gateway/models';
import { openStore, type Store } from '../gateway/store';

/**
 * What the Postroom plugins share inside the one Haraka process (nodes=0):
 * settings, the logger, one store connection, the recipient cache and the
 * DNS resolver. Haraka loads each plugin with a real `require`, so this
 * module is a process-wide singleton.
 *
 * The store is connected in the background and reconnects by itself (the
 * MongoDB driver); until it is reachable, hooks that need it answer 451 so
 * senders retry — Haraka keeps listening either way.
 */

export interface GatewayServices {
  store: Store;
  recipients: RecipientResolver;
  inbound: InboundDeps;
}

export interface GatewayRuntime {
  settings: GatewayRuntimeSettings;
  log: Logger;
  /** The services, or STORE_UNAVAILABLE [GW02] when the store has not been reachable within `waitMs`. */
  services(waitMs?: number): Promise<GatewayServices>;
  /** Count a transaction in flight (graceful shutdown waits for them). */
  track<T>(work: Promise<T>): Promise<T>;
  /**
   * Connections whose message is arriving (DATA to its end): graceful
   * shutdown waits for them too, so a stop during a transfer answers it
   * instead of cutting the connection.
   */
  receiving: Set<string>;
  close(): Promise<void>;
}

let runtime: GatewayRuntime | undefined;

function createRuntime(): GatewayRuntime {
  const settings = readRuntimeSettings();
  // Lines go to stdout as JSON; the gateway process relays them into its own log.
  const root = createLogger({ level: settings.logLevel, pretty: false });
  const log = root.child({ component: 'smtp' });
  const uri = process.env[STORE_URI_ENV];
  const dbName = process.env[STORE_DB_ENV] || undefined;
  let inFlight = 0;
  let closing = false;
  const receiving = new Set<string>();

  const ready: Promise<GatewayServices> = (async () => {
    if (!uri) throw new Error(`${STORE_URI_ENV} is not set in the Haraka process environment`);
    // maxWaitMs 0: keep retrying; the gateway starts even when the store is still coming up.
    // A short server selection: while the store is down, each lookup of a transaction (recipient,
    // business policy, the message write) waits this long before the sender gets its 451 and retries.
    // The driver re-checks an unreachable store every 0.5 s, so 2 s still rides out a blip.
    const store = await openStore({ uri, dbName, log: root, maxWaitMs: 0, ensureIndexes: false, serverSelectionTimeoutMS: 2000 });
    store.conn.on('error', (err: Error) => log.warn({ err }, 'store connection error'));
    await ensureIndexes(store.models).catch((err: Error) => log.warn({ err }, 'could not check the store indexes; continuing'));
    const resolver = createDnsResolver(settings.dnsServers, { cacheSeconds: settings.dnsCacheSeconds });
    const recipients = createRecipientResolver({ store, gatewayDomain: settings.gatewayDomain, ttlMs: settings.recipientCacheMs });
    const crmDeps = { store, log: root, settings: { businessDomains: settings.businessDomains } };
    const inbound: InboundDeps = {
      store,
      log: root,
      resolver,
      authservId: settings.gatewayDomain,
      gatewayDomains: [settings.gatewayDomain],
      businessPolicy: createBusinessPolicyLoader({ store, defaultDomains: settings.businessDomains }),
      associate: crmAssociator(crmDeps),
      // Room for the trace headers we prepend to the stored copy.
      maxBytes: settings.maxMessageSize + 64 * 1024,
    };
    log.info({ db: store.conn.name }, 'gateway store connected');
    return { store, recipients, inbound };
  })();
  // Never an unhandled rejection: Haraka exits on uncaught errors.
  ready.catch((err: Error) => log.fatal({ err }, 'gateway store setup failed'));

  return {
    settings,
    log,
    services: (waitMs = 15000) =>
      new Promise<GatewayServices>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new AppError('STORE_UNAVAILABLE', 'Temporary storage failure, please retry', { status: 503, smtpCode: 451, enhancedCode: '4.3.0', tag: 'GW02' })),
          waitMs,
        );
        ready.then(
          (services) => {
            clearTimeout(timer);
            resolve(services);
          },
          (err: unknown) => {
            clearTimeout(timer);
            reject(new AppError('STORE_UNAVAILABLE', 'Temporary storage failure, please retry', { status: 503, smtpCode: 451, enhancedCode: '4.3.0', tag: 'GW02', cause: err }));
          },
        );
      }),
    receiving,
    track: async (work) => {
      inFlight++;
      try {
        return await work;
      } finally {
        inFlight--;
      }
    },
    close: async () => {
      if (closing) return;
      closing = true;
      // Let messages that are arriving or storing finish (Haraka stopped accepting connections already);
      // the store stays open for them. Haraka's own force_shutdown_timeout (20 s) is the outer limit.
      const deadline = Date.now() + 15000;
      while ((inFlight > 0 || receiving.size > 0) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      const services = await Promise.race([ready, new Promise<null>((resolve) => setTimeout(() => resolve(null), 100))]).catch(() => null);
      await services?.store.close().catch(() => undefined);
      log.info({ abandoned: inFlight + receiving.size }, 'gateway plugins stopped');
    },
  };
}

export function gatewayRuntime(): GatewayRuntime {
  runtime ??= createRuntime();
  return runtime;
}
