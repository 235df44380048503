import { ConfigError, type Config } from '../core/config';
import { startHealthServer, type HealthCheck } from '../core/health';
import type { Logger } from '../core/log';
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

export function createLifecycle(log: Logger, what: string, onSecondSignal: string): Lifecycle {
  const parts: Array<{ name: string; stop: () => Promise<unknown> }> = [];
  let stopping = false;
  const shutdown = async (reason: string, code = 0) => {
    if (stopping) {
      log.warn(`second signal: exiting now (${onSecondSignal})`);
      process.exit(1);
    }
    stopping = true;
    log.info({ reason }, `stopping ${what}`);
    for (const { name, stop } of parts.reverse()) {
      await stop().catch((err: Error) => log.error({ err, part: name }, 'error while stopping'));
    }
    log.info(`${what} stopped`);
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  return { add: (name, stop) => parts.push({ name, stop }), shutdown };
}

/** GET /healthz on HEALTH_PORT for processes without a web server of their own. */
export async function serveHealthIfConfigured(config: Readonly<Config>, log: Logger, lifecycle: Lifecycle, check: HealthCheck): Promise<void> {
  if (config.healthPort <= 0) return;
  const health = await startHealthServer({ port: config.healthPort, host: config.bindAddress, check });
  lifecycle.add('health', () => health.close());
  log.info({ port: health.port }, 'health endpoint listening (GET /healthz)');
}

/**
 * Why a process could not start, as one line and an exit status: 78
 * (EX_CONFIG, as for invalid variables) when the operator must change the
 * setup (a port in use, an unreadable certificate, a connection string the
 * driver refuses); null for anything else (logged with its stack, status 1).
 */
export function describeStartFailure(err: unknown): { status: number; line: string } | null {
  const listen = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (err instanceof ConfigError) return { status: 78, line: err.problems.join('; ') };
  if (listen?.syscall === 'listen' && (listen.code === 'EADDRINUSE' || listen.code === 'EACCES')) {
    const why = listen.code === 'EADDRINUSE' ? 'the port is already in use (by another program, or another Postroom)' : 'permission denied (ports below 1024 need privileges)';
    return { status: 78, line: `cannot listen on ${listen.address}:${listen.port}: ${why}; choose another SMTP_PORT, ADMIN_PORT or HEALTH_PORT` };
  }
  if (err instanceof ApplianceRunningError) return { status: 1, line: err.message };
  return null;
}

export async function failStart(lifecycle: Lifecycle, log: Logger, what: string, err: unknown): Promise<void> {
  const known = describeStartFailure(err);
  if (known) log.fatal(`cannot start ${what}: ${known.line}`);
  else log.fatal({ err }, `cannot start ${what}`);
  return lifecycle.shutdown('start failed', known?.status ?? 1);
}
