import { Router } from 'express';
import { listAuditEvents } from '../../gateway/accounts';
import { queryParam } from '../lib/forms';
import { requireAdmin, requireUser } from '../middleware/auth';
import type { AdminDeps } from '../types';

/** The audit log (admins): who changed what, newest first. */
export function auditRouter(deps: AdminDeps): Router {
  const router = Router();
  router.get('/audit', requireUser, requireAdmin, async (req, res) => {
    const page = await listAuditEvents(deps.store, { before: queryParam(req, 'before') || undefined });
    res.render('audit/index', { title: 'Audit log', page, firstPage: !queryParam(req, 'before') });
  });
  return router;
}
