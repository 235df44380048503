import mime from 'mime-types';
import mongoose from 'mongoose';
import { AppError, notFound } from '../core/errors';
import { parseObjectId } from '../accounts/ids';
import type { Viewer } from '../accounts/mail-accounts';
import { getMessageFor, rawStream } from '../accounts/mailbox';
import { viewerTimeZone } from '../accounts/viewer-time-zone';
import { allAttachmentsFromRaw, attachmentFilename } from '../mail/attachments';
import type { OutboxStatus } from '../models/outbox';
import { formatMailbox, uniqueAddresses, type Mailbox } from './addresses';
import { checkDraft, composeMessage, isMediaType, MAX_ATTACHMENTS, newMessageId, type AttachmentInput, type DraftInput } from './compose';
import { attemptDelivery, type OutboxEntry } from './deliver';
import { DEFAULT_LOCK_MS, newHolder, type SendDeps } from './deps';
import { ownAddresses } from './own-addresses';
import { takeSendSlot } from './rate-limit';
import { ORIGINAL_ACTIONS, prepareFromOriginal, type OriginalAction } from './reply';
import { sendingProblem, type SendingAccount } from './settings';

type ObjectId = mongoose.Types.ObjectId;

/** What the console form or the API asks for. Omitted To/Cc/Subject of a reply come from the original. */
export interface SendRequest extends DraftInput {
  /** Reply to, reply all to, or forward a stored message the sender may read. */
  original?: {
    id: string;
    action: OriginalAction;
    /** Add the quoted original (reply) or the forwarded block (forward) under `text`. The console puts it in the form instead. */
    quote?: boolean;
    /** Forward only: attach the original's attachments too (default true). */
    includeAttachments?: boolean;
  };
  /** Display name on From (default: the sending user's name). */
  fromName?: string;
  /** The user pressing Send (recorded on the outbox entry). */
  createdBy?: ObjectId | null;
}

export interface SendResult {
  /** 'sent': the server took it (some recipients may be refused: `refused`); 'queued': it will be retried. */
  status: Extract<OutboxStatus, 'sent' | 'queued'>;
  outboxId: string;
  messageId: string;
  /** The stored copy (source 'sent'); null while queued. */
  storedMessageId: string | null;
  refused: Array<{ address: string; reply: string }>;
  /** Why it is queued (the server's temporary reply or the network failure). */
  queuedBecause: string;
  nextAttemptAt: Date | null;
}

async function loadOriginal(deps: SendDeps, viewer: Viewer, original: NonNullable<SendRequest['original']>) {
  if (!(ORIGINAL_ACTIONS as readonly string[]).includes(original.action)) {
    throw new AppError('VALIDATION_FAILED', `original.action must be one of ${ORIGINAL_ACTIONS.join(', ')}`, { status: 400, fields: { 'original.action': `must be one of ${ORIGINAL_ACTIONS.join(', ')}` } });
  }
  const message = await getMessageFor(deps.store, viewer, original.id, '+rawInline');
  if (!message) throw new AppError('VALIDATION_FAILED', 'original.id is not a message you can read', { status: 400, fields: { 'original.id': 'is not a message you can read' } });
  return message;
}

async function forwardedAttachments(deps: SendDeps, message: Awaited<ReturnType<typeof loadOriginal>>): Promise<AttachmentInput[]> {
  const attachments = message.attachments ?? [];
  if (attachments.length === 0) return [];
  // Read back from the raw message; messages stored before that kept a GridFS copy of each.
  const fromRaw = attachments.some((a) => !a.blobId) ? await allAttachmentsFromRaw(rawStream(deps.store, message)) : [];
  const out: AttachmentInput[] = [];
  for (const [index, attachment] of attachments.entries()) {
    const content = attachment.blobId ? await deps.store.blobs.get(attachment.blobId) : fromRaw[index];
    if (!content) continue;
    const filename = attachmentFilename(attachment, index);
    // What the original's sender wrote is passed on when it is a media type. Sloppy mailers write "pdf" or
    // "application/pdf/x", which checkDraft refuses: the forward failed over a field nobody typed. The file's
    // name then says what it is, or it goes as application/octet-stream (bytes passed on untouched).
    const contentType = isMediaType(attachment.contentType) ? attachment.contentType! : mime.lookup(filename) || 'application/octet-stream';
    out.push({ filename, contentType, content });
  }
  return out;
}

/**
 * Send a message from one of the viewer's own accounts (admins included:
 * managing an account is not speaking for its owner; another's is a 404).
 *
 * The message is composed, written to the outbox (with the lock of this
 * request) and submitted at once. The server taking it → filed (Sent folder
 * + ingest with source 'sent') → `{status: 'sent'}`. A 4xx reply or a
 * network failure → `{status: 'queued'}`, retried by the outbox worker. A
 * permanent failure (5xx for every recipient, authentication, TLS) throws
 * the classified AppError (422) with the server's reply; nothing is stored
 * as sent. Over SEND_RATE_LIMIT → 429 RATE_LIMITED.
 *
 * Checked in this order: the account (404), the request itself (400
 * VALIDATION_FAILED naming every field), then whether the account can send
 * (409 ACCOUNT_NOT_SENDABLE) and the rate limit (429).
 */
export async function sendMessage(deps: SendDeps, viewer: Viewer, accountId: string, request: SendRequest): Promise<SendResult> {
  const now = deps.clock?.() ?? new Date();
  const objectId = parseObjectId(accountId);
  // Only the mailbox's owner sends as it — admins too: managing an account is not speaking for its owner.
  const account = (objectId ? await deps.store.models.MailAccount.findOne({ _id: objectId, ownerId: viewer.id }).lean() : null) as unknown as SendingAccount | null;
  if (!account) throw notFound('mail account');

  // The sender's clock (Profile, else the business's zone), for the dates a person reads: read once, when needed.
  let zone: Promise<string> | undefined;
  const senderZone = () => (zone ??= deps.store.models.User.findById(viewer.id, { timeZone: 1 }).lean().then((user) => viewerTimeZone(deps.store, user)));
  let input: DraftInput = { ...request };
  let inReplyTo = '';
  let references: string[] = [];
  let forwardedCount = 0;
  if (request.original) {
    const original = await loadOriginal(deps, viewer, request.original);
    const own = await ownAddresses(deps.store, account.ownerId, deps.gatewayDomain);
    // The attribution's date on the sender's clock, as in the console's Reply form.
    const prepared = prepareFromOriginal(original, request.original.action, own, await senderZone());
    const listText = (list: Mailbox[]) => list.map(formatMailbox);
    input = {
      ...input,
      to: request.to ?? listText(prepared.to),
      cc: request.cc ?? listText(prepared.cc),
      subject: request.subject ?? prepared.subject,
      text: request.original.quote === false ? request.text : `${request.text ?? ''}${request.text ? '\n\n' : ''}${prepared.quote}`,
    };
    inReplyTo = prepared.inReplyTo;
    references = prepared.references;
    if (request.original.action === 'forward' && request.original.includeAttachments !== false) {
      const forwarded = await forwardedAttachments(deps, original);
      forwardedCount = forwarded.length;
      input.attachments = [...(request.attachments ?? []), ...forwarded];
    }
  }
  // MAX_ATTACHMENTS bounds what the user uploads; a forward carries the original's as well, however many it had
  // (a long Outlook thread collects a signature logo per message): "at most 20 attachments" refused a forward
  // the user had added nothing to. The size limit still bounds them all.
  const draft = checkDraft(input, { maxBytes: deps.maxMessageBytes, maxAttachments: MAX_ATTACHMENTS + forwardedCount });
  // After the request's own problems (400), which the caller can fix whatever state the account is in.
  const problem = sendingProblem(account);
  if (problem) throw new AppError('ACCOUNT_NOT_SENDABLE', `${account.email} cannot send: ${problem}.`, { status: 409 });

  const user = await deps.store.models.User.findById(account.ownerId, { name: 1 }).lean();
  // The display name comes from the user's profile: no line breaks may reach the From header (header injection).
  const from: Mailbox = { name: (request.fromName ?? user?.name ?? '').replace(/[\r\n\0]+/g, ' ').trim(), address: account.email };
  const messageId = newMessageId(account.email);
  const composed = await composeMessage({ from, draft, messageId, date: now, inReplyTo, references });
  if (composed.file.length > deps.maxMessageBytes) {
    throw new AppError('VALIDATION_FAILED', `the message would be ${composed.file.length} bytes once encoded; at most ${deps.maxMessageBytes} can be sent`, {
      status: 400, fields: { attachments: `make the message ${Math.ceil((composed.file.length - deps.maxMessageBytes) / 1024)} KB smaller (attachments grow by a third when encoded)` },
    });
  }

  await takeSendSlot(deps, account, now, senderZone);
  const holder = newHolder('send');
  const outboxId = new mongoose.Types.ObjectId();
  const owner = { collection: 'outbox', id: outboxId } as const;
  const transmitBlobId = await deps.store.blobs.put(composed.transmit, { kind: 'outbox', messageId, owner });
  const fileBlobId = composed.file === composed.transmit ? transmitBlobId : await deps.store.blobs.put(composed.file, { kind: 'outbox', messageId, owner });
  const recipients = uniqueAddresses(draft.to, draft.cc, draft.bcc).map((address) => ({ address, state: 'pending', reply: '', at: null }));
  let created;
  try {
    created = await deps.store.models.Outbox.create({
      _id: outboxId,
      accountId: account._id,
      ownerId: account.ownerId,
      createdBy: request.createdBy ?? null,
      messageId,
      subject: draft.subject,
      from,
      to: draft.to,
      cc: draft.cc,
      bcc: draft.bcc,
      envelopeFrom: account.email,
      recipients,
      transmitBlobId,
      fileBlobId,
      size: composed.transmit.length,
      status: 'queued',
      // Due now and locked by this request: after a crash the worker picks it up when the lock expires.
      nextAttemptAt: now,
      lockedUntil: new Date(now.getTime() + (deps.lockMs ?? DEFAULT_LOCK_MS)),
      lockedBy: holder,
      original: request.original ? { messageId: parseObjectId(request.original.id), action: request.original.action } : { messageId: null, action: '' },
      createdAt: now,
    });
  } catch (err) {
    await Promise.allSettled([...new Set([transmitBlobId, fileBlobId])].map((id) => deps.store.blobs.delete(id)));
    throw err;
  }

  const entry = created.toObject() as unknown as OutboxEntry;
  const result = await attemptDelivery(deps, entry, holder);
  if (result.status === 'failed') {
    const failure = result.failure?.error ?? new AppError('RECIPIENT_REFUSED', `Every recipient was refused: ${result.refused.map((r) => `${r.address} (${r.reply})`).join('; ')}`, { status: 422 });
    throw failure;
  }
  return {
    status: result.status === 'sent' ? 'sent' : 'queued',
    outboxId: entry._id.toHexString(),
    messageId,
    storedMessageId: result.storedMessageId ? result.storedMessageId.toHexString() : null,
    refused: result.refused,
    queuedBecause: result.status === 'queued' ? result.failure?.error.message ?? '' : '',
    nextAttemptAt: result.nextAttemptAt,
  };
}
