import crypto from 'node:crypto';
import { parse as parseCookies, serialize as serializeCookie } from 'cookie';
import type { NextFunction, Request, Response } from 'express';
import { AppError } from '../../gateway/core/errors';
import { flash } from './auth';
import type { ConsoleCookies } from './cookie-names';

/**
 * Synchronizer-token CSRF defence (OWASP CSRF Prevention Cheat Sheet): a
 * random token lives in the server-side session and every form carries it
 * in a hidden `_csrf` field. SameSite=Lax cookies already stop most
 * cross-site POSTs; the token covers the rest (same-site subdomains, old
 * browsers). The JSON API is exempt: it authenticates with bearer tokens,
 * which a browser never attaches on its own.
 *
 * The forms of visitors who have not signed in (sign-in, invite and reset
 * links) use the cheat sheet's signed double-submit cookie instead: a random
 * value in a cookie, and in the form its HMAC under a server key. Storing a
 * session for them would let anyone add a row to the store with every GET of
 * the sign-in page. Such a token is never accepted from a signed-in session,
 * whose forms can do harm: a cookie planted from a sibling subdomain must not
 * unlock them.
 */
export function csrfToken(req: Request): string {
  if (!req.session.csrfToken) req.session.csrfToken = crypto.randomBytes(32).toString('base64url');
  return req.session.csrfToken;
}

const NONCE = /^[A-Za-z0-9_-]{43}$/;

export interface CsrfOptions {
  /** Signs anonymous visitors' form tokens (derived from the session secret). */
  secret: string | Buffer;
  /** The cookie an anonymous visitor's form tokens are bound to (`__Host-` over HTTPS), and whether it is Secure. */
  cookies: Pick<ConsoleCookies, 'secure' | 'anonymousForms'>;
}

function anonymousNonce(req: Request, cookieName: string): string | undefined {
  const value = req.headers.cookie ? parseCookies(req.headers.cookie)[cookieName] : undefined;
  return value && NONCE.test(value) ? value : undefined;
}

/** Constant-time comparison of a token sent with one expected (also the OAuth start link's). */
export function sameToken(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && crypto.timingSafeEqual(left, right);
}

export function csrfProtection(options: CsrfOptions): (req: Request, res: Response, next: NextFunction) => void {
  const key = crypto.createHmac('sha256', options.secret).update('postroom anonymous form tokens').digest();
  const sign = (nonce: string) => crypto.createHmac('sha256', key).update(nonce).digest('base64url');
  return (req, res, next) => {
    let token: string | undefined;
    const formToken = (): string => {
      if (req.session?.userId) return csrfToken(req);
      let nonce = anonymousNonce(req, options.cookies.anonymousForms);
      if (!nonce) {
        nonce = crypto.randomBytes(32).toString('base64url');
        res.append('Set-Cookie', serializeCookie(options.cookies.anonymousForms, nonce, { httpOnly: true, sameSite: 'lax', secure: options.cookies.secure, path: '/' }));
      }
      return sign(nonce);
    };
    // Lazily made, so pages without forms set no cookie and start no session: a getter would not do, since
    // res.render copies every local (calling it) for each page; this turns into the token only where a form
    // prints it, and into the same one for every form of the page.
    res.locals.csrfToken = { toString: () => (token ??= formToken()) };
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return next();
    const sent = (req.body as Record<string, unknown> | undefined)?._csrf ?? req.get('x-csrf-token');
    if (typeof sent === 'string') {
      const expected = req.session?.csrfToken;
      if (expected && sameToken(sent, expected)) return next();
      const nonce = req.session?.userId ? undefined : anonymousNonce(req, options.cookies.anonymousForms);
      if (nonce && sameToken(sent, sign(nonce))) return next();
    }
    // No signed-in session: it ended (signed out in another tab, expired, the store lost it), and its token
    // with it. Not an attack worth a dead end: send the user to sign in, then back to the form's page.
    if (!req.session?.userId) return toSignIn(req, res);
    next(new AppError('CSRF_FAILED', 'This form has expired or did not come from this site. Go back, reload the page and try again.', { status: 403 }));
  };
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
