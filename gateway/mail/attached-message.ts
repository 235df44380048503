import { simpleParser, type AddressObject } from 'mailparser';

/**
 * Messages attached to a message (message/rfc822, RFC 2046 §5.2.1;
 * message/global, RFC 6532 §3.5): "forward as attachment", a colleague
 * passing on a customer's mail, a chain of them, or a mailer that forwards
 * inline as an rfc822 part with no disposition (mailparser makes every such
 * part an attachment). Listed only as "attachment-1.eml", the forwarded mail
 * could not be read without a mail program, and the note "see below" stood
 * above nothing. Its headers and text are shown from a parse of that part
 * (mailparser, as everywhere) when the message page is opened, and its
 * words are kept at ingest for search (attachedMessagesSearchText).
 */

/** An attached message larger than this stays a download only. */
export const ATTACHED_MESSAGE_MAX_BYTES = 1024 * 1024;
/** Attached messages shown per message (a digest of hundreds stays a list of downloads). */
export const ATTACHED_MESSAGES_SHOWN = 5;
/** Text shown of one attached message. */
const TEXT_MAX_CHARS = 100_000;

const MESSAGE_TYPES = new Set(['message/rfc822', 'message/global']);

/** Whether a part of this type is a message attached to the message. */
export function isAttachedMessageType(contentType: string | null | undefined): boolean {
  return MESSAGE_TYPES.has((contentType ?? '').trim().toLowerCase());
}

/** Positions of the attached messages to show, among a message's described attachments. */
export function attachedMessageIndexes(attachments: ReadonlyArray<{ contentType?: string | null; size?: number | null }>): number[] {
  const indexes: number[] = [];
  attachments.forEach((part, index) => {
    if (indexes.length < ATTACHED_MESSAGES_SHOWN && isAttachedMessageType(part.contentType) && (part.size ?? 0) <= ATTACHED_MESSAGE_MAX_BYTES) indexes.push(index);
  });
  return indexes;
}

export interface AttachedAddress {
  name: string;
  address: string;
}

export interface AttachedMessage {
  subject: string;
  from: AttachedAddress[];
  to: AttachedAddress[];
  cc: AttachedAddress[];
  date: Date | null;
  /** The text part, or the text of the HTML part when there is no text part; cut at TEXT_MAX_CHARS. */
  text: string;
  truncated: boolean;
  /** Its own attachments (an earlier message attached to it among them), as described for naming (attachmentFilename). */
  attachments: Array<{ filename: string; contentType: string; contentId: string }>;
  /** The bytes of the messages attached to it in turn (a chain of forwards), within the same limits. */
  innerMessages: Buffer[];
}

function addresses(value: AddressObject | AddressObject[] | undefined): AttachedAddress[] {
  const out: AttachedAddress[] = [];
  for (const object of value ? (Array.isArray(value) ? value : [value]) : []) {
    for (const entry of object.value ?? []) {
      for (const member of entry.group ?? [entry]) if (member.address || member.name) out.push({ name: member.name ?? '', address: (member.address ?? '').toLowerCase() });
    }
  }
  return out;
}

/** Read one attached message's headers and text. */
export async function describeAttachedMessage(bytes: Buffer): Promise<AttachedMessage> {
  const parsed = await simpleParser(bytes, { keepCidLinks: true, skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true, maxHtmlLengthToParse: 2 * 1024 * 1024 });
  const text = (parsed.text ?? '').replace(/\u0000/g, '');
  return {
    subject: parsed.subject ?? '',
    from: addresses(parsed.from),
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    date: parsed.date && !Number.isNaN(parsed.date.getTime()) ? parsed.date : null,
    text: text.slice(0, TEXT_MAX_CHARS),
    truncated: text.length > TEXT_MAX_CHARS,
    attachments: parsed.attachments.map((attachment) => ({ filename: attachment.filename ?? '', contentType: attachment.contentType ?? '', contentId: attachment.contentId ?? '' })),
    innerMessages: parsed.attachments
      .filter((attachment) => isAttachedMessageType(attachment.contentType) && attachment.content.length <= ATTACHED_MESSAGE_MAX_BYTES)
      .slice(0, ATTACHED_MESSAGES_SHOWN)
      .map((attachment) => attachment.content),
  };
}

/** Attached messages read for search per message, a chain of forwards included. */
const ATTACHED_MESSAGES_READ_FOR_SEARCH = 10;
/** Search text kept per message, for all its attached messages together. */
export const ATTACHED_SEARCH_TEXT_MAX_CHARS = 200_000;

/**
 * The words of attached messages that search should find: their senders, subjects and texts, as one
 * string. A message that cannot be read adds nothing (it stays a download).
 */
export async function attachedMessagesSearchText(messages: readonly Buffer[]): Promise<string> {
  const texts: string[] = [];
  // Breadth first through a chain of forwards, a bounded number of messages in all.
  const queue = messages.slice(0, ATTACHED_MESSAGES_SHOWN);
  for (let read = 0; read < queue.length && read < ATTACHED_MESSAGES_READ_FOR_SEARCH; read++) {
    const described = await describeAttachedMessage(queue[read]).catch(() => null);
    if (!described) continue;
    const people = [...described.from, ...described.to, ...described.cc].map((person) => (person.name ? `${person.name} <${person.address}>` : person.address)).join(', ');
    texts.push([described.subject, people, described.text].join('\n'));
    queue.push(...described.innerMessages);
  }
  return texts.join('\n\n').slice(0, ATTACHED_SEARCH_TEXT_MAX_CHARS);
}
