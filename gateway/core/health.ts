import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * GET /healthz for processes without a web server of their own (gateway,
 * syncer): 200 with JSON when every check passes, 503 otherwise. Docker's
 * HEALTHCHECK and `depends_on: service_healthy` rely on it.
 */
export type HealthCheck = () => Promise<Record<string, 'up' | 'down'>>;

export interface HealthReport {
  status: 'ok' | 'unavailable';
  checks: Record<string, 'up' | 'down'>;
}

export async function runHealthCheck(check: HealthCheck): Promise<HealthReport> {
  let checks: Record<string, 'up' | 'down'>;
  try {
    checks = await check();
  } catch {
    checks = { process: 'down' };
  }
  const ok = Object.values(checks).every((state) => state === 'up');
  return { status: ok ? 'ok' : 'unavailable', checks };
}

export async function startHealthServer(options: { port: number; host: string; check: HealthCheck }): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/healthz') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"NOT_FOUND","message":"only GET /healthz is served here"}}');
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
