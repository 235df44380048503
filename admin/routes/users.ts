import { Router, type Request, type Response } from 'express';
import { inviteUser, listUsers, makePasswordResetLink, setUserDisabled, setUserRole } from '../../gateway/accounts';
import { isAppError } from '../../gateway/core/errors';
import { field } from '../lib/forms';
import { flash, requireAdmin, requireUser } from '../middleware/auth';
import type { AdminDeps } from '../types';

const ROLES_FOR_FORMS = [
  { value: 'employee', label: 'Employee — own mail accounts and mail' },
  { value: 'admin', label: 'Admin — everything, users and settings' },
];

/** Users (admins only): invite with an expiring link, password reset links, roles, disable/enable. */
export function usersRouter(deps: AdminDeps): Router {
  const router = Router();
  router.use('/users', requireUser, requireAdmin);

  async function render(req: Request, res: Response, status = 200, extra: Record<string, unknown> = {}) {
    const users = await listUsers(deps.store);
    res.status(status).render('users/index', { title: 'Users', users, roles: ROLES_FOR_FORMS, errors: {}, form: { email: '', role: 'employee', name: '' }, invite: null, ...extra });
  }

  router.get('/users', (req, res) => render(req, res));

  router.post('/users/invite', async (req, res) => {
    const form = { email: field(req, 'email'), role: field(req, 'role') || 'employee', name: field(req, 'name') };
    try {
      const invite = await inviteUser(deps.store, form, req.actor!, { now: deps.clock() });
      const link = `${deps.config.publicUrl}/invite/${invite.token}`;
      if (invite.replacedLink) flash(req, 'info', `A new invite link was made for ${invite.user.email}; the earlier link no longer works.`);
      // Shown once on this response: only the hash is stored.
      return render(req, res, 201, { invite: { email: invite.user.email, link, expiresAt: invite.expiresAt, reset: false } });
    } catch (err) {
      if (isAppError(err) && err.fields) return render(req, res, err.status, { errors: err.fields, form });
      throw err;
    }
  });

  // For a user who forgot their password: a link they set a new one with, rather than a password the admin picks and sends.
  router.post('/users/:id/reset-link', async (req, res) => {
    try {
      const reset = await makePasswordResetLink(deps.store, String(req.params.id), req.actor!, { now: deps.clock() });
      const link = `${deps.config.publicUrl}/invite/${reset.token}`;
      if (reset.replacedLink) flash(req, 'info', `An earlier link for ${reset.user.email} no longer works.`);
      return render(req, res, 201, { invite: { email: reset.user.email, link, expiresAt: reset.expiresAt, reset: true } });
    } catch (err) {
      if (!isAppError(err) || err.status >= 500 || err.status === 404) throw err;
      flash(req, 'error', err.message);
      res.redirect(303, '/users');
    }
  });

  router.post('/users/:id/role', async (req, res) => {
    try {
      const user = await setUserRole(deps.store, String(req.params.id), field(req, 'role'), req.actor!);
      flash(req, 'success', `${user.email} is now ${user.role === 'admin' ? 'an admin' : 'an employee'}.`);
    } catch (err) {
      if (!isAppError(err) || err.status >= 500 || err.status === 404) throw err;
      flash(req, 'error', err.message);
    }
    res.redirect(303, '/users');
  });

  for (const [action, disabled] of [['disable', true], ['enable', false]] as const) {
    router.post(`/users/:id/${action}`, async (req, res) => {
      try {
        const user = await setUserDisabled(deps.store, String(req.params.id), disabled, req.actor!, deps.clock());
        if (disabled) await deps.sessions.destroyUserSessions(user.id);
        flash(req, 'success', disabled ? `${user.email} is disabled: signed out everywhere, API tokens revoked; their mailboxes are no longer synced and their forwarding addresses refuse mail.` : `${user.email} is enabled again.`);
      } catch (err) {
        if (!isAppError(err) || err.status >= 500 || err.status === 404) throw err;
        flash(req, 'error', err.message);
      }
      res.redirect(303, '/users');
    });
  }

  return router;
}
