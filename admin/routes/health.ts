import { Router } from 'express';
import { pingStore } from '../../gateway/core/db';
import type { AdminDeps } from '../types';

/** GET /healthz: 200 when the process and its store answer, 503 otherwise (docker healthcheck, load balancers). */
export function healthRouter(deps: AdminDeps): Router {
  const router = Router();
  router.get('/healthz', async (_req, res) => {
    const up = await pingStore(deps.store.conn);
    res.set('Cache-Control', 'no-store');
    res.status(up ? 200 : 503).json(up ? { status: 'ok', store: 'up' } : { status: 'unavailable', store: 'down' });
  });
  return router;
}
