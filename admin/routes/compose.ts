import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import multer from 'multer';
import { getMessageFor } from '../../gateway/accounts';
import { AppError, isAppError } from '../../gateway/core/errors';
import { attachmentFilename } from '../../gateway/mail/attachments';
import {
  answeringAccountId, claimSendKey, discardOutboxEntry, isSendKey, listOutbox, newSendKey, listSendableAccounts, MAX_ATTACHMENTS, ORIGINAL_ACTIONS, prepareFromOriginal, openFailedCopy, ownAddresses, retryOutboxNow, sendDepsFromConfig, sendMessage, typedMailbox,
  type AttachmentInput, type Mailbox, type OriginalAction, type SendableAccount,
} from '../../gateway/send';
import { emlFilename } from '../lib/download';
import { checkbox, field, queryParam } from '../lib/forms';
import { flash, requireUser } from '../middleware/auth';
import { UploadSlots } from '../lib/upload-slots';
import type { AdminDeps } from '../types';

/**
 * Compose (new message, reply, reply all, forward) and the Outbox. Thin:
 * composing, sending, queueing and filing live in gateway/send.
 *
 * The form is multipart/form-data (attachments), which the urlencoded parser
 * does not read; `composeUploads` parses it before the CSRF check so the
 * hidden _csrf field is seen (app.ts mounts it there). It only parses for a
 * signed-in session, so anonymous uploads are never buffered.
 */

const FORM_PATH = '/compose';

type UploadRequest = Request & { uploadProblem?: string };

export function composeUploads(deps: AdminDeps): RequestHandler {
  const upload = multer({
    storage: multer.memoryStorage(),
    // Browsers send a file name as raw UTF-8 (HTML's multipart/form-data algorithm); busboy's default reads it as latin1 ("MÃ¼ller.pdf").
    defParamCharset: 'utf8',
    limits: { fileSize: deps.config.smtpMaxMessageSize, files: MAX_ATTACHMENTS, fields: 40, fieldSize: 4 * 1024 * 1024, parts: MAX_ATTACHMENTS + 40 },
  }).array('attachments', MAX_ATTACHMENTS);
  return (req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'POST' || req.path !== FORM_PATH || !req.session?.userId || !req.is('multipart/form-data')) return next();
    // Memory bound for the whole form (multer limits each file only): the attachments plus room for the text fields.
    // It needs the declared length, which Node holds the body to; a chunked body (no length) could carry 20
    // attachments of the size limit each before anything was refused. Browsers always send the length.
    if (req.get('content-length') === undefined) {
      return next(new AppError('LENGTH_REQUIRED', 'The form was sent without its length (Content-Length), so its size cannot be checked. Send it from the Compose page.', { status: 411 }));
    }
    const declared = Number(req.get('content-length'));
    if (declared > deps.config.smtpMaxMessageSize + 8 * 1024 * 1024) {
      return next(new AppError('TOO_LARGE', `The message is larger than ${Math.floor(deps.config.smtpMaxMessageSize / 1024 / 1024)} MB, the most that can be sent. Go back and remove attachments.`, { status: 413 }));
    }
    if (!deps.uploadSlots.take(String(req.session.userId), res)) return next(UploadSlots.refusal());
    upload(req, res, (err: unknown) => {
      if (!err) return next();
      // Fields before the failing file were read (the form puts the file input last), so the page can be shown again with them.
      const e = err as { code?: string; message?: string };
      const problem = e.code === 'LIMIT_FILE_SIZE'
        ? `an attachment is larger than ${Math.floor(deps.config.smtpMaxMessageSize / 1024 / 1024)} MB, the most that can be sent`
        : e.code === 'LIMIT_FILE_COUNT' || e.code === 'LIMIT_UNEXPECTED_FILE' ? `at most ${MAX_ATTACHMENTS} attachments` : `the upload failed: ${e.message ?? 'unknown error'}`;
      (req as UploadRequest).uploadProblem = problem;
      next();
    });
  };
}

interface ComposeForm {
  account: string;
  to: string;
  cc: string;
  bcc: string;
  subject: string;
  text: string;
  original: string;
  action: string;
  includeAttachments: boolean;
  /** One key per press of Send (gateway/send/send-once.ts); a fresh one each time the form is shown. */
  sendKey: string;
}

/** How long a repeated Send waits for the first one (below the server's 60 s request timeout). */
const DUPLICATE_WAIT_MS = 45_000;

/** Temporary SMTP failures already end in "Postroom will try again." (gateway/send/smtp-errors.ts): say it once. */
function queuedNotice(reason: string, refused: string): string {
  const why = reason || 'the server did not take it yet.';
  const retry = /will try again\.?$/.test(why) ? 'See the Outbox.' : 'Postroom retries on its own; see the Outbox.';
  return `Queued: ${why} ${retry}${refused}`;
}

const mailboxText = (list: Mailbox[]) => list.map(typedMailbox).join(', ');

export function composeRouter(deps: AdminDeps): Router {
  const router = Router();
  const sendDeps = sendDepsFromConfig(deps.config, { store: deps.store, log: deps.log, secretBox: deps.secretBox });
  router.use([FORM_PATH, '/outbox'], requireUser);

  async function contacts(): Promise<Array<{ email: string; name: string }>> {
    // A datalist of known addresses (works without JS); CRM objects are the business's shared address book.
    const rows = await deps.store.models.CrmObject.find({ 'emails.0': { $exists: true } }, { name: 1, emails: 1 }).sort({ nameLower: 1 }).limit(500).lean();
    return rows.flatMap((row) => (row.emails ?? []).map((email) => ({ email, name: row.name })));
  }

  /** `reattach`: names of the files the refused request carried; a browser never refills a file field. */
  async function render(req: Request, res: Response, status: number, form: ComposeForm, accounts: SendableAccount[], errors: Record<string, string>, problem = '', reattach: string[] = []) {
    const originalMessage = form.original ? await getMessageFor(deps.store, req.viewer!, form.original) : null;
    res.status(status).render('compose/compose', {
      title: form.action === 'forward' ? 'Forward' : form.action ? 'Reply' : 'Compose',
      form: { ...form, sendKey: newSendKey() },
      accounts,
      errors,
      problem,
      contacts: await contacts(),
      originalMessage,
      // Named as they will be sent (and downloaded): a nameless inline logo is logo123.png, not 'attachment'.
      forwardedAttachments: form.action === 'forward' ? (originalMessage?.attachments ?? []).map((attachment, index) => ({ filename: attachmentFilename(attachment, index) })) : [],
      maxMegabytes: Math.floor(deps.config.smtpMaxMessageSize / 1024 / 1024),
      reattach,
    });
  }

  router.get(FORM_PATH, async (req, res) => {
    const accounts = await listSendableAccounts(deps.store, req.viewer!.id);
    const form: ComposeForm = { account: queryParam(req, 'account'), to: queryParam(req, 'to'), cc: '', bcc: '', subject: '', text: '', original: '', action: '', includeAttachments: true, sendKey: '' };
    const originalId = queryParam(req, 'original');
    const action = queryParam(req, 'action') || 'reply';
    if (originalId) {
      if (!(ORIGINAL_ACTIONS as readonly string[]).includes(action)) throw new AppError('BAD_REQUEST', `action must be one of ${ORIGINAL_ACTIONS.join(', ')}`, { status: 400 });
      const original = await getMessageFor(deps.store, req.viewer!, originalId);
      if (!original) throw new AppError('NOT_FOUND', 'message not found', { status: 404 });
      const own = await ownAddresses(deps.store, req.viewer!.id, deps.config.gatewayDomain);
      const prepared = prepareFromOriginal(original, action as OriginalAction, own, req.timeZone);
      Object.assign(form, {
        to: mailboxText(prepared.to),
        cc: mailboxText(prepared.cc),
        subject: prepared.subject,
        text: `\n\n${prepared.quote}`,
        original: originalId,
        action,
      });
      // Answer from the account the message came to, or the one it names (dropbox mail), when it can send.
      if (!form.account) form.account = answeringAccountId(original, accounts) ?? '';
    }
    if (!form.account) form.account = accounts.find((a) => !a.problem)?.id ?? '';
    await render(req, res, 200, form, accounts, {});
  });

  router.post(FORM_PATH, async (req, res) => {
    const accounts = await listSendableAccounts(deps.store, req.viewer!.id);
    const form: ComposeForm = {
      account: field(req, 'account'), to: field(req, 'to'), cc: field(req, 'cc'), bcc: field(req, 'bcc'), subject: field(req, 'subject'), text: field(req, 'text'),
      original: field(req, 'original'), action: field(req, 'action'), includeAttachments: checkbox(req, 'includeAttachments'), sendKey: field(req, 'sendKey'),
    };
    const uploadProblem = (req as UploadRequest).uploadProblem;
    if (uploadProblem) return render(req, res, 413, form, accounts, { attachments: uploadProblem });
    const chosen = accounts.find((a) => a.id === form.account);
    if (!chosen) return render(req, res, 400, form, accounts, { account: 'choose one of your mail accounts' });
    if (chosen.problem) return render(req, res, 409, form, accounts, { account: `${chosen.email} cannot send: ${chosen.problem}` });

    const files = (Array.isArray(req.files) ? req.files : []) as Express.Multer.File[];
    const attachments: AttachmentInput[] = files.filter((file) => file.originalname || file.size > 0).map((file) => ({
      filename: file.originalname, contentType: file.mimetype, content: file.buffer,
    }));
    const original = form.original && (ORIGINAL_ACTIONS as readonly string[]).includes(form.action)
      // The quote is already in the text the user edited; forwarded attachments follow the checkbox.
      ? { id: form.original, action: form.action as OriginalAction, quote: false, includeAttachments: form.includeAttachments }
      : undefined;
    // Send pressed again for the same form: answer with the first press's result instead of sending twice.
    const claim = isSendKey(form.sendKey)
      ? await claimSendKey(deps.store, req.viewer!.id, form.sendKey, { now: deps.clock(), waitMs: DUPLICATE_WAIT_MS })
      : null;
    if (claim && !claim.claimed) {
      const shown = claim.result ?? { location: '/outbox', noticeKind: 'info' as const, notice: 'Send was pressed again while this message was still being sent; it is sent once. See the Outbox.' };
      flash(req, shown.noticeKind, shown.notice, { sendKey: form.sendKey });
      return res.redirect(303, shown.location);
    }
    try {
      const result = await sendMessage(sendDeps, req.viewer!, chosen.id, {
        to: form.to, cc: form.cc, bcc: form.bcc, subject: form.subject, text: form.text, attachments, original, createdBy: req.viewer!.id,
      });
      const refused = result.refused.length > 0 ? ` Refused by the server: ${result.refused.map((r) => `${r.address} (${r.reply})`).join('; ')}.` : '';
      const shown = result.status === 'sent'
        ? { noticeKind: refused ? 'info' as const : 'success' as const, notice: `Sent from ${chosen.email}.${refused}`, location: result.storedMessageId ? `/messages/${result.storedMessageId}` : '/outbox' }
        : { noticeKind: 'info' as const, notice: queuedNotice(result.queuedBecause, refused), location: '/outbox' };
      await claim?.finish(shown);
      flash(req, shown.noticeKind, shown.notice, { sendKey: isSendKey(form.sendKey) ? form.sendKey : undefined });
      return res.redirect(303, shown.location);
    } catch (err) {
      // Nothing was sent: a repeated Send may go ahead (and shows the same problem).
      await claim?.release();
      if (!isAppError(err) || err.status >= 500) throw err;
      const reattach = attachments.map((attachment) => attachment.filename || 'unnamed file');
      if (err.fields?.['original.id'] && original) {
        // The original was deleted since the form was shown (in another tab, by an admin, by mail retention): no
        // field of the form shows that, and every Send would be refused again. Say so, and let the next Send
        // send the text as a new message.
        const gone = original.action === 'forward'
          ? 'The message you are forwarding was deleted meanwhile, so nothing was sent and its attachments can no longer go with it. Your text is kept below: press Send to send it as a new message.'
          : 'The message you are replying to was deleted meanwhile, so nothing was sent. Your text is kept below: press Send to send it as a new message (not threaded as a reply).';
        return render(req, res, err.status, { ...form, original: '', action: '' }, accounts, {}, gone, reattach);
      }
      if (err.fields) return render(req, res, err.status, form, accounts, err.fields, '', reattach);
      // The server's own reply (refused recipient, authentication, size) or the rate limit, above the form.
      return render(req, res, err.status, form, accounts, {}, `${err.code}: ${err.message}`, reattach);
    }
  });

  router.get('/outbox', async (req, res) => {
    const items = await listOutbox(deps.store, req.viewer!, { limit: 200 });
    res.render('compose/outbox', { title: 'Outbox', items });
  });

  // A message that failed in the background: the sender's copy, to open in a mail program and send again.
  router.get('/outbox/:id/message.eml', async (req, res) => {
    const copy = await openFailedCopy(deps.store, req.viewer!, String(req.params.id));
    if (!copy) throw new AppError('NOT_FOUND', 'No copy of that message is kept.', { status: 404 });
    res.attachment(emlFilename(copy.subject));
    res.type('message/rfc822');
    res.set('Content-Security-Policy', "sandbox; default-src 'none'");
    res.send(copy.bytes);
  });

  /**
   * Retry now / Discard act on a queued entry. One that is not queued any more (the worker sent it or gave up
   * meanwhile, or the button was pressed twice and the first press discarded it) is said on the Outbox, where
   * its state shows, not on an error page.
   */
  async function onQueued(req: Request, res: Response, action: () => Promise<void>, done: string): Promise<void> {
    try {
      await action();
      flash(req, 'success', done);
    } catch (err) {
      if (!isAppError(err) || err.code !== 'NOT_QUEUED') throw err;
      flash(req, 'info', 'This message is no longer queued: it was sent, discarded or given up meanwhile (see its state below).');
    }
    res.redirect(303, '/outbox');
  }

  router.post('/outbox/:id/retry', (req, res) => onQueued(req, res, () => retryOutboxNow(deps.store, req.viewer!, String(req.params.id), deps.clock()),
    'It will be retried at the outbox worker\'s next pass (within a minute).'));

  router.post('/outbox/:id/discard', (req, res) => onQueued(req, res, () => discardOutboxEntry(deps.store, req.viewer!, String(req.params.id), deps.clock()),
    'Discarded: it will not be retried.'));

  return router;
}
