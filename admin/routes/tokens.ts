import { Router, type Request, type Response } from 'express';
import { createApiToken, listApiTokens, listUsers, revokeApiToken } from '../../gateway/accounts';
import { isAppError } from '../../gateway/core/errors';
import { field } from '../lib/forms';
import { flash, requireAdmin, requireUser } from '../middleware/auth';
import type { AdminDeps } from '../types';

/** API tokens (admins): create for a user (shown once), list, revoke. */
export function tokensRouter(deps: AdminDeps): Router {
  const router = Router();
  router.use('/tokens', requireUser, requireAdmin);

  async function render(req: Request, res: Response, status = 200, extra: Record<string, unknown> = {}) {
    const [tokens, users] = await Promise.all([listApiTokens(deps.store), listUsers(deps.store)]);
    res.status(status).render('tokens/index', {
      title: 'API tokens',
      tokens,
      users: users.filter((user) => !user.disabled),
      created: null,
      errors: {},
      form: { user: req.user!.email, name: '', access: 'full' },
      ...extra,
    });
  }

  router.get('/tokens', (req, res) => render(req, res));

  router.post('/tokens', async (req, res) => {
    const form = { user: field(req, 'user'), name: field(req, 'name'), access: field(req, 'access') || 'full' };
    try {
      const { token, view } = await createApiToken(deps.store, form.user, { name: form.name, access: form.access }, req.actor!, deps.clock());
      return render(req, res, 201, { created: { token, view } });
    } catch (err) {
      if (isAppError(err) && err.status < 500) return render(req, res, err.status, { errors: err.fields ?? { user: err.message }, form });
      throw err;
    }
  });

  router.post('/tokens/:id/revoke', async (req, res) => {
    await revokeApiToken(deps.store, String(req.params.id), req.actor!, { now: deps.clock() });
    flash(req, 'success', 'Token revoked: requests with it now get 401.');
    res.redirect(303, '/tokens');
  });

  return router;
}
