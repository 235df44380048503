import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import { AppError, notFound } from '../../../gateway/core/errors';
import {
  authenticateMailAccountSmtp, getOutboxItem, listOutbox, MAX_ATTACHMENTS, ORIGINAL_ACTIONS, sendDepsFromConfig, sendMessage,
} from '../../../gateway/send';
import type { AdminDeps } from '../../types';
import { checkQuery, idParam, parseBody, wholeNumberParam } from './validate';

const SEND_PATH = /^\/accounts\/[^/]+\/send$/;

/**
 * The body parser of POST /accounts/:id/send: attachments travel base64 in
 * JSON, so its limit follows SMTP_MAX_MESSAGE_SIZE (plus base64's third and
 * room for the text) instead of the API's 1 MB. Mounted after bearer
 * authentication, so only callers with a token can make Postroom read a large
 * body; other routes keep the 1 MB parser.
 */
export function sendBodyParser(deps: AdminDeps) {
  const parse = express.json({ limit: Math.ceil(deps.config.smtpMaxMessageSize * 1.4) + 4 * 1024 * 1024, strict: false });
  return (req: Request, res: Response, next: NextFunction) => (req.method === 'POST' && SEND_PATH.test(req.path) ? parse(req, res, next) : next());
}

const addressField = z.union([z.string().max(100_000), z.array(z.string().max(1000)).max(200)]);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const sendBody = z.strictObject({
  to: addressField.optional(),
  cc: addressField.optional(),
  bcc: addressField.optional(),
  subject: z.string().max(10_000).optional(),
  text: z.string().max(4 * 1024 * 1024).optional(),
  attachments: z.array(z.strictObject({
    filename: z.string().max(1000),
    contentType: z.string().max(300).optional(),
    /** The bytes, base64 (RFC 4648 §4). */
    content: z.string().refine((value) => BASE64.test(value.replace(/\s+/g, '')), 'must be base64'),
  })).max(MAX_ATTACHMENTS).optional(),
  original: z.strictObject({
    id: z.string().max(64),
    action: z.enum(ORIGINAL_ACTIONS),
    quote: z.boolean().optional(),
    includeAttachments: z.boolean().optional(),
  }).optional(),
});

/** /api/v1: send from an account, Authenticate SMTP, and the outbox. */
export function sendApi(deps: AdminDeps): Router {
  const router = Router();
  const sendDeps = sendDepsFromConfig(deps.config, { store: deps.store, log: deps.log, secretBox: deps.secretBox });

  router.post('/accounts/:id/send', async (req, res) => {
    const body = parseBody(sendBody, req.body);
    const result = await sendMessage(sendDeps, req.viewer!, String(req.params.id), {
      ...body,
      attachments: body.attachments?.map((a) => ({ filename: a.filename, contentType: a.contentType, content: Buffer.from(a.content, 'base64') })),
      createdBy: req.viewer!.id,
    });
    // 200: the server took it; 202: queued, it will be retried (poll GET /outbox/{id}).
    res.status(result.status === 'sent' ? 200 : 202).location(`/api/v1/outbox/${result.outboxId}`).json(result);
  });

  router.post('/accounts/:id/smtp/authenticate', async (req, res) => {
    if (req.body !== undefined && (typeof req.body !== 'object' || Object.keys(req.body ?? {}).length > 0)) {
      throw new AppError('VALIDATION_FAILED', 'this endpoint takes no body: PATCH the account\'s smtp settings first', { status: 400 });
    }
    const { error } = await authenticateMailAccountSmtp(
      { store: deps.store, secretBox: deps.secretBox, actor: req.actor!, log: deps.log, timeoutMs: deps.imapTimeoutMs, now: deps.clock(), oauthConfig: deps.config },
      req.viewer!, String(req.params.id),
    );
    if (error) return res.status(422).json({ error: { code: error.code, message: error.message } });
    res.json({ authenticated: true });
  });

  router.get('/outbox', async (req, res) => {
    const query = checkQuery(req.query as Record<string, unknown>, ['account', 'limit']);
    const limit = wholeNumberParam(query.limit, 'limit', 1, 500) ?? 100;
    // A typo in the id is said, not answered with an empty list that reads as "nothing queued".
    const accountId = idParam(query.account, 'account');
    res.json({ items: await listOutbox(deps.store, req.viewer!, { accountId, limit }) });
  });

  router.get('/outbox/:id', async (req, res) => {
    const item = await getOutboxItem(deps.store, req.viewer!, String(req.params.id));
    if (!item) throw notFound('outbox entry');
    res.json(item);
  });

  return router;
}
