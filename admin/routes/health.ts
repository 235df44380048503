import { Router } from 'express';
import { storeHealth } from '../../gateway/core/store-writes';
import type { AdminDeps } from '../types';

/** GET /healthz: 200 when the store answers and takes writes, 503 with the problem otherwise (docker healthcheck, load balancers). */
export function healthRouter(deps: AdminDeps): Router {
  const router = Router();
  router.get('/healthz', async (_req, res) => {
    const { checks, problem } = await storeHealth(deps.store.conn, 'this process');
    const ok = checks.store === 'up' && checks.writes === 'up';
    res.set('Cache-Control', 'no-store');
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', ...checks, ...(problem ? { problem } : {}) });
  });
  return router;
}
