import type { NextFunction, Request, Response } from 'express';
import { viewerTimeZone } from '../../gateway/accounts';
import { formatDate, relativeTime } from '../lib/view-helpers';
import type { AdminDeps } from '../types';

/**
 * Every page's times in the signed-in person's zone (gateway/accounts/viewer-time-zone.ts): the views call
 * formatDate() and relativeTime() as before, and this request's copies (res.locals win over app.locals) know
 * the zone.
 * Anonymous pages (sign-in, an invite link) show the business's zone.
 */
export function viewerTimeZoneLocals(deps: AdminDeps) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const timeZone = await viewerTimeZone(deps.store, req.user);
    req.timeZone = timeZone;
    res.locals.timeZone = timeZone;
    res.locals.formatDate = (value: Date | string | null | undefined) => formatDate(value, timeZone);
    res.locals.relativeTime = (value: Date | string | null | undefined) => relativeTime(value, deps.clock(), timeZone);
    next();
  };
}
