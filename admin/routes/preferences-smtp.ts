import { Router, type NextFunction, type Request, type Response } from 'express';
import { findPreset, getMailAccount, SERVICE_PRESETS, updateMailAccount, type ServerSettingsPatch } from '../../gateway/accounts';
import { isAppError, notFound } from '../../gateway/core/errors';
import { authenticateMailAccountSmtp, smtpServer, smtpService, type SendingAccount } from '../../gateway/send';
import { checkbox, field } from '../lib/forms';
import { flash, requireUser } from '../middleware/auth';
import type { AdminDeps } from '../types';

/**
 * Preferences → Email → an account → Sending: the SMTP settings (preset or
 * custom, the IMAP credentials unless others are given) and the
 * Authenticate SMTP step, like IMAP Support's. The panel is a partial of the
 * account page (views/compose/smtp-panel.ejs); its locals are added here
 * before the page renders, the way admin/routes/oauth.ts adds its own.
 * A rejected form comes back through the session (post/redirect/get).
 */

interface SmtpForm {
  enabled: boolean;
  service: string;
  host: string;
  port: string;
  tls: string;
  sameCredentials: boolean;
  username: string;
}

declare module 'express-session' {
  interface SessionData {
    smtpForm?: { accountId: string; form: SmtpForm; errors: Record<string, string> };
  }
}

export function preferencesSmtpRouter(deps: AdminDeps): Router {
  const router = Router();

  // Locals for the Sending panel of an account page; the page itself is preferences-email's.
  router.get('/preferences/email/:id', async (req: Request, res: Response, next: NextFunction) => {
    if (!req.user) return next();
    const view = await getMailAccount(deps.store, req.viewer!, String(req.params.id));
    if (!view) return next();
    const raw = (await deps.store.models.MailAccount.findById(view.id).lean()) as unknown as SendingAccount;
    const stash = req.session.smtpForm?.accountId === view.id ? req.session.smtpForm : undefined;
    if (req.session.smtpForm) delete req.session.smtpForm;
    const server = smtpServer(raw);
    res.locals.smtpPanel = {
      account: view,
      presets: SERVICE_PRESETS.filter((preset) => preset.smtp || preset.id === 'custom'),
      presetsJson: JSON.stringify(Object.fromEntries(SERVICE_PRESETS.map((preset) => [preset.id, preset.smtp]))),
      resolved: server,
      imapAuthenticated: Boolean(view.imap.authenticatedAt),
      errors: stash?.errors ?? {},
      form: stash?.form ?? {
        enabled: view.smtp.enabled,
        service: smtpService(raw),
        host: server.host,
        port: server.port ? String(server.port) : '',
        tls: server.tls,
        sameCredentials: view.smtp.sameCredentials,
        username: view.smtp.username,
      },
    };
    next();
  });

  router.post('/preferences/email/:id/smtp', requireUser, async (req, res) => {
    const account = await getMailAccount(deps.store, req.viewer!, String(req.params.id));
    if (!account) throw notFound('mail account');
    const back = () => res.redirect(303, `/preferences/email/${account.id}#smtp`);
    const service = field(req, 'service') || 'custom';
    const preset = findPreset(service)?.smtp;
    // Without JS, switching service leaves the old preset's server in the fields: the new preset replaces it.
    const raw = (await deps.store.models.MailAccount.findById(account.id).lean()) as unknown as SendingAccount;
    const before = smtpServer(raw);
    const switched = service !== smtpService(raw) && preset && field(req, 'host').trim() === before.host;
    const portText = switched ? '' : field(req, 'port').trim();
    const form: SmtpForm = {
      enabled: checkbox(req, 'enabled'),
      service,
      host: (switched ? '' : field(req, 'host').trim()) || preset?.host || '',
      port: portText || (preset ? String(preset.port) : ''),
      tls: (switched ? '' : field(req, 'tls')) || preset?.tls || 'implicit',
      sameCredentials: checkbox(req, 'sameCredentials'),
      username: field(req, 'username').trim(),
    };
    const errors: Record<string, string> = {};
    if (form.port && !/^\d{1,5}$/.test(form.port)) errors['smtp.port'] = 'must be a whole number from 1 to 65535';
    if (form.enabled && !form.host) errors['smtp.host'] = 'is needed to send (or choose an email service)';
    if (form.enabled && !form.port) errors['smtp.port'] ??= 'is needed to send';
    const reject = (fields: Record<string, string>) => {
      req.session.smtpForm = { accountId: account.id, form, errors: fields };
      flash(req, 'error', 'The sending settings were not saved: see the marked fields.');
      return back();
    };
    if (Object.keys(errors).length > 0) return reject(errors);
    const patch: ServerSettingsPatch = {
      enabled: form.enabled,
      service: form.service,
      host: form.host,
      port: form.port ? Number(form.port) : 0,
      tls: form.tls,
      sameCredentials: form.sameCredentials,
      ...(form.sameCredentials ? {} : { username: form.username, password: field(req, 'password') }),
    };
    try {
      await updateMailAccount({ store: deps.store, secretBox: deps.secretBox, actor: req.actor!, now: deps.clock() }, req.viewer!, account.id, { smtp: patch });
    } catch (err) {
      if (isAppError(err) && err.fields) return reject(err.fields);
      throw err;
    }
    if (form.sameCredentials !== account.smtp.sameCredentials && account.smtp.authenticatedAt) {
      // Other credentials now: the earlier login proves nothing about them.
      await deps.store.models.MailAccount.updateOne({ _id: raw._id }, { $set: { 'smtp.authenticatedAt': null, 'smtp.status': form.enabled ? 'unverified' : 'off' } });
    }
    if (field(req, 'action') !== 'authenticate') {
      flash(req, 'success', 'Sending settings saved.');
      return back();
    }
    try {
      const { account: after, error } = await authenticateMailAccountSmtp(
        { store: deps.store, secretBox: deps.secretBox, actor: req.actor!, log: deps.log, timeoutMs: deps.imapTimeoutMs, now: deps.clock(), oauthConfig: deps.config },
        req.viewer!, account.id,
      );
      if (error) flash(req, 'error', `SMTP authentication failed (${error.code}): ${error.message}`);
      else flash(req, 'success', `SMTP authenticated: signed in to ${after.smtp.host}:${after.smtp.port}.${after.smtp.enabled ? ' You can send from this account.' : ' Turn on sending to use it.'}`);
    } catch (err) {
      if (isAppError(err) && err.fields) return reject(err.fields);
      throw err;
    }
    back();
  });

  return router;
}
