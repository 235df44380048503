import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { backfillAttachedText, startMailRetention } from '../gateway/accounts';
import { ConfigError, type Config } from '../gateway/core/config';
import { deriveKey, resolveMasterKey, SecretBox } from '../gateway/core/crypto';
import type { Logger } from '../gateway/core/log';
import { startBlobSweeper, type Store } from '../gateway/store';
import { crmAfterRelease, sealWebhookUrls, startCrmWorker } from '../gateway/crm';
import { createApp, type CreateAppOptions } from './app';

export interface StartAdminOptions {
  config: Readonly<Config>;
  log: Logger;
  store: Store;
  /** Defaults: config.adminPort on config.bindAddress (tests pass 0 for a free port). */
  port?: number;
  host?: string;
  clock?: () => Date;
  imapTimeoutMs?: number;
  afterRelease?: CreateAppOptions['afterRelease'];
  /**
   * Run the CRM background worker (link backfills, link removal, webhook
   * deliveries) in this process; default true. Several processes may run it.
   */
  crmWorker?: boolean;
  /** Remove orphan blobs (gateway/store/blob-sweep.ts) hourly in this process; default true. Several may run it. */
  blobSweep?: boolean;
  /** Delete mail past Preferences → Business "Keep mail for (days)" at start and hourly; default true. Several may run it. */
  mailRetention?: boolean;
  /** Make the attached messages of mail stored before attachedText existed searchable, once (default on). */
  attachedTextBackfill?: boolean;
}

/**
 * The console serves plain HTTP; with an https PUBLIC_URL a TLS proxy is in
 * front of it and its session cookie is Secure. express-session sets a Secure
 * cookie only on a request it knows came over https, which it learns from the
 * proxy's X-Forwarded-Proto, read only with TRUST_PROXY: without it no
 * sign-in ever gets a session (the form comes back, again and again).
 */
export function assertReachableOverHttps(config: Readonly<Config>): void {
  if (!config.publicUrl.startsWith('https:') || config.trustProxy) return;
  throw new ConfigError([
    'PUBLIC_URL is https but TRUST_PROXY is false: the console behind your TLS proxy cannot tell a request came over https, '
    + 'so its Secure session cookie is never set and nobody can sign in; set TRUST_PROXY=true (the proxy must send X-Forwarded-Proto)',
  ]);
}

/**
 * Invite links are built on PUBLIC_URL, which defaults to
 * http://localhost:ADMIN_PORT: right for a console only this machine
 * reaches, wrong once it listens for others (BIND_ADDRESS=0.0.0.0, Docker),
 * where an invited employee's browser would open their own machine.
 */
export function publicUrlProblem(publicUrl: string, host: string): string | null {
  const loopback = (name: string) => name === 'localhost' || name.endsWith('.localhost') || /^127\./.test(name) || name === '::1' || name === '[::1]';
  if (!loopback(new URL(publicUrl).hostname) || loopback(host)) return null;
  return `PUBLIC_URL is ${publicUrl} but the console listens on ${host}: invite links open only on this machine; set PUBLIC_URL to the address people open (example: PUBLIC_URL=https://postroom.acme.com)`;
}

export interface RunningAdmin {
  server: http.Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

/**
 * Start the console + API: build the app, listen, sweep expired sessions.
 * The master key (SECRET_KEY or DATA_DIR/secret.key) gives two keys via
 * HKDF: one seals IMAP/SMTP secrets, the other signs session cookies.
 * `close()` stops accepting, lets in-flight requests finish (10 s at most)
 * and does not close the store (the caller owns it).
 */
export async function startAdmin(options: StartAdminOptions): Promise<RunningAdmin> {
  const log = options.log.child({ component: 'admin-server' });
  assertReachableOverHttps(options.config);
  const { key } = resolveMasterKey(options.config.secretKey, options.config.dataDir);
  const secretBox = new SecretBox(key, 'secrets');
  const crmDeps = { store: options.store, log: options.log, settings: { businessDomains: options.config.businessDomains } };
  const app = createApp({
    store: options.store,
    log: options.log,
    config: options.config,
    secretBox,
    sessionSecret: deriveKey(key, 'sessions'),
    clock: options.clock,
    imapTimeoutMs: options.imapTimeoutMs,
    afterRelease: options.afterRelease ?? crmAfterRelease(crmDeps),
  });
  const server = http.createServer(app);
  // Slow-loris guard: headers must arrive within 20 s, whole requests within 60 s.
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;
  const host = options.host ?? options.config.bindAddress;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? options.config.adminPort, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Background work starts once the port is ours: a start that fails to listen leaves nothing running.
  // The worker gets the same box the console seals webhook secrets with.
  // Webhook URLs an earlier release kept in clear are sealed before the worker reads them (it reads either).
  await sealWebhookUrls(options.store, secretBox, log).catch((err: Error) => log.warn({ err }, 'could not seal the webhook URLs stored in clear; the next start tries again'));
  const crmWorker = options.crmWorker === false ? null : startCrmWorker(crmDeps, { secretBox });
  const blobSweeper = options.blobSweep === false ? null : startBlobSweeper(options.store, options.log);
  const retention = options.mailRetention === false ? null : startMailRetention(options.store, options.log, { backfillDays: options.config.imapBackfillDays });
  retention?.kick();
  const backfill = new AbortController();
  const backfilled = options.attachedTextBackfill === false ? Promise.resolve() : backfillAttachedText(options.store, log, { signal: backfill.signal }).then(
    () => undefined,
    (err: Error) => log.warn({ err }, 'attached messages of older mail not yet made searchable; the next start continues'),
  );
  const sessions = app.locals.deps.sessions;
  sessions.startSweeping();
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info({ url, publicUrl: options.config.publicUrl }, 'admin console listening');
  const publicProblem = publicUrlProblem(options.config.publicUrl, host);
  if (publicProblem) log.warn(publicProblem);
  return {
    server,
    port,
    url,
    close: async () => {
      sessions.stopSweeping();
      backfill.abort();
      await backfilled;
      await crmWorker?.stop();
      await blobSweeper?.stop();
      await retention?.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), 10_000);
      force.unref();
      await closed;
      clearTimeout(force);
    },
  };
}
