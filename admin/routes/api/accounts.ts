import { Router } from 'express';
import { z } from 'zod';
import {
  createMailAccount, deleteMailAccount, getMailAccount, isAdmin, listMailAccounts, parseObjectId, PORT_PROBLEM, updateMailAccount,
} from '../../../gateway/accounts';
import { AppError, notFound } from '../../../gateway/core/errors';
import { TLS_MODES } from '../../../gateway/models/mail-account';
import { authenticateAccountImap } from '../../../gateway/oauth';
import { getSyncLedger } from '../../../gateway/sync/ledger';
import type { AdminDeps } from '../../types';
import { checkQuery, parseBody, wholeNumber } from './validate';

// Read-only fields a client may send back unchanged from a GET (OpenAPI readOnly): accepted and ignored.
const readOnly = z.unknown().optional();

const serverSettings = {
  enabled: z.boolean().optional(),
  service: z.string().max(40).optional(),
  host: z.string().max(253).optional(),
  // 0 is "not set", what an unconfigured account reads as (PATCHing a GET document back must work).
  port: wholeNumber(0, 65535, PORT_PROBLEM).optional(),
  tls: z.enum(TLS_MODES).optional(),
  username: z.string().max(320).optional(),
  /** Write-only: never returned. */
  password: z.string().max(1024).optional(),
  passwordSet: readOnly, status: readOnly, lastError: readOnly, lastErrorCode: readOnly, authenticatedAt: readOnly,
};

// folders: besides INBOX and the Sent folder; the whole list, replacing the stored one.
const imapWrite = z.strictObject({ ...serverSettings, folders: z.array(z.string().max(1000)).max(100).optional(), lastSyncAt: readOnly, lastSuccessAt: readOnly });
const smtpWrite = z.strictObject({ ...serverSettings, sameCredentials: z.boolean().optional() });

const accountPatch = z.strictObject({
  email: z.string().max(254).optional(),
  enabled: z.boolean().optional(),
  imap: imapWrite.optional(),
  smtp: smtpWrite.optional(),
  id: readOnly, ownerId: readOnly, forwardingAddress: readOnly, forwarding: readOnly, oauth: readOnly, lastMailAt: readOnly, messageCount: readOnly, createdAt: readOnly, updatedAt: readOnly,
});

const accountCreate = z.strictObject({
  email: z.string().max(254),
  /** Admins may add an account for another user. */
  ownerId: z.string().optional(),
});

function stripReadOnly(settings: z.infer<typeof smtpWrite> | undefined) {
  if (!settings) return undefined;
  const { enabled, service, host, port, tls, username, password, sameCredentials } = settings;
  return Object.fromEntries(Object.entries({ enabled, service, host, port, tls, username, password, sameCredentials }).filter(([, v]) => v !== undefined));
}

/** /api/v1/accounts: the caller's mail accounts (all of them for admins). */
export function accountsApi(deps: AdminDeps): Router {
  const router = Router();
  const changeDeps = (req: import('express').Request) => ({ store: deps.store, secretBox: deps.secretBox, actor: req.actor!, now: deps.clock(), byApiToken: true });

  router.get('/accounts', async (req, res) => {
    checkQuery(req.query as Record<string, unknown>, []);
    res.json({ accounts: await listMailAccounts(deps.store, req.viewer!) });
  });

  router.post('/accounts', async (req, res) => {
    const body = parseBody(accountCreate, req.body);
    let ownerId = req.viewer!.id;
    if (body.ownerId !== undefined) {
      const requested = parseObjectId(body.ownerId);
      if (!requested) throw new AppError('VALIDATION_FAILED', 'ownerId is not an id', { status: 400, fields: { ownerId: 'is not an id' } });
      if (!requested.equals(ownerId)) {
        if (!isAdmin(req.viewer!)) throw new AppError('FORBIDDEN', 'only admins can add accounts for other users', { status: 403 });
        if (!(await deps.store.models.User.exists({ _id: requested }))) throw new AppError('VALIDATION_FAILED', 'ownerId is not a user', { status: 400, fields: { ownerId: 'is not a user' } });
        ownerId = requested;
      }
    }
    const account = await createMailAccount(deps.store, ownerId, body.email, { gatewayDomain: deps.config.gatewayDomain, actor: req.actor, now: deps.clock() });
    res.status(201).location(`/api/v1/accounts/${account.id}`).json(account);
  });

  router.get('/accounts/:id', async (req, res) => {
    const account = await getMailAccount(deps.store, req.viewer!, String(req.params.id));
    if (!account) throw notFound('mail account');
    res.json(account);
  });

  router.patch('/accounts/:id', async (req, res) => {
    if (!(await getMailAccount(deps.store, req.viewer!, String(req.params.id)))) throw notFound('mail account');
    const body = parseBody(accountPatch, req.body);
    const account = await updateMailAccount(changeDeps(req), req.viewer!, String(req.params.id), {
      email: body.email,
      enabled: body.enabled,
      imap: body.imap ? { ...stripReadOnly(body.imap), folders: body.imap.folders } : undefined,
      smtp: stripReadOnly(body.smtp),
    });
    res.json(account);
  });

  router.delete('/accounts/:id', async (req, res) => {
    await deleteMailAccount(changeDeps(req), req.viewer!, String(req.params.id));
    res.status(204).end();
  });

  // What the console's IMAP panel shows, for monitoring: a pass running now, first sync n of N, backoff, folders.
  router.get('/accounts/:id/imap/sync', async (req, res) => {
    checkQuery(req.query as Record<string, unknown>, []);
    const account = await getMailAccount(deps.store, req.viewer!, String(req.params.id));
    const ledger = account ? await getSyncLedger(deps.store, account.id) : null;
    if (!ledger) throw notFound('mail account');
    res.json(ledger);
  });

  router.post('/accounts/:id/imap/authenticate', async (req, res) => {
    if (req.body !== undefined && (typeof req.body !== 'object' || Object.keys(req.body ?? {}).length > 0)) {
      throw new AppError('VALIDATION_FAILED', 'this endpoint takes no body: PATCH the account\'s imap settings first', { status: 400 });
    }
    // The console's branch: OAuth2 accounts log in with their access token.
    const { error } = await authenticateAccountImap(
      { store: deps.store, log: deps.log, secretBox: deps.secretBox, config: deps.config, clock: deps.clock, actor: req.actor!, timeoutMs: deps.imapTimeoutMs },
      req.viewer!, String(req.params.id),
    );
    if (error) return res.status(422).json({ error: { code: error.code, message: error.message } });
    res.json({ authenticated: true });
  });

  return router;
}
