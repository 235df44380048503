import { Router } from 'express';
import { getUser, listAuditEvents } from '../../gateway/accounts';
import { queryParam } from '../lib/forms';
import { requireAdmin, requireUser } from '../middleware/auth';
import type { AdminDeps } from '../types';

/** The audit log (admins): who changed what, newest first. */
export function auditRouter(deps: AdminDeps): Router {
  const router = Router();
  router.get('/audit', requireUser, requireAdmin, async (req, res) => {
    // Filters: who acted (?actor=email) or what was acted on (?targetType=user&targetId=…, linked from Users).
    const filter = { actorEmail: queryParam(req, 'actor').trim().toLowerCase(), targetType: queryParam(req, 'targetType'), targetId: queryParam(req, 'targetId') };
    const page = await listAuditEvents(deps.store, { before: queryParam(req, 'before') || undefined, ...filter });
    const target = filter.targetType && filter.targetId ? await describeTarget(deps, filter.targetType, filter.targetId) : '';
    const query = new URLSearchParams(Object.entries(filter).filter(([, value]) => value)).toString();
    res.render('audit/index', { title: 'Audit log', page, firstPage: !queryParam(req, 'before'), filter, target, query });
  });
  return router;
}

/** A heading for a target filter: a user by their email (the id is what the log stores). */
async function describeTarget(deps: AdminDeps, targetType: string, targetId: string): Promise<string> {
  if (targetType === 'user') {
    const user = await getUser(deps.store, targetId);
    if (user) return `user ${user.email}`;
  }
  return `${targetType} ${targetId}`;
}
