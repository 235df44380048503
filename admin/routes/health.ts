import { Router } from 'express';
import { storeHealth } from '../../gateway/core/store-writes';
import type { AdminDeps } from '../types';

/**
 * The problem as anyone may read it: the console's port is often public (behind the TLS proxy), and the
 * driver's error names the store's address ("connect ECONNREFUSED 10.0.3.7:27017", or the embedded
 * store's socket path). The log has it whole.
 */
function publicProblem(problem: string): string {
  return problem.replace(/^(store does not answer): [\s\S]*$/, "$1 (the console's log has the error)");
}

/** GET /healthz: 200 when the store answers and takes writes, 503 with the problem otherwise (docker healthcheck, load balancers). */
export function healthRouter(deps: AdminDeps): Router {
  const router = Router();
  let logged = '';
  router.get('/healthz', async (_req, res) => {
    const { checks, problem } = await storeHealth(deps.store.conn, 'this process');
    const ok = checks.store === 'up' && checks.writes === 'up';
    // Once per problem, not once per probe (a healthcheck asks every 15 s): its counts ("the last 3 messages",
    // "the latest 12 s ago") move on at every probe while the problem stays the same.
    const kind = (problem ?? '').replace(/\d+/g, '#').replace(/\bmessages\b/g, 'message');
    if (problem && kind !== logged) deps.log.warn({ problem, event: 'health.unavailable' }, 'health check: the store is not usable');
    logged = kind;
    res.set('Cache-Control', 'no-store');
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', ...checks, ...(problem ? { problem: publicProblem(problem) } : {}) });
  });
  return router;
}
