/**
 * A real SMTP gateway for tests: Haraka with the compiled Postroom plugins
 * (npm run build), started through the same launcher `npm start` uses, on
 * a random loopback port, against a test database and the test DNS server.
 * Its log lines (the gateway's and those relayed from Haraka) are captured
 * for assertions.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createUser } from '../../gateway/accounts/users';
import { createMailAccount } from '../../gateway/accounts/mail-accounts';
import { loadConfig, type Config } from '../../gateway/core/config';
import { createLogger } from '../../gateway/core/log';
import { startGateway, type Gateway } from '../../gateway/haraka/launcher';
import type { Store } from '../../gateway/store';
import { ensureTestCertificates } from './certs';
import { startDns, type TestDns } from './dns';
import { openTestStore, testMongoUri } from './store';

export const GATEWAY_DOMAIN = 'gw.test';

export interface TestGateway {
  readonly port: number;
  gateway: Gateway;
  config: Readonly<Config>;
  dataDir: string;
  /** Parsed JSON log lines so far. */
  logs(): Array<Record<string, unknown>>;
  /** Wait for a log line matching `predicate`. */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  dbName: string;
  dnsAddress: string;
  mongoUri?: string;
  /** Extra environment for loadConfig (e.g. SMTP_MAX_MESSAGE_SIZE). */
  env?: Record<string, string>;
  /** 'test-ca': the certificate of the test CA (default); 'generated': let the gateway generate its own. */
  tls?: 'test-ca' | 'generated';
  recipientCacheMs?: number;
  /** Delay of each refusal past the soft error limit (default: the launcher's 1000 ms). */
  errorDelayMs?: number;
  lineTimeoutMs?: number;
  dataTimeoutMs?: number;
}

export async function startTestGateway(options: TestGatewayOptions): Promise<TestGateway> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-gateway-'));
  const tlsEnv: Record<string, string> = {};
  if ((options.tls ?? 'test-ca') === 'test-ca') {
    const certs = ensureTestCertificates();
    tlsEnv.TLS_CERT_FILE = certs.certFile;
    tlsEnv.TLS_KEY_FILE = certs.keyFile;
  }
  const config = loadConfig({
    NODE_ENV: 'test',
    DATA_DIR: dataDir,
    GATEWAY_DOMAIN,
    BUSINESS_DOMAINS: 'acme.test',
    DNS_SERVERS: options.dnsAddress,
    LOG_LEVEL: 'info',
    ...tlsEnv,
    ...options.env,
  });

  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ predicate: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }> = [];
  const echo = Boolean(process.env.TEST_LOG_LEVEL);
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString().split('\n')) {
        if (!text.trim()) continue;
        if (echo) process.stderr.write(`${text}\n`);
        try {
          const line = JSON.parse(text) as Record<string, unknown>;
          lines.push(line);
          for (const waiter of [...waiters]) {
            if (waiter.predicate(line)) {
              waiters.splice(waiters.indexOf(waiter), 1);
              waiter.resolve(line);
            }
          }
        } catch {
          // not JSON: ignore
        }
      }
      callback();
    },
  });
  const log = createLogger({ level: 'info', pretty: false, destination });

  const gateway = await startGateway({
    config,
    log,
    mongoUri: options.mongoUri ?? testMongoUri(),
    dbName: options.dbName,
    port: 0,
    recipientCacheMs: options.recipientCacheMs ?? 1000,
    errorDelayMs: options.errorDelayMs,
    lineTimeoutMs: options.lineTimeoutMs,
    dataTimeoutMs: options.dataTimeoutMs,
  });

  return {
    get port() {
      return gateway.port;
    },
    gateway,
    config,
    dataDir,
    logs: () => [...lines],
    waitForLog: (predicate, timeoutMs = 20000) => {
      const found = lines.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no matching gateway log line')), timeoutMs);
        waiters.push({
          predicate,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
      });
    },
    close: async () => {
      await gateway.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** An employee with one mail account; returns the ids and the forwarding address. */
export async function createEmployeeAccount(store: Store, email: string, options: { userEmail?: string } = {}) {
  const user = await createUser(store, { email: options.userEmail ?? `user-${email}` });
  const account = await createMailAccount(store, user.id, email, { gatewayDomain: GATEWAY_DOMAIN });
  const doc = await store.models.MailAccount.findById(account.id).lean();
  const userDoc = await store.models.User.findById(user.id).lean();
  return {
    userId: userDoc!._id,
    accountId: doc!._id,
    forwardingAddress: doc!.forwardingAddress,
    dropboxAddress: `dropbox.${userDoc!.dropboxToken}@${GATEWAY_DOMAIN}`,
  };
}

export interface GatewayWorld {
  store: Store & { dbName: string; drop(): Promise<void> };
  dns: TestDns;
  gw: TestGateway;
  /** bob@acme.test, an employee's mailbox with its forwarding address. */
  bob: Awaited<ReturnType<typeof createEmployeeAccount>>;
}

/**
 * The usual world of a gateway test, as mocha hooks of the calling
 * `describe`: its own database, DNS where acme.test's mail comes from
 * 127.0.0.1 (its provider, in these tests), Bob's mailbox, and the real
 * gateway. The fields are there once the `before` hook ran.
 */
export function useGatewayWorld(label: string): GatewayWorld {
  const world = {} as GatewayWorld;
  before(async () => {
    world.store = await openTestStore(label);
    world.dns = await startDns();
    world.dns.setTxt('acme.test', 'v=spf1 ip4:127.0.0.1 -all');
    world.bob = await createEmployeeAccount(world.store, 'bob@acme.test');
    world.gw = await startTestGateway({ dbName: world.store.dbName, dnsAddress: world.dns.address });
  });
  after(async () => {
    await world.gw?.close();
    await world.dns?.stop();
    await world.store?.drop();
  });
  return world;
}
