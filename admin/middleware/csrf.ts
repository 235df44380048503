import crypto from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { AppError } from '../../gateway/core/errors';

/**
 * Synchronizer-token CSRF defence (OWASP CSRF Prevention Cheat Sheet): a
 * random token lives in the server-side session and every form carries it
 * in a hidden `_csrf` field. SameSite=Lax cookies already stop most
 * cross-site POSTs; the token covers the rest (same-site subdomains, old
 * browsers). The JSON API is exempt: it authenticates with bearer tokens,
 * which a browser never attaches on its own.
 */
export function csrfToken(req: Request): string {
  if (!req.session.csrfToken) req.session.csrfToken = crypto.randomBytes(32).toString('base64url');
  return req.session.csrfToken;
}

function sameToken(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && crypto.timingSafeEqual(left, right);
}

export function csrfProtection(req: Request, res: Response, next: NextFunction): void {
  // Lazily created so pages without forms do not start sessions.
  Object.defineProperty(res.locals, 'csrfToken', { get: () => csrfToken(req), enumerable: true, configurable: true });
  if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return next();
  const sent = (req.body as Record<string, unknown> | undefined)?._csrf ?? req.get('x-csrf-token');
  const expected = req.session?.csrfToken;
  if (typeof sent !== 'string' || !expected || !sameToken(sent, expected)) {
    return next(new AppError('CSRF_FAILED', 'This form has expired or did not come from this site. Go back, reload the page and try again.', { status: 403 }));
  }
  next();
}
