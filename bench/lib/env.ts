import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMailAccount, createUser } from '../../gateway/accounts';
import { loadConfig, type Config } from '../../gateway/core/config';
import { createLogger, type Logger } from '../../gateway/core/log';
import { createObject } from '../../gateway/crm/objects';
import { startGateway, type Gateway } from '../../gateway/haraka/launcher';
import { openStore, type Store } from '../../gateway/store';
import { startEmbeddedStore, type EmbeddedStore } from '../../gateway/store/embedded-ferretdb';
import { startDns, type TestDns } from '../../tests/support/dns';
import { generateDkimKey, publishDkim, signMessage, type DkimKey } from '../../tests/support/mail-auth';

/**
 * The loopback world the benchmarks and robustness tests run in: a store
 * (MONGODB_URI, or an embedded FerretDB of their own), an authoritative DNS
 * server with the test domains' SPF and DKIM records, a business with one
 * user, one mail account and one CRM customer, and Postroom's real gateway
 * (startGateway → Haraka with the Postroom plugins).
 *
 * Mail is shaped like forwarded mail: the envelope sender is the account's
 * own domain (SPF passes for 127.0.0.1, as for a provider forwarding it) and
 * the message carries the customer's original DKIM signature, so the whole
 * pipeline runs: SPF, DKIM, DMARC and ARC lookups, parse, store, associate.
 */

export const GATEWAY_DOMAIN = 'in.postroom.test';
export const ACCOUNT_EMAIL = 'bob@acme.test';
export const CUSTOMER_DOMAIN = 'customer.test';
/** What a provider's forwarding puts in MAIL FROM (Gmail: user+caf_=…@domain). */
export const FORWARDING_SENDER = 'bob+caf_=fwd@acme.test';

export interface StoreServer {
  /** Base URI without a database. */
  uri: string;
  kind: 'mongodb' | 'ferretdb';
  embedded?: EmbeddedStore;
  dataDir?: string;
  stop(): Promise<void>;
}

/** MONGODB_URI when set (MongoDB 7 in production), else a private FerretDB on a free port. */
export async function startStoreServer(options: { port?: number; dataDir?: string; log?: Logger } = {}): Promise<StoreServer> {
  if (process.env.MONGODB_URI) {
    return { uri: process.env.MONGODB_URI, kind: 'mongodb', stop: async () => undefined };
  }
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-bench-store-'));
  const embedded = await startEmbeddedStore({ dataDir, port: options.port, log: options.log });
  return {
    uri: embedded.uri,
    kind: 'ferretdb',
    embedded,
    dataDir,
    stop: async () => {
      await embedded.stop();
      if (!options.dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function uniqueDbName(label: string): string {
  return `bench_${label.replace(/[^a-z0-9]/gi, '_').slice(0, 24)}_${crypto.randomBytes(3).toString('hex')}`;
}

export async function openNamedStore(uri: string, dbName: string, log: Logger = createLogger({ level: 'silent' })): Promise<Store> {
  return openStore({ uri, dbName, log, maxWaitMs: 20_000 });
}

export interface MailWorld {
  dns: TestDns;
  dkim: DkimKey;
  sign(raw: Buffer): Promise<Buffer>;
  stop(): Promise<void>;
}

/** DNS for the test domains: SPF of acme.test allows loopback; customer.test signs with DKIM. */
export async function startMailWorld(): Promise<MailWorld> {
  // A real zone's TTL (5 minutes): the gateway's resolver caches answers, as it does in production.
  const dns = await startDns({ ttl: 300 });
  const dkim = generateDkimKey();
  dns.setTxt('acme.test', 'v=spf1 ip4:127.0.0.0/8 -all');
  dns.setTxt(CUSTOMER_DOMAIN, 'v=spf1 -all');
  dns.setTxt(`_dmarc.${CUSTOMER_DOMAIN}`, 'v=DMARC1; p=none');
  publishDkim(dns, dkim, [CUSTOMER_DOMAIN]);
  return {
    dns,
    dkim,
    sign: (raw) => signMessage(raw, dkim, CUSTOMER_DOMAIN),
    stop: () => dns.stop(),
  };
}

export interface Business {
  userId: string;
  accountId: string;
  forwardingAddress: string;
  customerId: string;
}

/** One user, one mail account (bob@acme.test), one CRM customer (customer.test): what the pipeline associates. */
export async function createBusiness(store: Store, log: Logger = createLogger({ level: 'silent' })): Promise<Business> {
  const user = await createUser(store, { email: `owner-${crypto.randomBytes(3).toString('hex')}@acme.test`, password: 'bench-password-1234', role: 'admin', name: 'Bench Owner' });
  const account = await createMailAccount(store, user.id, ACCOUNT_EMAIL, { gatewayDomain: GATEWAY_DOMAIN });
  const customer = await createObject({ store, log, settings: { businessDomains: ['acme.test'] } }, { type: 'customer', name: 'Customer Inc', domains: [CUSTOMER_DOMAIN] });
  return { userId: user.id, accountId: account.id, forwardingAddress: account.forwardingAddress, customerId: customer.object.id };
}

export interface GatewayOptions {
  storeUri: string;
  dbName: string;
  dnsAddress: string;
  /** Fixed port (robustness tests restart on it); 0 = free port. */
  port?: number;
  logLevel?: string;
  maxMessageSize?: string;
  log?: Logger;
  /** Extra environment for the Haraka child (robustness tests: tests/support/heap-probe.cjs). */
  childEnv?: NodeJS.ProcessEnv;
}

export interface RunningGateway {
  gateway: Gateway;
  config: Config;
  dataDir: string;
  stop(): Promise<void>;
}

export function gatewayConfig(options: GatewayOptions, dataDir: string): Config {
  return loadConfig({
    NODE_ENV: 'test',
    DATA_DIR: dataDir,
    BIND_ADDRESS: '127.0.0.1',
    GATEWAY_DOMAIN,
    BUSINESS_DOMAINS: 'acme.test',
    DNS_SERVERS: options.dnsAddress,
    SECRET_KEY: crypto.randomBytes(32).toString('hex'),
    SMTP_MAX_MESSAGE_SIZE: options.maxMessageSize ?? '64MB',
    SMTP_MAX_CONNECTIONS: '200',
    // The load comes from one address (loopback): the whole connection limit is its to use.
    SMTP_MAX_CONNECTIONS_PER_CLIENT: '200',
    LOG_LEVEL: options.logLevel ?? 'warn',
  });
}

/** Postroom's gateway exactly as `npm run gateway` runs it (Haraka child + Postroom plugins from dist/). */
export async function startPostroomGateway(options: GatewayOptions): Promise<RunningGateway> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-bench-gw-'));
  const config = gatewayConfig(options, dataDir);
  const log = options.log ?? createLogger({ level: config.logLevel, destination: process.stderr, pretty: false });
  const gateway = await startGateway({ config, log, mongoUri: options.storeUri, dbName: options.dbName, port: options.port ?? 0, recipientCacheMs: 3000, env: options.childEnv });
  return {
    gateway,
    config,
    dataDir,
    stop: async () => {
      await gateway.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
