import { Router, type Request, type Response } from 'express';
import { Types } from 'mongoose';
import { parseObjectId } from '../../gateway/accounts';
import { isAppError } from '../../gateway/core/errors';
import {
  createWebhook, deleteWebhook, getWebhook, listDeliveries, listWebhooks, resendDelivery, rotateWebhookSecret, sendTestEvent, updateWebhook,
  type WebhookDeps,
} from '../../gateway/crm/webhooks';
import { deletedByViewer } from '../lib/already-deleted';
import { checkbox, field } from '../lib/forms';
import { flash, requireAdmin } from '../middleware/auth';
import type { AdminDeps } from '../types';

/**
 * Webhooks (admins): register URLs that receive signed link.created events,
 * see the delivery log, resend, rotate the secret. The signing secret is
 * sealed with the console's SecretBox; the CRM worker that delivers must be
 * given the same SecretBox.
 */
export function objectsWebhooksRouter(deps: AdminDeps): Router {
  const router = Router();
  const hooks: WebhookDeps = { store: deps.store, log: deps.log, secretBox: deps.secretBox };
  router.use('/objects/webhooks', requireAdmin);

  async function renderList(res: Response, status = 200, extra: Record<string, unknown> = {}) {
    res.status(status).render('objects/webhooks', {
      title: 'Webhooks',
      webhooks: await listWebhooks(deps.store),
      form: { url: '', description: '', allowPrivate: false },
      errors: {},
      created: null,
      // The id the webhook the Add form registers will have: pressing Add twice registers one.
      newId: new Types.ObjectId().toHexString(),
      ...extra,
    });
  }

  router.get('/objects/webhooks', (_req, res) => renderList(res));

  router.post('/objects/webhooks', async (req, res) => {
    const form = { url: field(req, 'url').trim(), description: field(req, 'description'), allowPrivate: checkbox(req, 'allowPrivate') };
    const newId = parseObjectId(field(req, 'newId')) ?? undefined;
    try {
      const { webhook, secret } = await createWebhook(hooks, form, req.actor!, { id: newId });
      return renderList(res, 201, { created: { webhook, secret } });
    } catch (err) {
      if (isAppError(err) && err.status < 500) return renderList(res, err.status, { form, errors: err.fields ?? { url: err.message }, ...(newId && err.code !== 'CONFLICT' ? { newId: newId.toHexString() } : {}) });
      throw err;
    }
  });

  async function renderOne(req: Request, res: Response, status = 200, extra: Record<string, unknown> = {}) {
    const id = String(req.params.id);
    const webhook = await getWebhook(hooks, id);
    res.status(status).render('objects/webhook', {
      title: 'Webhook',
      webhook,
      deliveries: await listDeliveries(deps.store, id, { limit: 100 }),
      // Sealed with a SECRET_KEY since lost (adopt-secret-key): said at the field that needs it again.
      errors: webhook.urlUnreadable ? { url: 'cannot be read with this SECRET_KEY (it was sealed with a key since lost): enter the URL again' } : {},
      secret: null,
      ...extra,
    });
  }

  router.get('/objects/webhooks/:id', (req, res) => renderOne(req, res));

  router.post('/objects/webhooks/:id', async (req, res) => {
    const form = {
      url: field(req, 'url').trim(),
      description: field(req, 'description'),
      enabled: checkbox(req, 'enabled'),
      allowPrivate: checkbox(req, 'allowPrivate'),
    };
    try {
      await updateWebhook(hooks, String(req.params.id), form, req.actor!);
    } catch (err) {
      // The form keeps what was typed, so a refused URL can be corrected rather than typed again.
      if (isAppError(err) && err.status < 500 && err.status !== 404) return renderOne(req, res, err.status, { form, errors: err.fields ?? { url: err.message } });
      throw err;
    }
    flash(req, 'success', 'Webhook saved.');
    res.redirect(303, `/objects/webhooks/${String(req.params.id)}`);
  });

  router.post('/objects/webhooks/:id/rotate', async (req, res) => {
    const { secret } = await rotateWebhookSecret(hooks, String(req.params.id), req.actor!);
    return renderOne(req, res, 200, { secret });
  });

  router.post('/objects/webhooks/:id/test', async (req, res) => {
    await sendTestEvent(hooks, String(req.params.id), req.actor!);
    flash(req, 'success', 'A ping event is queued; it appears in the delivery log within seconds.');
    res.redirect(303, `/objects/webhooks/${String(req.params.id)}`);
  });

  router.post('/objects/webhooks/:id/delete', async (req, res) => {
    const id = String(req.params.id);
    if (!(await deps.store.models.Webhook.exists({ _id: parseObjectId(id) })) && await deletedByViewer(deps.store, req, { type: 'webhook', id, action: 'webhook.delete' })) {
      flash(req, 'info', 'This webhook is already deleted.');
      return res.redirect(303, '/objects/webhooks');
    }
    await deleteWebhook(hooks, id, req.actor!);
    flash(req, 'success', 'Webhook deleted.');
    res.redirect(303, '/objects/webhooks');
  });

  router.post('/objects/webhooks/:id/deliveries/:deliveryId/resend', async (req, res) => {
    await resendDelivery(deps.store, String(req.params.deliveryId), req.actor!, { webhookId: String(req.params.id) });
    flash(req, 'success', 'Queued for sending again.');
    res.redirect(303, `/objects/webhooks/${String(req.params.id)}`);
  });

  return router;
}
