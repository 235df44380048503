import { Router } from 'express';
import {
  conversationOf, deleteMessage, getMessageFor, listMessages, openAttachment, openRawMessage, releaseMessage, setReadState, viewerTimeZone, type MessageFilters,
} from '../../../gateway/accounts';
import { notFound } from '../../../gateway/core/errors';
import { automatedMailOf } from '../../../gateway/crm/bulk';
import { attachmentFilename } from '../../../gateway/mail/attachments';
import { planInlineImages } from '../../../gateway/mail/inline-images';
import { attachmentIndex, setAttachmentHeaders, streamDownload } from '../../lib/download';
import { sanitizeMessageHtml } from '../../lib/sanitize';
import type { AdminDeps } from '../../types';
import { checkQuery, wholeNumberParam } from './validate';

type FullMessage = NonNullable<Awaited<ReturnType<typeof getMessageFor>>>;

/**
 * The JSON form of one message; `html` is sanitised (remote images
 * withheld) as the console shows it, except that images of the message
 * itself keep their `cid:` source: a client resolves them against the
 * attachment with that `contentId` (marked `inline`, the parts the console
 * shows in the body instead of its attachment list) rather than receiving
 * every image base64 in the JSON.
 */
function toJson(message: FullMessage) {
  const id = message._id.toString();
  const sanitized = message.html ? sanitizeMessageHtml(message.html, { loadImages: false, keepContentIdLinks: true }) : null;
  const shownInline = new Set(planInlineImages(sanitized?.contentIds ?? [], message.attachments ?? []).map((image) => image.index));
  return {
    id,
    accountId: message.accountId ? message.accountId.toString() : null,
    ownerId: message.ownerId.toString(),
    messageId: message.messageId ?? '',
    receivedAt: message.receivedAt,
    date: message.date ?? null,
    from: message.from ?? null,
    to: message.to ?? [],
    cc: message.cc ?? [],
    replyTo: message.replyTo ?? [],
    subject: message.subject ?? '',
    headers: (message.headers ?? []).map((header) => ({ name: header.name ?? '', value: header.value ?? '' })),
    text: message.text ?? '',
    html: sanitized?.html ?? '',
    auth: message.auth,
    status: message.status,
    quarantineReason: message.quarantineReason ?? '',
    parseError: message.parseError ?? '',
    kind: message.kind ?? 'message',
    automated: automatedMailOf(message),
    confirmation: message.confirmation,
    sources: (message.sources ?? []).map((source) => ({ kind: source.kind, at: source.at, folder: source.folder || undefined })),
    attachments: (message.attachments ?? []).map((attachment, index) => ({
      index,
      filename: attachmentFilename(attachment, index),
      contentType: attachment.contentType,
      size: attachment.size,
      contentId: attachment.contentId ?? '',
      inline: shownInline.has(index),
      url: `/api/v1/messages/${id}/attachments/${index}`,
    })),
    linkedObjectIds: (message.linkedObjectIds ?? []).map(String),
    size: message.size,
    rawUrl: `/api/v1/messages/${id}/raw`,
    // Only `unread: true` is unread: mail stored before read state existed has no such field.
    read: message.unread !== true,
  };
}

/** /api/v1/messages: the inbox with the console's filters, one message, raw bytes, quarantine release. */
export function messagesApi(deps: AdminDeps): Router {
  const router = Router();

  router.get('/messages', async (req, res) => {
    const query = checkQuery(req.query as Record<string, unknown>, ['account', 'source', 'verdict', 'status', 'object', 'owner', 'q', 'since', 'until', 'unread', 'cursor', 'limit']);
    const limit = wholeNumberParam(query.limit, 'limit', 1, 200);
    const filters: MessageFilters = {
      accountId: query.account, source: query.source, verdict: query.verdict, status: query.status, objectId: query.object, ownerId: query.owner, q: query.q,
      // Days of the token user's zone, as the console reads the same days for them (times in answers stay UTC).
      unread: query.unread,
      since: query.since, until: query.until, timeZone: query.since || query.until ? await viewerTimeZone(deps.store, req.user) : undefined,
    };
    const page = await listMessages(deps.store, req.viewer!, filters, { cursor: query.cursor, limit });
    res.json(page);
  });

  router.get('/messages/:id', async (req, res) => {
    const message = await getMessageFor(deps.store, req.viewer!, String(req.params.id));
    if (!message) throw notFound('message');
    res.json(toJson(message));
  });

  // The console's conversation panel: the same messages, oldest first, the one asked about among them.
  router.get('/messages/:id/conversation', async (req, res) => {
    const message = await getMessageFor(deps.store, req.viewer!, String(req.params.id));
    if (!message) throw notFound('message');
    const conversation = await conversationOf(deps.store, req.viewer!, message);
    const entries = conversation?.messages ?? [message];
    res.json({
      messages: entries.map((entry) => ({
        id: entry._id.toString(),
        messageId: entry.messageId ?? '',
        subject: entry.subject ?? '',
        from: entry.from ?? null,
        date: entry.date ?? null,
        receivedAt: entry.receivedAt,
        status: entry.status,
        current: entry._id.equals(message._id),
      })),
      more: conversation?.more ?? false,
    });
  });

  router.get('/messages/:id/raw', async (req, res) => {
    const raw = await openRawMessage(deps.store, req.viewer!, String(req.params.id));
    if (!raw) throw notFound('message');
    res.type('message/rfc822');
    streamDownload(res, raw.stream);
  });

  router.get('/messages/:id/attachments/:index', async (req, res) => {
    const index = attachmentIndex(req.params.index);
    const attachment = index >= 0 ? await openAttachment(deps.store, req.viewer!, String(req.params.id), index) : null;
    if (!attachment) throw notFound('attachment');
    setAttachmentHeaders(res, attachment);
    streamDownload(res, attachment.stream);
  });

  router.post('/messages/:id/release', async (req, res) => {
    await releaseMessage({ store: deps.store, actor: req.actor!, afterRelease: deps.afterRelease }, req.viewer!, String(req.params.id));
    const message = await getMessageFor(deps.store, req.viewer!, String(req.params.id));
    res.json(toJson(message!));
  });

  // Read state, set explicitly (a GET never changes it: a script exporting mail must not read it for its owner).
  for (const [action, read] of [['read', true], ['unread', false]] as const) {
    router.post(`/messages/:id/${action}`, async (req, res) => {
      const found = await setReadState(deps.store, req.viewer!, [String(req.params.id)], read);
      if (!found) throw notFound('message');
      res.json({ id: String(req.params.id), read });
    });
  }

  router.delete('/messages/:id', async (req, res) => {
    await deleteMessage({ store: deps.store, actor: req.actor!, now: deps.clock() }, req.viewer!, String(req.params.id));
    res.status(204).end();
  });

  return router;
}
