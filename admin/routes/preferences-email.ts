import { Router, type Request, type Response } from 'express';
import { Types } from 'mongoose';
import {
  createMailAccount, parseObjectId, type ObjectId, deleteMailAccount, findPreset, getMailAccount, listMailAccounts, normalizeEmail, setMailAccountEnabled,
  SERVICE_PRESETS, suggestPreset, updateMailAccount, type MailAccountView, type ServerSettingsPatch,
} from '../../gateway/accounts';
import { isAppError, notFound } from '../../gateway/core/errors';
import { displayAddressOrDomain } from '../../gateway/crm/address';
import { authenticateAccountImap } from '../../gateway/oauth';
import { getSyncLedger } from '../../gateway/sync/ledger';
import { deletedByViewer } from '../lib/already-deleted';
import { checkbox, field, queryParam } from '../lib/forms';
import { forwardingPending } from '../lib/view-helpers';
import { flash, requireUser } from '../middleware/auth';
import type { AdminDeps } from '../types';

/** Preferences → Email: the user's mail accounts, forwarding and IMAP Support. */
export function preferencesEmailRouter(deps: AdminDeps): Router {
  const router = Router();
  router.use('/preferences', requireUser);

  router.get('/preferences', (_req, res) => res.redirect(303, '/preferences/email'));

  router.get('/preferences/email', async (req, res) => {
    const viewer = req.viewer!;
    const showAll = viewer.role === 'admin' && queryParam(req, 'all') === '1';
    const accounts = await listMailAccounts(deps.store, viewer, showAll ? {} : { ownerId: viewer.id });
    const own = showAll ? accounts : accounts.filter((account) => account.ownerId === viewer.id.toString());
    const owners = showAll ? await deps.store.models.User.find({ _id: { $in: [...new Set(own.map((a) => a.ownerId))] } }, { email: 1 }).lean() : [];
    res.render('preferences/email-list', {
      title: 'Email',
      section: 'email',
      accounts: own,
      showAll,
      ownerEmail: new Map(owners.map((owner) => [owner._id.toString(), owner.email])),
    });
  });

  // The form carries the id the account will have, so Save pressed twice (a double click) adds it once.
  const renderNew = (res: Response, status: number, email: string, errors: Record<string, string>, newId?: ObjectId) =>
    res.status(status).render('preferences/email-new', { title: 'Add a mail account', section: 'email', email, errors, newId: (newId ?? new Types.ObjectId()).toHexString() });

  router.get('/preferences/email/new', (_req, res) => renderNew(res, 200, '', {}));

  router.post('/preferences/email', async (req, res) => {
    const email = field(req, 'email');
    const newId = parseObjectId(field(req, 'newId')) ?? undefined;
    try {
      const account = await createMailAccount(deps.store, req.viewer!.id, email, { gatewayDomain: deps.config.gatewayDomain, actor: req.actor, now: deps.clock(), id: newId });
      flash(req, 'success', `Added ${account.email}. Now set up forwarding to the address below.`);
      res.redirect(303, `/preferences/email/${account.id}`);
    } catch (err) {
      if (isAppError(err) && err.fields) return renderNew(res, err.status === 409 ? 409 : 400, email, err.fields, newId);
      throw err;
    }
  });

  async function loadAccount(req: Request): Promise<MailAccountView> {
    const account = await getMailAccount(deps.store, req.viewer!, String(req.params.id));
    if (!account) throw notFound('mail account');
    return account;
  }

  async function renderEdit(req: Request, res: Response, account: MailAccountView, status = 200, errors: Record<string, string> = {}, form?: Record<string, unknown>) {
    // Sync progress (first sync n of N, per-folder state, backoff) from the syncer's ledger.
    const ledger = await getSyncLedger(deps.store, account.id);
    // What an admin sees of a departed employee's mailbox: the syncer leaves a disabled owner's accounts alone.
    const ownerDisabled = Boolean((await deps.store.models.User.findById(account.ownerId, { disabled: 1 }).lean())?.disabled);
    // A typed password is never rendered back; the page says to type it again.
    const passwordDropped = status === 400 && field(req, 'password') !== '';
    const providerId = queryParam(req, 'provider') || (account.imap.service !== 'custom' ? account.imap.service : suggestPreset(account.email).id);
    const provider = findPreset(providerId) ?? suggestPreset(account.email);
    // IMAP never set up: offer the mailbox's own service (gmail.com → Gmail, or the provider tab the user
    // picked for forwarding), filled in, rather than "Custom" with empty fields and a generic password hint.
    const unconfigured = account.imap.service === 'custom' && !account.imap.host;
    const defaultService = unconfigured ? provider.id : account.imap.service;
    const defaultServer = unconfigured ? provider.imap : null;
    res.status(status).render('preferences/email-edit', {
      title: account.email,
      section: 'email',
      account,
      provider,
      presets: SERVICE_PRESETS,
      presetsJson: JSON.stringify(Object.fromEntries(SERVICE_PRESETS.map((preset) => [preset.id, preset.imap]))),
      // The password hint follows the chosen service (app.js): most of them want an app password, made in a place only the hint names.
      hintsJson: JSON.stringify(Object.fromEntries(SERVICE_PRESETS.map((preset) => [preset.id, preset.passwordHint]))),
      errors,
      passwordDropped,
      ledger,
      ownerDisabled,
      backfillDays: deps.config.imapBackfillDays,
      form: form ?? {
        enabled: account.imap.enabled,
        service: defaultService,
        host: account.imap.host || defaultServer?.host || '',
        port: account.imap.port ? String(account.imap.port) : defaultServer ? String(defaultServer.port) : '',
        tls: defaultServer?.tls ?? account.imap.tls,
        // Most providers sign in with the mailbox address itself; shown only as a placeholder, a blank
        // field was saved and Authenticate then said the user name "is needed".
        username: account.imap.username || (unconfigured ? account.email : ''),
        folders: account.imap.folders.join('\n'),
      },
    });
  }

  router.get('/preferences/email/:id', async (req, res) => {
    await renderEdit(req, res, await loadAccount(req));
  });

  // The Forwarding panel's live part, asked for again by the page (app.js) until forwarding is verified.
  router.get('/preferences/email/:id/forwarding-state', async (req, res) => {
    const account = await loadAccount(req);
    res.set('Cache-Control', 'no-store');
    if (!forwardingPending(account.forwarding.status)) res.set('X-Poll', 'stop');
    res.render('preferences/forwarding-state', { account, layout: false });
  });

  // Save the IMAP Support form; the Authenticate button saves too, then logs in for real.
  router.post('/preferences/email/:id', async (req, res) => {
    const account = await loadAccount(req);
    const service = field(req, 'service') || 'custom';
    const preset = findPreset(service)?.imap;
    const portText = field(req, 'port').trim();
    const form = {
      enabled: checkbox(req, 'enabled'),
      service,
      host: field(req, 'host').trim() || preset?.host || '',
      port: portText || (preset ? String(preset.port) : ''),
      tls: field(req, 'tls') || preset?.tls || 'implicit',
      username: field(req, 'username').trim(),
      folders: field(req, 'folders'),
    };
    // Anything but 1-65535 (0 too: the API reads 0 as "not set") is passed on as NaN, so the port is
    // reported together with every other field the account model refuses.
    const port = /^\d{1,5}$/.test(form.port) && Number(form.port) >= 1 && Number(form.port) <= 65535 ? Number(form.port) : Number.NaN;
    const patch: ServerSettingsPatch = {
      enabled: form.enabled,
      service: form.service,
      host: form.host,
      port: form.port ? port : undefined,
      tls: form.tls,
      username: form.username,
      password: field(req, 'password'),
    };
    // One folder per line (a comma may be part of a folder's name).
    const folders = form.folders.split(/\r?\n/);
    let saved: MailAccountView;
    try {
      saved = await updateMailAccount({ store: deps.store, secretBox: deps.secretBox, actor: req.actor!, now: deps.clock() }, req.viewer!, account.id, { imap: { ...patch, folders } });
    } catch (err) {
      if (isAppError(err) && err.fields) return await renderEdit(req, res, account, 400, err.fields, form);
      throw err;
    }
    if (field(req, 'action') !== 'authenticate') {
      // Changed sign-in settings (or IMAP just turned on) are unchecked, and the syncer takes only
      // authenticated accounts: say that sync waits for Authenticate, not just "saved".
      flash(req, 'success', saved.imap.enabled && saved.imap.status === 'unverified'
        ? 'IMAP settings saved. Click Authenticate to check them: this mailbox is not synced until it signs in.'
        : 'IMAP settings saved.');
      return res.redirect(303, `/preferences/email/${saved.id}#imap`);
    }
    try {
      // Signed in with OAuth2 (gateway/oauth): the login uses the access token instead of a password.
      const { error } = await authenticateAccountImap(
        { store: deps.store, log: deps.log, secretBox: deps.secretBox, config: deps.config, clock: deps.clock, actor: req.actor!, timeoutMs: deps.imapTimeoutMs },
        req.viewer!, saved.id,
      );
      // A failure is shown once, in the IMAP panel the page opens at (account.imap.lastError), not also as a flash.
      // The checkbox is easy to miss: a good login with IMAP Support off syncs nothing, so say so.
      if (!error) {
        flash(req, 'success', `Authenticated: signed in to ${saved.imap.host} as ${saved.imap.username}.${saved.imap.enabled ? '' : ' IMAP Support is off, so this mailbox is not synced: tick "Turn on IMAP Support" and click Save.'}`);
      }
    } catch (err) {
      if (isAppError(err) && err.fields) return await renderEdit(req, res, saved, 400, err.fields, form);
      throw err;
    }
    res.redirect(303, `/preferences/email/${saved.id}#imap`);
  });

  for (const [action, enabled] of [['enable', true], ['disable', false]] as const) {
    router.post(`/preferences/email/:id/${action}`, async (req, res) => {
      const account = await setMailAccountEnabled({ store: deps.store, secretBox: deps.secretBox, actor: req.actor!, now: deps.clock() }, req.viewer!, String(req.params.id), enabled);
      flash(req, 'success', enabled ? `${account.email} is enabled: mail to its forwarding address is accepted.` : `${account.email} is disabled: its forwarding address refuses mail and IMAP sync pauses.`);
      res.redirect(303, `/preferences/email/${account.id}`);
    });
  }

  router.get('/preferences/email/:id/delete', async (req, res) => {
    const account = await loadAccount(req);
    res.render('preferences/email-delete', { title: `Delete ${account.email}`, section: 'email', account });
  });

  router.post('/preferences/email/:id/delete', async (req, res) => {
    const id = String(req.params.id);
    if (!(await getMailAccount(deps.store, req.viewer!, id)) && await deletedByViewer(deps.store, req, { type: 'mail_account', id, action: 'account.delete' })) {
      flash(req, 'info', 'This mail account is already deleted.');
      return res.redirect(303, '/preferences/email');
    }
    const account = await loadAccount(req);
    // As typed: "Bob@Acme.com " is the same address (accounts are stored lower-cased), and so is info@münchen.de
    // (stored info@xn--mnchen-3ya.de, shown as written).
    if (normalizeEmail(field(req, 'confirm')) !== account.email) {
      return res.status(400).render('preferences/email-delete', { title: `Delete ${account.email}`, section: 'email', account, error: `Type ${displayAddressOrDomain(account.email)} to confirm.` });
    }
    await deleteMailAccount({ store: deps.store, actor: req.actor!, now: deps.clock() }, req.viewer!, account.id);
    flash(req, 'success', `Deleted ${account.email}. Its stored mail stays in Emails; its forwarding address no longer accepts mail.`);
    res.redirect(303, '/preferences/email');
  });

  return router;
}
