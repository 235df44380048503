import crypto from 'node:crypto';
import MailComposer from 'nodemailer/lib/mail-composer';
import { AppError } from '../core/errors';
import { describeFields } from '../accounts/users';
import { headerValueProblem, LINE_BREAK, LINE_BREAK_PROBLEM, MAX_RECIPIENTS, parseAddressList, uniqueAddresses, type Mailbox } from './addresses';
import { bracketMessageId } from './reply';

/**
 * Message composition. MIME is built by nodemailer's MailComposer (never by
 * hand): it encodes non-ASCII headers (RFC 2047), folds lines, picks
 * transfer encodings and multipart structure.
 */

export interface AttachmentInput {
  filename: string;
  contentType?: string;
  content: Buffer;
}

/** What a person (console form or API call) asks to send. Address fields as typed or as lists. */
export interface DraftInput {
  to?: string | string[];
  cc?: string | string[];
  bcc?: string | string[];
  subject?: string;
  text?: string;
  attachments?: AttachmentInput[];
}

/** A checked draft: every header value free of line breaks, every address valid. */
export interface Draft {
  to: Mailbox[];
  cc: Mailbox[];
  bcc: Mailbox[];
  subject: string;
  text: string;
  attachments: Array<Required<AttachmentInput>>;
}

export const MAX_SUBJECT_LENGTH = 998; // RFC 5322 §2.1.1 line limit
export const MAX_ATTACHMENTS = 20;
const CONTENT_TYPE = /^[a-z0-9!#$&^_.+-]{1,127}\/[a-z0-9!#$&^_.+-]{1,127}$/i; // RFC 6838 §4.2 type/subtype

/** Whether `value` is a media type (RFC 6838 §4.2 type/subtype) an attachment can be sent as. */
export function isMediaType(value: string | null | undefined): boolean {
  return CONTENT_TYPE.test((value ?? '').trim());
}

/**
 * Check a draft. Problems come back all at once as a 400 VALIDATION_FAILED
 * with `fields` keyed like the API (`to`, `subject`, `attachments.0.filename`):
 * a CR or LF in any header-bound field (header injection) is refused there,
 * never cleaned silently. `maxBytes` bounds the attachments together; `maxAttachments` their number
 * (default MAX_ATTACHMENTS, what a person may upload).
 */
export function checkDraft(input: DraftInput, options: { maxBytes: number; maxAttachments?: number }): Draft {
  const fields: Record<string, string> = {};
  const lists: Record<'to' | 'cc' | 'bcc', Mailbox[]> = { to: [], cc: [], bcc: [] };
  for (const name of ['to', 'cc', 'bcc'] as const) {
    const { mailboxes, problem } = parseAddressList(input[name]);
    if (problem) fields[name] = problem;
    lists[name] = mailboxes;
  }
  const recipients = uniqueAddresses(lists.to, lists.cc, lists.bcc);
  if (!fields.to && !fields.cc && !fields.bcc && recipients.length === 0) fields.to = 'needs at least one address';
  if (recipients.length > MAX_RECIPIENTS) fields.to = `has ${recipients.length} recipients with Cc and Bcc; at most ${MAX_RECIPIENTS} are allowed`;

  const subject = (input.subject ?? '').trim();
  const subjectProblem = headerValueProblem(input.subject ?? '');
  if (subjectProblem) fields.subject = subjectProblem;
  else if (subject.length > MAX_SUBJECT_LENGTH) fields.subject = `must be at most ${MAX_SUBJECT_LENGTH} characters`;

  const text = (input.text ?? '').replace(/\0/g, '');
  const attachments: Draft['attachments'] = [];
  const given = input.attachments ?? [];
  const maxAttachments = options.maxAttachments ?? MAX_ATTACHMENTS;
  if (given.length > maxAttachments) fields.attachments = `at most ${maxAttachments} attachments`;
  let total = 0;
  given.slice(0, maxAttachments).forEach((attachment, index) => {
    const filename = (attachment.filename ?? '').trim();
    const problem = headerValueProblem(attachment.filename ?? '');
    if (problem) fields[`attachments.${index}.filename`] = problem;
    else if (!filename) fields[`attachments.${index}.filename`] = 'is needed';
    else if (filename.length > 255) fields[`attachments.${index}.filename`] = 'must be at most 255 characters';
    const contentType = (attachment.contentType ?? '').trim() || 'application/octet-stream';
    if (LINE_BREAK.test(attachment.contentType ?? '')) fields[`attachments.${index}.contentType`] = LINE_BREAK_PROBLEM;
    else if (!CONTENT_TYPE.test(contentType)) fields[`attachments.${index}.contentType`] = 'must be a media type such as application/pdf';
    total += attachment.content.length;
    attachments.push({ filename, contentType: contentType.toLowerCase(), content: attachment.content });
  });
  if (total > options.maxBytes) fields.attachments = `are ${formatSize(total)} together; at most ${formatSize(options.maxBytes)} can be sent`;

  if (Object.keys(fields).length > 0) throw new AppError('VALIDATION_FAILED', describeFields(fields), { status: 400, fields });
  return { ...lists, subject, text, attachments };
}

function formatSize(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

/** A new Message-ID (RFC 5322 §3.6.4): random left part, the sender's domain on the right. Bare, without brackets. */
export function newMessageId(fromAddress: string): string {
  const domain = fromAddress.slice(fromAddress.lastIndexOf('@') + 1) || 'postroom.invalid';
  return `${crypto.randomUUID()}@${domain}`;
}

const asAddress = (mailbox: Mailbox) => ({ name: mailbox.name, address: mailbox.address });

export interface ComposeInput {
  from: Mailbox;
  draft: Draft;
  messageId: string;
  date: Date;
  inReplyTo?: string;
  references?: string[];
}

export interface ComposedMessage {
  /** What goes over SMTP: no Bcc header (RFC 5322 §3.6.3, the usual "Bcc removed" variant). */
  transmit: Buffer;
  /** The sender's own copy, stored and appended to Sent: the same bytes plus the Bcc header. */
  file: Buffer;
}

/**
 * Build the message. Both copies come from one MIME tree, so they share the
 * Message-ID, Date, boundaries and encodings and differ only in Bcc.
 */
export async function composeMessage(input: ComposeInput): Promise<ComposedMessage> {
  const { draft } = input;
  const composer = new MailComposer({
    // As {name, address}: nodemailer quotes or encodes the name itself (RFC 5322 §3.2.4, RFC 2047), nothing re-parsed.
    from: asAddress(input.from),
    // Only Bcc recipients: an empty group for To (RFC 5322 §3.6.3 and its A.1.3 example), as mail programs write
    // it. A message without To is scored as spam ("missing To header") and shows an empty To line.
    to: draft.to.length === 0 && draft.cc.length === 0 ? 'undisclosed-recipients:;' : draft.to.map(asAddress),
    cc: draft.cc.map(asAddress),
    bcc: draft.bcc.map(asAddress),
    subject: draft.subject,
    text: draft.text,
    date: input.date,
    messageId: bracketMessageId(input.messageId),
    inReplyTo: input.inReplyTo ? bracketMessageId(input.inReplyTo) : undefined,
    references: input.references?.length ? input.references.map(bracketMessageId) : undefined,
    // Attachments as attachments (RFC 2183): nodemailer makes a message/rfc822 part (a forwarded .eml) inline by
    // default, which mail programs splice into the body instead of listing it.
    attachments: draft.attachments.map((attachment) => ({ filename: attachment.filename, contentType: attachment.contentType, content: attachment.content, contentDisposition: 'attachment' as const })),
    // RFC 5322 §2.3: CRLF only, never a bare LF — and the bytes stored, appended to Sent and sent are then the same.
    newline: 'windows',
    // Content comes only from what was given: never from a path or URL in the input.
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  const root = composer.compile();
  if (draft.bcc.length === 0) {
    const bytes = await root.build();
    return { transmit: bytes, file: bytes };
  }
  root.keepBcc = true;
  const file = await root.build();
  root.keepBcc = false;
  const transmit = await root.build();
  return { transmit, file };
}
