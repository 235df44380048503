import type { NextFunction, Request, Response } from 'express';
import { getUser, parseObjectId } from '../../gateway/accounts';
import { AppError } from '../../gateway/core/errors';
import type { AdminDeps } from '../types';

/**
 * However busy a session is kept, it ends this long after its sign-in: a
 * console left open on a shared desk, or a stolen cookie, is not good for ever
 * (each request otherwise renews the 12 hours of idle time).
 */
export const SESSION_ABSOLUTE_MS = 7 * 24 * 3600 * 1000;

/**
 * Load the signed-in user on every request. A user who was disabled or
 * deleted since signing in loses the session at once.
 */
export function loadSessionUser(deps: AdminDeps) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const userId = req.session?.userId;
    if (userId) {
      const user = await getUser(deps.store, userId);
      // Signed in before the password last changed (elsewhere, or by a reset): that session is over.
      const signedInAt = req.session.signedInAt ?? 0;
      const outdated =
        Boolean(user?.passwordChangedAt && signedInAt < user.passwordChangedAt.getTime()) || deps.clock().getTime() - signedInAt > SESSION_ABSOLUTE_MS;
      if (user && !user.disabled && !outdated) {
        req.user = user;
        req.viewer = { id: parseObjectId(user.id)!, role: user.role };
        req.actor = { id: req.viewer.id, email: user.email, ip: req.ip };
        res.locals.user = user;
      } else {
        // A fresh, empty session: the old id (and its data) is gone for good.
        await new Promise<void>((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));
      }
    }
    next();
  };
}

/** Console pages need a signed-in user; others go to the sign-in page and come back. */
export function requireUser(req: Request, res: Response, next: NextFunction): void {
  if (req.user) return next();
  if (req.method === 'GET') {
    const target = req.originalUrl.startsWith('/') && !req.originalUrl.startsWith('//') ? req.originalUrl : '/';
    return res.redirect(303, `/login${target === '/' ? '' : `?next=${encodeURIComponent(target)}`}`);
  }
  next(new AppError('UNAUTHENTICATED', 'Your session has ended. Sign in again.', { status: 401 }));
}

export function requireAdmin(req: Request, _res: Response, next: NextFunction): void {
  if (req.user?.role === 'admin') return next();
  // 404, not 403: employees learn nothing about admin pages.
  next(new AppError('NOT_FOUND', 'Page not found', { status: 404 }));
}

/** Queue a message for the next page (shown once). */
export function flash(req: Request, type: 'success' | 'error' | 'info', text: string, about: { sendKey?: string } = {}): void {
  req.session.flash = [...(req.session.flash ?? []), { type, text, ...(about.sendKey ? { sendKey: about.sendKey } : {}) }];
}
