import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * GET /healthz for processes without a web server of their own (gateway,
 * syncer): 200 with JSON when every check passes, 503 otherwise. Docker's
 * HEALTHCHECK and `depends_on: service_healthy` rely on it. GET /metrics
 * beside it for Prometheus: HEALTH_PORT is an internal port (compose does
 * not publish it), so the metrics need no credentials of their own.
 */
export interface HealthChecks {
  checks: Record<string, 'up' | 'down'>;
  /** What is wrong, in words an operator can act on; only when a check is down. */
  problem?: string;
}

export type HealthCheck = () => Promise<HealthChecks>;

export interface HealthReport extends HealthChecks {
  status: 'ok' | 'unavailable';
}

export async function runHealthCheck(check: HealthCheck): Promise<HealthReport> {
  let result: HealthChecks;
  try {
    result = await check();
  } catch (err) {
    result = { checks: { process: 'down' }, problem: `the health check failed: ${(err as Error)?.message ?? String(err)}` };
  }
  const ok = Object.values(result.checks).every((state) => state === 'up');
  return { status: ok ? 'ok' : 'unavailable', ...result };
}

/** The Prometheus text of GET /metrics (gateway/core/metrics.ts renderMetrics). */
export type MetricsSource = () => Promise<{ contentType: string; body: string }>;

export async function startHealthServer(options: { port: number; host: string; check: HealthCheck; metrics?: MetricsSource }): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const path = req.url?.split('?')[0];
    if (req.method === 'GET' && path === '/metrics' && options.metrics) {
      options.metrics().then(
        ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(body),
        () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics could not be collected\n'),
      );
      return;
    }
    if (req.method !== 'GET' || path !== '/healthz') {
      const served = options.metrics ? 'GET /healthz and GET /metrics are' : 'only GET /healthz is';
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'NOT_FOUND', message: `${served} served here` } }));
      return;
    }
    void runHealthCheck(options.check).then((report) => {
      res.writeHead(report.status === 'ok' ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(report));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
