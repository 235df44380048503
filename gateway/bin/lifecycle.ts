import type { Connection } from 'mongoose';
import { ConfigError, type Config } from '../core/config';
import { storeHealth, storeWriteProblem, writeStreakOf } from '../core/store-writes';
import { startHealthServer, type HealthCheck } from '../core/health';
import type { Logger } from '../core/log';
import { renderMetrics } from '../core/metrics';
import type { Gateway } from '../haraka/launcher';
import { SecretKeyMismatchError } from '../accounts/secret-key-check';
import { ApplianceRunningError } from '../store';

/**
 * The shutdown discipline every Postroom process shares: SIGINT/SIGTERM stop
 * the parts in reverse start order (each part finishes its in-flight work:
 * Haraka its transactions, the syncer its batch), a second signal exits at
 * once. Exiting early is always safe: nothing is acknowledged (250, cursor)
 * before it is stored.
 */
export interface Lifecycle {
  /** Register a part; parts stop in reverse order. */
  add(name: string, stop: () => Promise<unknown>): void;
  shutdown(reason: string, code?: number): Promise<void>;
}

/**
 * How long one part may take to stop before the next is stopped anyway.
 * Haraka gets 25 s for its transactions (gateway/haraka/launcher.ts) and the
 * console 10 s for its requests; a part still busy after this (a background
 * pass stuck on a slow store) must not keep Ctrl-C from stopping the
 * appliance, and leaving it is safe for the reason above.
 */
export const PART_STOP_TIMEOUT_MS = 30_000;

export function createLifecycle(log: Logger, what: string, onSecondSignal: string, options: { partStopTimeoutMs?: number } = {}): Lifecycle {
  const parts: Array<{ name: string; stop: () => Promise<unknown> }> = [];
  const timeoutMs = options.partStopTimeoutMs ?? PART_STOP_TIMEOUT_MS;
  let stopping = false;
  const shutdown = async (reason: string, code = 0) => {
    if (stopping) {
      log.warn(`second signal: exiting now (${onSecondSignal})`);
      process.exit(1);
    }
    stopping = true;
    log.info({ reason }, `stopping ${what}`);
    for (const { name, stop } of parts.reverse()) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), timeoutMs);
      });
      const outcome = await Promise.race([stop().catch((err: Error) => log.error({ err, part: name }, 'error while stopping')), late]);
      clearTimeout(timer);
      if (outcome === 'late') log.warn({ part: name, waitedMs: timeoutMs }, `${name} did not stop within ${timeoutMs / 1000} s; stopping the rest anyway (${onSecondSignal})`);
    }
    log.info(`${what} stopped`);
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  return { add: (name, stop) => parts.push({ name, stop }), shutdown };
}

/**
 * /healthz of a process with a store connection: does the store answer and
 * take writes — the probe's, this process's mail (`what` it is), and for a
 * gateway the mail of its Haraka child — and is Haraka up.
 */
function processHealth(conn: Connection, what: string, gateway?: Pick<Gateway, 'isUp' | 'metrics'>): HealthCheck {
  return async () => {
    const store = await storeHealth(conn, what);
    if (!gateway) return store;
    const child = await gateway.metrics();
    const refused = child ? storeWriteProblem(writeStreakOf(child), 'the SMTP gateway') : undefined;
    const smtp = gateway.isUp() ? 'up' : 'down';
    return {
      checks: { ...store.checks, ...(refused ? { writes: 'down' as const } : {}), smtp },
      problem: store.problem ?? refused ?? (smtp === 'down' ? 'the SMTP server (Haraka) is not running' : undefined),
    };
  };
}

/**
 * GET /healthz and GET /metrics on HEALTH_PORT. `gateway`: whose Haraka
 * child's metrics to merge into this process's own.
 */
export async function serveHealthIfConfigured(
  config: Readonly<Config>,
  log: Logger,
  lifecycle: Lifecycle,
  subject: { conn: Connection; what: string; gateway?: Pick<Gateway, 'isUp' | 'metrics'> },
): Promise<void> {
  if (config.healthPort <= 0) return;
  const { gateway } = subject;
  const metrics = async () => {
    const child = gateway ? await gateway.metrics() : null;
    return renderMetrics(child ? [child] : []);
  };
  const check = processHealth(subject.conn, subject.what, gateway);
  const health = await startHealthServer({ port: config.healthPort, host: config.bindAddress, check, metrics });
  lifecycle.add('health', () => health.close());
  log.info({ port: health.port }, 'health endpoint listening (GET /healthz, GET /metrics)');
}

/** File-system errors that mean DATA_DIR cannot be written, with the words an operator searches for. */
const UNWRITABLE: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'a part of the path is a file, not a directory',
};

/**
 * Why a process could not start, as one line and an exit status: 78
 * (EX_CONFIG, as for invalid variables) when the operator must change the
 * setup (a port in use, an unreadable certificate, a connection string the
 * driver refuses, a DATA_DIR it cannot write: a volume owned by root, a full
 * disk); null for anything else (logged with its stack, status 1).
 */
export type PortSettings = Partial<Pick<Config, 'smtpPort' | 'adminPort' | 'healthPort'>>;

export function describeStartFailure(err: unknown, dataDir?: string, ports: PortSettings = {}): { status: number; line: string } | null {
  const failure = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (err instanceof ConfigError) return { status: 78, line: err.problems.join('; ') };
  if (failure?.syscall === 'listen' && (failure.code === 'EADDRINUSE' || failure.code === 'EACCES')) {
    const why = failure.code === 'EADDRINUSE' ? 'the port is already in use (by another program, or another Postroom)' : 'permission denied (ports below 1024 need privileges)';
    // Name the variable whose port it is, so the operator changes the right one.
    const named = ([['SMTP_PORT', ports.smtpPort], ['ADMIN_PORT', ports.adminPort], ['HEALTH_PORT', ports.healthPort]] as const).filter(([, value]) => value && value === failure.port).map(([name]) => name);
    const choose = named.length > 0 ? `choose another ${named.join(' and ')} (now ${failure.port})` : 'choose another SMTP_PORT, ADMIN_PORT or HEALTH_PORT';
    return { status: 78, line: `cannot listen on ${failure.address}:${failure.port}: ${why}; ${choose}` };
  }
  if (failure?.syscall === 'listen' && failure.code === 'EADDRNOTAVAIL') {
    return { status: 78, line: `cannot listen on ${failure.address}:${failure.port}: ${failure.address} is not an address of this machine; set BIND_ADDRESS to one of its addresses (127.0.0.1, or 0.0.0.0 for all)` };
  }
  const inDataDir = dataDir !== undefined && typeof failure?.path === 'string' && (failure.path === dataDir || failure.path.startsWith(`${dataDir}/`));
  if (inDataDir && failure.code && UNWRITABLE[failure.code]) {
    const uid = process.getuid?.();
    return {
      status: 78,
      line: `cannot write ${failure.path}: ${UNWRITABLE[failure.code]} (${failure.code}); DATA_DIR=${dataDir} must be a directory with free space that this process${uid === undefined ? '' : ` (uid ${uid})`} can write (in Docker: a volume owned by the node user, uid 1000)`,
    };
  }
  if (err instanceof SecretKeyMismatchError) return { status: 78, line: err.message };
  if (err instanceof ApplianceRunningError) return { status: 1, line: err.message };
  return null;
}

export async function failStart(lifecycle: Lifecycle, log: Logger, what: string, err: unknown, config?: Pick<Config, 'dataDir'> & PortSettings): Promise<void> {
  const known = describeStartFailure(err, config?.dataDir, config);
  if (known) log.fatal(`cannot start ${what}: ${known.line}`);
  else log.fatal({ err }, `cannot start ${what}`);
  return lifecycle.shutdown('start failed', known?.status ?? 1);
}
