import { Router, type Request, type Response } from 'express';
import { acceptInvite, emailProblem, findInvite, FIRST_ADMIN_HINT, hasAdmin, MIN_PASSWORD_LENGTH, passwordProblem, signIn, type SignInOutcome } from '../../gateway/accounts';
import { isAppError } from '../../gateway/core/errors';
import { metrics } from '../../gateway/core/metrics';
import { flash } from '../middleware/auth';
import { consoleCookies } from '../middleware/cookie-names';
import { csrfToken } from '../middleware/csrf';
import { field, queryParam, safeReturnPath } from '../lib/forms';
import type { AdminDeps } from '../types';

/** Sign-in, sign-out and invite acceptance. */
export function authRouter(deps: AdminDeps): Router {
  const router = Router();

  const renderLogin = (res: Response, status: number, locals: { email?: string; error?: string; next?: string }) =>
    res.status(status).render('auth/login', { title: 'Sign in', bare: true, email: locals.email ?? '', error: locals.error ?? '', next: locals.next ?? '' });

  router.get('/login', async (req, res) => {
    if (req.user) return res.redirect(303, safeReturnPath(queryParam(req, 'next')));
    // A fresh appliance has nobody to sign in as: the operator who opens it first learns how to make the admin.
    res.locals.noAdminHint = (await hasAdmin(deps.store)) ? '' : FIRST_ADMIN_HINT;
    renderLogin(res, 200, { next: queryParam(req, 'next') });
  });

  router.post('/login', async (req: Request, res: Response) => {
    const email = field(req, 'email').trim();
    const password = field(req, 'password');
    const next = safeReturnPath(field(req, 'next'));
    const ip = req.ip ?? 'unknown';
    if (!email || !password) return renderLogin(res, 400, { email, next, error: 'Enter your email and password.' });
    // Which account a refusal concerns, so "I cannot sign in" can be looked up. Only what looks like an
    // address: a password typed into the email field must not end up in the log.
    const account = emailProblem(email) ? '(not an email address)' : email.toLowerCase();
    const verdict = deps.throttle.begin(email, ip);
    if (!verdict.allowed) {
      metrics().consoleLogins.inc({ outcome: 'throttled' });
      deps.log.info({ ip, email: account, retryAfterSeconds: verdict.retryAfterSeconds, event: 'login.throttled' }, 'sign-in refused: too many failed attempts');
      res.set('Retry-After', String(verdict.retryAfterSeconds));
      return renderLogin(res, 429, { email, next, error: `Too many failed sign-in attempts. Try again in ${verdict.retryAfterSeconds} s.` });
    }
    let outcome: SignInOutcome;
    try {
      outcome = await signIn(deps.store, email, password, deps.clock());
      if (outcome.user) verdict.attempt.succeeded();
      else verdict.attempt.failed();
    } finally {
      verdict.attempt.release();
    }
    const { user } = outcome;
    if (!user) {
      metrics().consoleLogins.inc({ outcome: 'failed' });
      deps.log.info({ ip, email: account, userId: outcome.userId, reason: outcome.refused, event: 'login.failed' }, 'sign-in failed');
      return renderLogin(res, 401, { email, next, error: 'Wrong email or password (or the user is disabled).' });
    }
    metrics().consoleLogins.inc({ outcome: 'signed_in' });
    // A new session id at sign-in (OWASP Session Management: prevents session fixation).
    await new Promise<void>((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));
    req.session.userId = user.id;
    req.session.signedInAt = deps.clock().getTime();
    csrfToken(req);
    await new Promise<void>((resolve, reject) => req.session.save((err) => (err ? reject(err) : resolve())));
    deps.log.info({ userId: user.id, ip, event: 'login' }, 'signed in');
    res.redirect(303, next);
  });

  router.post('/logout', async (req, res) => {
    await new Promise<void>((resolve) => req.session.destroy(() => resolve()));
    const cookies = consoleCookies(deps.config.publicUrl);
    res.clearCookie(cookies.session, { path: '/', secure: cookies.secure, httpOnly: true, sameSite: 'lax' });
    res.redirect(303, '/login');
  });

  router.get('/invite/:token', async (req, res) => {
    const invited = await findInvite(deps.store, String(req.params.token), deps.clock());
    if (!invited) return res.status(404).render('auth/invite-invalid', { title: 'Invite link', bare: true });
    res.render('auth/invite', { title: inviteTitle(invited), bare: true, invited, token: String(req.params.token), errors: {}, name: invited.name, minLength: MIN_PASSWORD_LENGTH });
  });

  router.post('/invite/:token', async (req, res) => {
    const token = String(req.params.token);
    const invited = await findInvite(deps.store, token, deps.clock());
    if (!invited) return res.status(404).render('auth/invite-invalid', { title: 'Invite link', bare: true });
    const password = field(req, 'password');
    const name = field(req, 'name');
    const errors: Record<string, string> = {};
    // Every problem at once, as Change password does: a short password used to be reported only after its mismatch was fixed.
    const issue = passwordProblem(password);
    if (issue) errors.password = issue;
    if (password !== field(req, 'confirm')) errors.confirm = 'does not match the password';
    if (Object.keys(errors).length === 0) {
      try {
        const user = await acceptInvite(deps.store, token, { password, name }, deps.clock());
        await new Promise<void>((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));
        req.session.userId = user.id;
        req.session.signedInAt = deps.clock().getTime();
        csrfToken(req);
        // A password reset link (the user had a password) goes back to work; an invite to adding a mailbox.
        if (invited.hasPassword) {
          flash(req, 'success', 'Your password is changed; other browsers signed in as you were signed out.');
          return res.redirect(303, '/');
        }
        flash(req, 'success', 'Welcome to Postroom. Add your mailbox to get started.');
        return res.redirect(303, '/preferences/email');
      } catch (err) {
        if (!isAppError(err) || !err.fields) throw err;
        Object.assign(errors, err.fields);
      }
    }
    res.status(400).render('auth/invite', { title: inviteTitle(invited), bare: true, invited, token, errors, name, minLength: MIN_PASSWORD_LENGTH });
  });

  return router;
}

/** An invite link sets a first password; a reset link (admin's Reset password) a new one. */
function inviteTitle(invited: { hasPassword: boolean }): string {
  return invited.hasPassword ? 'Set a new password' : 'Welcome';
}
