import crypto from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { AppError } from '../../gateway/core/errors';
import { flash } from './auth';

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
  // Lazily created so pages without forms do not start sessions: a getter would not do, since res.render copies
  // every local (calling it) for each page; this is turned into the token only where a form prints it.
  // (A stored session for every anonymous request of a missing page filled the sessions collection.)
  res.locals.csrfToken = { toString: () => csrfToken(req) };
  if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return next();
  const sent = (req.body as Record<string, unknown> | undefined)?._csrf ?? req.get('x-csrf-token');
  const expected = req.session?.csrfToken;
  if (typeof sent === 'string' && expected && sameToken(sent, expected)) return next();
  // No signed-in session: it ended (signed out in another tab, expired, the store lost it), and its token
  // with it. Not an attack worth a dead end: send the user to sign in, then back to the form's page.
  if (!req.session?.userId) return toSignIn(req, res);
  next(new AppError('CSRF_FAILED', 'This form has expired or did not come from this site. Go back, reload the page and try again.', { status: 403 }));
}

function toSignIn(req: Request, res: Response): void {
  // Signing out of a session that is already gone is done.
  if (req.path === '/logout') return res.redirect(303, '/login');
  // The sign-in and invite forms need no session: show the same form again.
  if (req.path === '/login' || req.path.startsWith('/invite/')) {
    flash(req, 'error', 'That form had expired. Please try again.');
    return res.redirect(303, req.path);
  }
  flash(req, 'error', 'Your session has ended, so that form was not saved. Sign in and try again.');
  const back = formPage(req);
  res.redirect(303, back === '/' ? '/login' : `/login?next=${encodeURIComponent(back)}`);
}

/** The page the form was on, when the browser says and it is ours; else the inbox. */
function formPage(req: Request): string {
  const referer = req.get('referer');
  if (!referer) return '/';
  try {
    const url = new URL(referer);
    return url.host === req.get('host') && url.pathname.startsWith('/') && !url.pathname.startsWith('//') ? `${url.pathname}${url.search}` : '/';
  } catch {
    return '/';
  }
}
