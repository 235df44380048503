import type { RequestHandler } from 'express';
import { metrics } from '../../gateway/core/metrics';

/**
 * Times every console and API request into postroom_http_request_seconds.
 * Health probes (every 15 s from compose) and static files are left out:
 * they would drown a small office's real traffic and say nothing about it.
 * Labels are the method and status code only, never a path (paths carry ids).
 */
export function requestMetrics(): RequestHandler {
  return (req, res, next) => {
    if (req.path === '/healthz' || req.path.startsWith('/static/')) return next();
    const started = process.hrtime.bigint();
    res.once('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics().httpRequestSeconds.observe({ method: req.method, status: String(res.statusCode) }, seconds);
    });
    next();
  };
}
