import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import net from 'node:net';
import readline from 'node:readline';
import type { Config } from '../core/config';
import type { Logger } from '../core/log';
import type { MetricSnapshot } from '../core/metrics';
import { ensureTlsCertificate } from '../mail/tls-cert';
import { writeInstance } from './instance';
import { STORE_DB_ENV, STORE_URI_ENV, type GatewayRuntimeSettings } from './runtime-settings';

/**
 * Runs Haraka as a supervised child process. Haraka installs process-wide
 * handlers (uncaughtException → exit) and starts listening as soon as it is
 * required, so it cannot live inside another process; the gateway process
 * writes the instance configuration from Config, spawns
 * `node …/haraka/bin/haraka -c DIR`, relays its log lines, restarts it with
 * a capped backoff when it dies, and stops it gracefully (SIGINT, which
 * Haraka handles; SIGTERM only when it is PID 1).
 */

export interface StartGatewayOptions {
  config: Readonly<Config>;
  log: Logger;
  /** Store for the plugins (passed to Haraka in its environment, never written to disk). */
  mongoUri: string;
  /** Database name when it is not part of mongoUri (tests). */
  dbName?: string;
  /** Listen port instead of config.smtpPort; 0 picks a free one (tests). */
  port?: number;
  /** Where the runtime instance is written; default DATA_DIR/haraka. */
  instanceDir?: string;
  /** How long recipient lookups are reused; default 3000 ms. */
  recipientCacheMs?: number;
  /** Delay of each refusal past the soft error limit (plugins/postroom-limits.ts); default 1000 ms. */
  errorDelayMs?: number;
  /** Deadline of one line (default 5 minutes) and of one message's DATA (default 30 minutes): plugins/postroom-limits.ts. */
  lineTimeoutMs?: number;
  dataTimeoutMs?: number;
  /** How long to wait for Haraka to listen. */
  startTimeoutMs?: number;
  /** Extra environment for the Haraka child (tests: a memory probe). */
  env?: NodeJS.ProcessEnv;
}

export interface Gateway {
  /** The port SMTP listens on (may change after a restart when started with port 0). */
  readonly port: number;
  /** PID of the current Haraka process. */
  readonly pid: number | undefined;
  /** True while a Haraka child is up and listening. */
  isUp(): boolean;
  /** The Haraka child's metrics (gateway/core/metrics.ts), asked over IPC; null while it is down or does not answer. */
  metrics(): Promise<MetricSnapshot | null>;
  close(): Promise<void>;
}

/** How long /metrics waits for a busy Haraka to answer before serving the parent's own metrics alone. */
const METRICS_TIMEOUT_MS = 2000;

const PINO_LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
const HARAKA_LEVELS: Record<string, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  data: 'trace', protocol: 'trace', debug: 'debug', info: 'debug', notice: 'info', warn: 'warn', error: 'error', crit: 'fatal', alert: 'fatal', emerg: 'fatal',
};

/**
 * What Haraka prints on stdout while it starts, before its own log level
 * applies: it says nothing our "SMTP gateway started" line does not, and
 * "npm install iconv" reads as an instruction to the operator. Also the
 * debug line mailauth prints with console.log for a DKIM signature whose
 * l= is longer than the body ("TOTAL 120 EXPECTING 500"): the verdict says
 * it. Debug only.
 */
const HARAKA_STARTUP_CHATTER = [
  /^Using iconv-lite only\b/, /^loglevel: /, /^log format: /, /^Starting up Haraka version /, /^loaded TLD files: /, /^loaded Public Suffixes: /,
  /^TOTAL \d+ EXPECTING \d+$/,
];

/**
 * Re-emit one line of the child's output through our logger: the plugins'
 * pino lines keep their fields (they carry their own component), Haraka's
 * JSON lines and any plain text go under component "haraka".
 */
export function relayLine(log: Logger, harakaLog: Logger, line: string, stream: 'stdout' | 'stderr'): void {
  if (!line.trim()) return;
  if (line.startsWith('{')) {
    try {
      const record = JSON.parse(line) as Record<string, unknown>;
      if (typeof record.level === 'number') {
        const { level, msg, time: _time, pid: _pid, hostname: _hostname, ...fields } = record;
        log[PINO_LEVELS[level as number] ?? 'info'](fields, typeof msg === 'string' ? msg : '');
        return;
      }
      const level = HARAKA_LEVELS[String(record.level ?? '').toLowerCase()] ?? 'info';
      const { message, msg, level: _level, ...fields } = record;
      harakaLog[level](fields, String(message ?? msg ?? ''));
      return;
    } catch {
      // not JSON after all: fall through
    }
  }
  if (stream === 'stdout' && HARAKA_STARTUP_CHATTER.some((pattern) => pattern.test(line.trim()))) harakaLog.debug(line.trim());
  else harakaLog[stream === 'stderr' ? 'warn' : 'info'](line);
}

/**
 * glibc's malloc raises its mmap threshold (default 128 KiB) to the size of
 * each large mapped block it frees, up to 32 MiB (mallopt(3),
 * M_MMAP_THRESHOLD, "dynamic mmap threshold"). After the first 1 MB Buffer
 * (a long header line, a decoded attachment chunk) is freed, later ones come
 * from the main heap instead of their own mappings, interleave there with
 * long-lived small blocks, and stay resident once freed: that heap only
 * shrinks from its top. Measured with the bad-input corpus
 * (tests/robustness/bad-input.robust.ts), after a full GC the V8 heap and
 * the Buffers are back at their baseline, but glibc's main heap has grown
 * from 7 MB to 64-100 MB and keeps it; the peak during the corpus is about
 * 330 MB. Pinning the threshold at its default value turns the dynamic raise
 * off, so large blocks get their own mappings and go back to the system when
 * freed: main heap ~55 MB after the corpus, peak 210-270 MB. Smaller blocks
 * (64 KiB socket reads) are unaffected, so the hot path makes no extra
 * system calls (a 64 KiB threshold would keep ~30 MB less but costs an
 * mmap/munmap per socket read). Per-thread arenas hold none of this (the
 * growth is in the main heap), so MALLOC_ARENA_MAX does not help (measured).
 * An operator's own GLIBC_TUNABLES threshold wins; other allocators (musl,
 * jemalloc) ignore the variable.
 */
export const MALLOC_MMAP_THRESHOLD_TUNABLE = 'glibc.malloc.mmap_threshold=131072';

/** The environment Haraka runs with: the parent's, plus the malloc tuning above. */
export function harakaEnvironment(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const tunables = base.GLIBC_TUNABLES ?? '';
  if (/(^|:)glibc\.malloc\.mmap_threshold=/.test(tunables)) return { ...base };
  return { ...base, GLIBC_TUNABLES: tunables ? `${tunables}:${MALLOC_MMAP_THRESHOLD_TUNABLE}` : MALLOC_MMAP_THRESHOLD_TUNABLE };
}

export async function startGateway(options: StartGatewayOptions): Promise<Gateway> {
  const { config } = options;
  const log = options.log.child({ component: 'gateway' });
  const harakaLog = options.log.child({ component: 'haraka' });
  const tls = ensureTlsCertificate({
    dataDir: config.dataDir,
    hostname: config.gatewayDomain,
    certFile: config.tlsCertFile,
    keyFile: config.tlsKeyFile,
    log,
  });
  const dir = options.instanceDir ?? path.join(config.dataDir, 'haraka');
  const runtime: GatewayRuntimeSettings = {
    gatewayDomain: config.gatewayDomain,
    businessDomains: [...config.businessDomains],
    dnsServers: [...config.dnsServers],
    dnsCacheSeconds: config.dnsCacheSeconds,
    maxMessageSize: config.smtpMaxMessageSize,
    maxRecipients: config.smtpMaxRecipients,
    maxConnections: config.smtpMaxConnections,
    maxConnectionsPerClient: config.smtpMaxConnectionsPerClient,
    logLevel: config.logLevel,
    recipientCacheMs: options.recipientCacheMs ?? 3000,
    errorDelayMs: options.errorDelayMs ?? 1000,
    lineTimeoutMs: options.lineTimeoutMs ?? 5 * 60_000,
    dataTimeoutMs: options.dataTimeoutMs ?? 30 * 60_000,
  };
  writeInstance({
    dir,
    bindAddress: config.bindAddress,
    port: options.port ?? config.smtpPort,
    hostname: config.gatewayDomain,
    tls,
    runtime,
  });

  // Haraka reports a port in use with stack traces and exit status 1; ask first, so the operator gets
  // describeStartFailure's one line naming SMTP_PORT (exit 78).
  const listenPort = options.port ?? config.smtpPort;
  if (listenPort > 0) await assertPortFree(config.bindAddress, listenPort);

  const harakaBin = require.resolve('haraka/bin/haraka');
  const env = harakaEnvironment({ ...process.env, ...options.env, [STORE_URI_ENV]: options.mongoUri, [STORE_DB_ENV]: options.dbName ?? '' });
  let child: ChildProcess | undefined;
  let port = 0;
  let up = false;
  let stopping = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let failures = 0;
  const metricsWaiting = new Map<number, (snapshot: MetricSnapshot | null) => void>();
  let metricsRequests = 0;

  /** Spawn one Haraka; resolves with its port once it listens, rejects if it exits or stalls first. */
  const spawnOnce = () =>
    new Promise<number>((resolve, reject) => {
      const recent: string[] = [];
      // detached: its own process group, so a terminal's Ctrl-C reaches only us and we stop Haraka once, gracefully.
      const proc = spawn(process.execPath, [harakaBin, '-c', dir], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true });
      child = proc;
      for (const stream of ['stdout', 'stderr'] as const) {
        readline.createInterface({ input: proc[stream]! }).on('line', (line) => {
          recent.push(line);
          if (recent.length > 30) recent.shift();
          relayLine(options.log, harakaLog, line, stream);
        });
      }
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`Haraka did not start listening within ${options.startTimeoutMs ?? 30000} ms:\n${recent.join('\n')}`));
      }, options.startTimeoutMs ?? 30000);
      proc.on('message', (message: { type?: string; port?: number; id?: number; snapshot?: MetricSnapshot }) => {
        if (message?.type === 'postroom-metrics') {
          metricsWaiting.get(message.id ?? 0)?.(message.snapshot ?? null);
          return;
        }
        if (message?.type !== 'postroom-gateway-ready') return;
        clearTimeout(timer);
        up = true;
        resolve(message.port ?? 0);
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        const wasUp = up;
        up = false;
        if (!wasUp) {
          reject(new Error(`Haraka exited during start (code ${code}, signal ${signal}):\n${recent.join('\n')}`));
          return;
        }
        if (stopping) return;
        failures++;
        const delay = Math.min(1000 * 2 ** (failures - 1), 30000);
        log.error({ code, signal, restartInMs: delay, lastOutput: recent.slice(-5) }, 'Haraka exited unexpectedly; restarting');
        restartTimer = setTimeout(() => void restart(), delay);
      });
    });

  const restart = async (): Promise<void> => {
    if (stopping) return;
    try {
      port = await spawnOnce();
      log.info({ port, pid: child?.pid }, 'Haraka restarted');
      // A restart that stays up for a minute resets the backoff.
      setTimeout(() => {
        if (up) failures = 0;
      }, 60000).unref();
    } catch (err) {
      if (stopping) return;
      failures++;
      const delay = Math.min(1000 * 2 ** (failures - 1), 30000);
      log.error({ err, restartInMs: delay }, 'Haraka failed to restart');
      restartTimer = setTimeout(() => void restart(), delay);
    }
  };

  port = await spawnOnce();
  log.info({ port, pid: child?.pid, instance: dir, tls: tls.selfSigned ? 'self-signed' : tls.certFile }, 'SMTP gateway started');

  const stopChild = (proc: ChildProcess) =>
    new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      const killer = setTimeout(() => proc.kill('SIGKILL'), 25000);
      proc.once('exit', () => {
        clearTimeout(killer);
        resolve();
      });
      proc.kill('SIGINT');
    });

  return {
    get port() {
      return port;
    },
    get pid() {
      return child?.pid;
    },
    isUp: () => up,
    metrics: () => {
      const proc = child;
      if (!proc || !up || !proc.connected) return Promise.resolve(null);
      const id = ++metricsRequests;
      return new Promise((resolve) => {
        const done = (snapshot: MetricSnapshot | null) => {
          clearTimeout(timer);
          metricsWaiting.delete(id);
          resolve(snapshot);
        };
        const timer = setTimeout(() => done(null), METRICS_TIMEOUT_MS);
        metricsWaiting.set(id, done);
        proc.send({ type: 'postroom-metrics-request', id }, (err) => {
          if (err) done(null);
        });
      });
    },
    close: async () => {
      stopping = true;
      if (restartTimer) clearTimeout(restartTimer);
      if (child) await stopChild(child);
      log.info('SMTP gateway stopped');
    },
  };
}

/** Rejects with the listen error (EADDRINUSE, EACCES) when address:port cannot be listened on; frees it at once otherwise. */
function assertPortFree(address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen({ port, host: address, exclusive: true }, () => probe.close(() => resolve()));
  });
}
