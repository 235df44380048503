import { Router } from 'express';
import { getUser, listAuditEvents } from '../../gateway/accounts';
import { addDays, isCalendarDay, startOfDayInZone } from '../../gateway/core/time-zone';
import { queryParam } from '../lib/forms';
import { requireAdmin, requireUser } from '../middleware/auth';
import type { AdminDeps } from '../types';

/** The audit log (admins): who changed what, newest first. */
export function auditRouter(deps: AdminDeps): Router {
  const router = Router();
  router.get('/audit', requireUser, requireAdmin, async (req, res) => {
    // Filters: who acted (?actor=email) or what was acted on (?targetType=user&targetId=…, linked from Users),
    // and one day (?day=2026-03-29) of the admin's clock, from its midnight to the next.
    const filter = { actorEmail: queryParam(req, 'actor').trim().toLowerCase(), targetType: queryParam(req, 'targetType'), targetId: queryParam(req, 'targetId') };
    const day = queryParam(req, 'day').trim();
    const dayError = day && !isCalendarDay(day) ? 'Day must be a date written YYYY-MM-DD (example: 2026-03-29).' : '';
    const range = day && !dayError ? { from: startOfDayInZone(day, req.timeZone!), until: startOfDayInZone(addDays(day, 1), req.timeZone!) } : {};
    const page = dayError ? { events: [], nextBefore: null } : await listAuditEvents(deps.store, { before: queryParam(req, 'before') || undefined, ...filter, ...range });
    const target = filter.targetType && filter.targetId ? await describeTarget(deps, filter.targetType, filter.targetId) : '';
    const query = new URLSearchParams(Object.entries({ ...filter, day }).filter(([, value]) => value)).toString();
    res.status(dayError ? 400 : 200).render('audit/index', { title: 'Audit log', page, firstPage: !queryParam(req, 'before'), filter, day, dayError, target, query });
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
