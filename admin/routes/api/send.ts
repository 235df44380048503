import crypto from 'node:crypto';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import { AppError, notFound } from '../../../gateway/core/errors';
import {
  authenticateMailAccountSmtp, claimSendKey, getOutboxItem, listOutbox, MAX_ATTACHMENTS, ORIGINAL_ACTIONS, sendDepsFromConfig, sendMessage,
} from '../../../gateway/send';
import { UploadSlots } from '../../lib/upload-slots';
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
  const slots = deps.uploadSlots;
  return (req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'POST' || !SEND_PATH.test(req.path)) return next();
    if (req.viewer && !slots.take(req.viewer.id.toString(), res)) return next(UploadSlots.refusal());
    parse(req, res, next);
  };
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

/** Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): visible ASCII, a UUID at best. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{8,200}$/;

/**
 * The Idempotency-Key of a send, claimed for the caller: a script that sends
 * again after a lost reply (a timeout, a dropped connection) gets the first
 * request's reply instead of sending the message twice. Null without the header.
 */
async function claimIdempotencyKey(deps: AdminDeps, req: Request) {
  const key = req.get('Idempotency-Key');
  if (key === undefined) return null;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new AppError('VALIDATION_FAILED', 'the Idempotency-Key header must be 8 to 200 visible ASCII characters (a UUID is best)', {
      status: 400, fields: { 'Idempotency-Key': 'must be 8 to 200 visible ASCII characters (a UUID is best)' },
    });
  }
  const fingerprint = crypto.createHash('sha256').update(String(req.params.id)).update('\0').update(JSON.stringify(req.body ?? null)).digest('base64url');
  // No wait: a repeat while the first is still sending is told so (409) and retries, as the draft has it.
  return claimSendKey(deps.store, req.viewer!.id, `api:${key}`, { now: deps.clock(), waitMs: 0, fingerprint });
}

/** /api/v1: send from an account, Authenticate SMTP, and the outbox. */
export function sendApi(deps: AdminDeps): Router {
  const router = Router();
  const sendDeps = sendDepsFromConfig(deps.config, { store: deps.store, log: deps.log, secretBox: deps.secretBox });

  router.post('/accounts/:id/send', async (req, res) => {
    const body = parseBody(sendBody, req.body);
    const claim = await claimIdempotencyKey(deps, req);
    if (claim && !claim.claimed) {
      if (claim.otherRequest) {
        throw new AppError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was sent with a different request in the last 24 hours; use a new key for each message', { status: 422 });
      }
      if (!claim.result?.response) {
        res.set('Retry-After', '5');
        throw new AppError('IDEMPOTENCY_KEY_IN_USE', 'a request with this Idempotency-Key is still being sent; ask again in a few seconds for its result', { status: 409 });
      }
      const { status, body: first } = claim.result.response;
      return res.status(status).location(claim.result.location).set('Idempotent-Replayed', 'true').type('application/json').send(first);
    }
    let result;
    try {
      result = await sendMessage(sendDeps, req.viewer!, String(req.params.id), {
        ...body,
        attachments: body.attachments?.map((a) => ({ filename: a.filename, contentType: a.contentType, content: Buffer.from(a.content, 'base64') })),
        createdBy: req.viewer!.id,
      });
    } catch (err) {
      // Nothing was sent (a problem in the request, the server refused it): the same key may try again.
      await claim?.release();
      throw err;
    }
    // 200: the server took it; 202: queued, it will be retried (poll GET /outbox/{id}).
    const status = result.status === 'sent' ? 200 : 202;
    const location = `/api/v1/outbox/${result.outboxId}`;
    await claim?.finish({ location, notice: '', noticeKind: 'success', response: { status, body: JSON.stringify(result) } });
    res.status(status).location(location).json(result);
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
