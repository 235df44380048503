import { Readable } from 'node:stream';
import { domainToASCII, domainToUnicode } from 'node:url';
import { AppError, notFound } from '../core/errors';
import { addDays, canonicalTimeZone, dayInZone, DEFAULT_TIME_ZONE, isCalendarDay, startOfDayInZone, TIME_ZONE_PROBLEM } from '../core/time-zone';
import { attachmentFilename, attachmentFromRaw, attachmentsFromRaw } from '../mail/attachments';
import { imageDataUrl, INLINE_IMAGE_MAX_BYTES, isInlineImagePart, type DescribedPart, type InlineImage } from '../mail/inline-images';
import { isSealedPartType } from '../mail/secure-mime';
import { SOURCE_KINDS, VERDICTS } from '../models/message';
import type { Store } from '../store';
import { recordAudit, type Actor } from './audit';
import { NOT_AN_ID, parseObjectId, type ObjectId } from './ids';
import { isAdmin, type Viewer } from './mail-accounts';
import { describeFields } from './users';
import { escapeRegex } from '../core/regex';
import { claimUnderLease, newHolderId, runExclusive } from '../sync/lease';
import { accentInsensitive } from './accent-folding';
import { forgetUnreadCounts } from './read-state';

/** The inbox page size (issue 4). */
export const PAGE_SIZE = 50;

export interface MessageFilters {
  accountId?: string;
  /** forward | mx | imap | sent */
  source?: string;
  /** pass | fail | none */
  verdict?: string;
  /** inbox (default) | quarantine | all */
  status?: string;
  /** A linked CRM object's id. */
  objectId?: string;
  /** Sender, recipient or subject contains this (case-insensitive). */
  q?: string;
  /** Admins only: one user's mail. */
  ownerId?: string;
  /** Received on this day ("YYYY-MM-DD") or later, in `timeZone`. */
  since?: string;
  /** Received on this day ("YYYY-MM-DD") or earlier, in `timeZone`. */
  until?: string;
  /**
   * The zone `since` and `until` are days of: the reader's (viewerTimeZone), so "2026-03-29" is the day
   * their clock said so, from its midnight to the next (23 hours on a spring-forward day). Default UTC.
   */
  timeZone?: string;
  /** 'true': only entries the owner has not opened (read-state.ts); 'false': only read ones. */
  unread?: string;
}

export interface MessageSummary {
  id: string;
  accountId: string | null;
  ownerId: string;
  receivedAt: Date;
  from: { address: string; name: string };
  to: Array<{ address: string; name: string }>;
  subject: string;
  snippet: string;
  sources: string[];
  verdict: string;
  /** Is the From domain authenticated (auth-policy.ts senderAuthentication): pass, fail, none, or '' when not recorded. */
  senderVerdict: string;
  /** Why a quarantined message was held, in plain words (gateway/mail/auth-explain.ts); '' otherwise. */
  whyHeld: string;
  status: string;
  kind: string;
  /** Has the owner opened this mail? False while any of the entry's copies is unread (read-state.ts). */
  read: boolean;
  confirmationCode: string;
  hasAttachments: boolean;
  linkedObjectIds: string[];
  size: number;
  /**
   * How many of the owner's mailboxes hold this mail (a customer writing to two of them, a Bcc to the
   * dropbox): listed once, the newest copy, with every copy's sources.
   */
  copies: number;
}

export interface MessagePage {
  messages: MessageSummary[];
  /** Pass as `cursor` to get the next (older) page; null on the last page. */
  nextCursor: string | null;
}

/**
 * The query parameter each filter is read from, in the console's inbox and
 * GET /api/v1/messages alike: problems are reported under the name the user
 * typed (`account`), not the field it fills (`accountId`).
 */
export const FILTER_PARAMETERS = {
  accountId: 'account', source: 'source', verdict: 'verdict', status: 'status', objectId: 'object', q: 'q', ownerId: 'owner',
  since: 'since', until: 'until', timeZone: 'timeZone', unread: 'unread',
} as const satisfies Record<keyof MessageFilters, string>;

const NOT_A_DAY = 'must be a date written YYYY-MM-DD (example: 2026-03-29)';

/** Problems with filter values, keyed by query parameter (FILTER_PARAMETERS); empty when they are usable. */
export function filterProblems(filters: MessageFilters): Record<string, string> {
  const fields: Record<string, string> = {};
  const problem = (filter: keyof MessageFilters, text: string) => (fields[FILTER_PARAMETERS[filter]] = text);
  if (filters.source && !(SOURCE_KINDS as readonly string[]).includes(filters.source)) problem('source', `must be one of ${SOURCE_KINDS.join(', ')}`);
  if (filters.verdict && !(VERDICTS as readonly string[]).includes(filters.verdict)) problem('verdict', `must be one of ${VERDICTS.join(', ')}`);
  if (filters.status && !['inbox', 'quarantine', 'all'].includes(filters.status)) problem('status', 'must be inbox, quarantine or all');
  if (filters.accountId && !parseObjectId(filters.accountId)) problem('accountId', NOT_AN_ID);
  if (filters.objectId && !parseObjectId(filters.objectId)) problem('objectId', NOT_AN_ID);
  if (filters.ownerId && !parseObjectId(filters.ownerId)) problem('ownerId', NOT_AN_ID);
  if (filters.q && filters.q.length > 200) problem('q', 'must be at most 200 characters');
  // BSON cannot carry a NUL inside a regular expression (the driver throws before asking the store), and
  // stored text never holds one (parse.ts strips it), so such a search can only be a mistake.
  else if (filters.q?.includes('\u0000')) problem('q', 'must not contain a NUL character');
  if (filters.since && !isCalendarDay(filters.since)) problem('since', NOT_A_DAY);
  if (filters.until && !isCalendarDay(filters.until)) problem('until', NOT_A_DAY);
  else if (filters.since && filters.until && isCalendarDay(filters.since) && filters.until < filters.since) problem('until', `must not be before the first day (${filters.since})`);
  if (filters.timeZone && !canonicalTimeZone(filters.timeZone)) problem('timeZone', TIME_ZONE_PROBLEM);
  if (filters.unread && filters.unread !== 'true' && filters.unread !== 'false') problem('unread', 'must be true or false');
  return fields;
}

/**
 * A typed phrase as a pattern: its words literally, any run of white space between them. Plain-text mail
 * is wrapped at about 72 characters (RFC 3676), so a remembered phrase often spans a line break, and text
 * made of HTML has no-break spaces where the sender typed &nbsp;.
 */
function phrasePattern(value: string, word: (text: string) => string = escapeRegex): string {
  // The spaces of running text spelled out (no-break, the typographic U+2000–U+200A, U+202F, U+205F, ideographic
  // U+3000): the store's regex engine (FerretDB: Go's RE2) reads \s as ASCII white space only, and a phrase typed
  // with the ideographic space of a Japanese or Chinese input method ("会議　資料") found nothing, not even the
  // mail it was copied from. (U+1680, U+2028/9 and U+FEFF in the pattern made FerretDB fail the query.)
  return value.split(/\s+/).map(word).join('[\\s\u00a0\u2000-\u200a\u202f\u205f\u3000]+');
}

/**
 * The typed text with its domain in the other IDNA form (RFC 5891), or '' when it has none: mail names
 * `münchen.de` as `xn--mnchen-3ya.de` (or, SMTPUTF8 mail, the other way round), and people type the form
 * they read; `addresses` keeps the one the mail used.
 */
function otherDomainForm(value: string): string {
  const at = value.lastIndexOf('@');
  const domain = value.slice(at + 1);
  if (!domain || /\s/.test(domain)) return '';
  const other = /(^|\.)xn--/.test(domain) ? domainToUnicode(domain) : /[^\x00-\x7f]/.test(domain) ? domainToASCII(domain) : '';
  return other && other !== domain ? `${value.slice(0, at + 1)}${other}` : '';
}

/** The viewer's scope: employees only ever match their own mail (issue 4), whatever the filters say. */
export function messageScope(viewer: Viewer): Record<string, unknown> {
  return isAdmin(viewer) ? {} : { ownerId: viewer.id };
}

/**
 * The MongoDB filter for the inbox. Each filter maps to a field with an
 * index that starts with it and continues (receivedAt, _id), see
 * gateway/models/message.ts: ownerId, accountId, status, linkedObjectIds.
 */
export function buildMessageFilter(viewer: Viewer, filters: MessageFilters): Record<string, unknown> {
  const problems = filterProblems(filters);
  if (Object.keys(problems).length > 0) {
    throw new AppError('VALIDATION_FAILED', describeFields(problems), { status: 400, fields: problems });
  }
  const filter: Record<string, unknown> = { ...messageScope(viewer) };
  if (filters.ownerId && isAdmin(viewer)) filter.ownerId = parseObjectId(filters.ownerId);
  if (filters.accountId) filter.accountId = parseObjectId(filters.accountId);
  const status = filters.status || 'inbox';
  if (status !== 'all') filter.status = status;
  if (filters.source) filter['sources.kind'] = filters.source;
  if (filters.verdict) filter['auth.verdict'] = filters.verdict;
  if (filters.objectId) filter.linkedObjectIds = parseObjectId(filters.objectId);
  // Only `true` is unread: mail stored before read state existed has no such field and is read.
  if (filters.unread === 'true') filter.unread = true;
  else if (filters.unread === 'false') filter.unread = { $ne: true };
  if (filters.since || filters.until) {
    // Days of the reader's calendar, made instants by the zone's rules; receivedAt is what the list is sorted
    // and indexed by (and what the list shows), so the range is on it.
    const zone = canonicalTimeZone(filters.timeZone || DEFAULT_TIME_ZONE)!;
    const range: Record<string, Date> = {};
    if (filters.since) range.$gte = startOfDayInZone(filters.since, zone);
    if (filters.until) range.$lt = startOfDayInZone(addDays(filters.until, 1), zone);
    filter.receivedAt = range;
  }
  const q = (filters.q ?? '').trim();
  if (q) {
    // `addresses` is stored lower-cased; no $text on FerretDB, so a regex. Display names too: the inbox
    // shows "Jane Roe", and that is what people type. The body (the text part, or the text mailparser
    // made of an HTML-only message) and attachment names are what people remember of a mail just as often.
    const contains = new RegExp(phrasePattern(q.toLowerCase()));
    // Names, subjects and text without regard to accents either: "muller" finds Müller, "resume" résumé.
    const anyCase = new RegExp(phrasePattern(q, accentInsensitive), 'i');
    filter.$or = [
      { addresses: contains }, { subject: anyCase }, { 'from.name': anyCase }, { 'to.name': anyCase }, { 'cc.name': anyCase },
      { text: anyCase }, { 'attachments.filename': anyCase },
      // A mail forwarded as an attachment is remembered by what the customer wrote in it.
      { attachedText: anyCase },
    ];
    const otherForm = otherDomainForm(q.toLowerCase());
    if (otherForm) (filter.$or as unknown[]).push({ addresses: new RegExp(escapeRegex(otherForm)) });
  }
  return filter;
}

/** The problem with a page cursor that is not one this API handed out (a truncated or hand-made value). */
export const NOT_A_CURSOR = 'is not a cursor from a previous page';

export function encodeCursor(receivedAt: Date, id: ObjectId): string {
  return `${receivedAt.getTime()}_${id.toString()}`;
}

export function decodeCursor(cursor: string): { receivedAt: Date; id: ObjectId } | null {
  const match = /^(\d{1,15})_([0-9a-f]{24})$/.exec(cursor);
  if (!match) return null;
  return { receivedAt: new Date(Number(match[1])), id: parseObjectId(match[2])! };
}

type MessageRow = {
  _id: ObjectId; accountId?: ObjectId | null; ownerId: ObjectId; receivedAt: Date; from?: { address?: string | null; name?: string | null } | null;
  to?: Array<{ address?: string | null; name?: string | null }>; subject?: string | null; text?: string | null; sources?: Array<{ kind: string }>;
  auth?: { verdict?: string | null; sender?: string | null; explanation?: string | null } | null; status?: string | null; kind?: string | null;
  quarantineReason?: string | null; confirmation?: { code?: string | null } | null;
  attachments?: DescribedPart[]; linkedObjectIds?: ObjectId[]; size?: number; dedupeKey?: string | null; unread?: boolean | null;
};

/** Recipients a summary lists (the message itself has them all). */
const SUMMARY_RECIPIENTS = 5;

const SUMMARY_PROJECTION = {
  accountId: 1, ownerId: 1, receivedAt: 1, from: 1, to: { $slice: SUMMARY_RECIPIENTS }, subject: 1, text: { $substrCP: ['$text', 0, 200] }, sources: 1,
  'auth.verdict': 1, 'auth.sender': 1, 'auth.explanation': 1, quarantineReason: 1, status: 1, kind: 1, 'confirmation.code': 1, attachments: 1, linkedObjectIds: 1, size: 1,
  dedupeKey: 1, unread: 1,
};

function toSummary(row: MessageRow, copies: MessageRow[] = [row]): MessageSummary {
  const text = (row.text ?? '').replace(/\s+/g, ' ').trim();
  return {
    id: row._id.toString(),
    accountId: row.accountId ? row.accountId.toString() : null,
    ownerId: row.ownerId.toString(),
    receivedAt: row.receivedAt,
    from: { address: row.from?.address ?? '', name: row.from?.name ?? '' },
    // Sliced here too: without projection expressions (FerretDB) the whole list is read.
    to: (row.to ?? []).slice(0, SUMMARY_RECIPIENTS).map((to) => ({ address: to.address ?? '', name: to.name ?? '' })),
    subject: row.subject ?? '',
    // An encrypted mail has no text to show: the list says why its line is empty (the message page says more).
    snippet: text.length > 140 ? `${text.slice(0, 140)}…` : text || ((row.attachments ?? []).some((part) => isSealedPartType(part.contentType)) ? '(encrypted)' : ''),
    sources: [...new Set(copies.flatMap((copy) => copy.sources ?? []).map((source) => source.kind))],
    verdict: row.auth?.verdict ?? 'none',
    senderVerdict: row.auth?.sender ?? '',
    // Mail held for another reason (a confirmation for another mailbox) or stored before explanations: its own reason.
    whyHeld: row.status === 'quarantine' ? row.auth?.explanation || row.quarantineReason || '' : '',
    status: row.status ?? 'inbox',
    kind: row.kind ?? 'message',
    read: !copies.some((copy) => copy.unread === true),
    confirmationCode: row.confirmation?.code ?? '',
    // A logo in the signature is not an attachment to the reader.
    hasAttachments: (row.attachments ?? []).some((part) => !isInlineImagePart(part)),
    linkedObjectIds: (row.linkedObjectIds ?? []).map((id) => id.toString()),
    size: row.size ?? 0,
    copies: copies.length,
  };
}

/**
 * One entry per mail and owner. De-duplication is per mailbox, so a mail that reached two of an
 * employee's mailboxes is stored in each (gateway/mail/ingest.ts), with the same de-duplication key;
 * the employee reads one mail.
 *
 * A mail is listed where its newest copy falls (the list's order): copies on other pages (the page
 * boundary between two copies stored a millisecond apart, or copies that arrived far apart) are found
 * with one look-up on the {ownerId, dedupeKey} index, so the entry counts them all and a later page
 * does not list the mail again.
 */
async function oneEntryPerMail(store: Store, filter: Record<string, unknown>, rows: MessageRow[]): Promise<MessageSummary[]> {
  const mailKey = (row: Pick<MessageRow, 'ownerId' | 'dedupeKey'>) => `${row.ownerId.toString()}\u0000${row.dedupeKey}`;
  const keyed = rows.filter((row) => row.dedupeKey);
  const copiesOf = new Map<string, MessageRow[]>();
  // Read state is one for the entry: its copies are looked up whatever their own state, and "Unread only"
  // (filter.unread) decides below, on the entry, which copy the list places it by.
  const { unread: readFilter, ...copyFilter } = filter;
  if (keyed.length > 0) {
    const others = (await store.models.Message.find({ ...copyFilter, ownerId: { $in: keyed.map((row) => row.ownerId) }, dedupeKey: { $in: [...new Set(keyed.map((row) => row.dedupeKey!))] } })
      .select({ ownerId: 1, dedupeKey: 1, receivedAt: 1, sources: 1, unread: 1 })
      .lean()) as unknown as MessageRow[];
    for (const copy of others) copiesOf.set(mailKey(copy), [...(copiesOf.get(mailKey(copy)) ?? []), copy]);
  }
  const newerThan = (a: MessageRow, b: MessageRow) => a.receivedAt.getTime() > b.receivedAt.getTime() || (a.receivedAt.getTime() === b.receivedAt.getTime() && a._id.toString() > b._id.toString());
  const listed = new Set<string>();
  const entries: MessageSummary[] = [];
  for (const row of rows) {
    if (!row.dedupeKey) {
      entries.push(toSummary(row));
      continue;
    }
    const key = mailKey(row);
    if (listed.has(key)) continue;
    listed.add(key);
    const copies = copiesOf.get(key) ?? [row];
    // Copies the list itself could hold: with "Unread only", the unread ones (a read copy is not listed).
    const listable = readFilter === true ? copies.filter((copy) => copy.unread === true) : copies;
    // A newer copy was listed before this page: the mail is there, not here.
    if (listable.some((copy) => newerThan(copy, row))) continue;
    // "Read only": an entry is unread while any copy is, so a read copy of an unread mail is not read mail.
    if (readFilter !== undefined && readFilter !== true && copies.some((copy) => copy.unread === true)) continue;
    entries.push(toSummary(row, copies));
  }
  return entries;
}

/**
 * One page of messages, newest first, keyset-paged by (receivedAt, _id)
 * so page 200 costs what page 1 costs (no skip).
 */
export async function listMessages(store: Store, viewer: Viewer, filters: MessageFilters, options: { cursor?: string; limit?: number } = {}): Promise<MessagePage> {
  const limit = Math.max(1, Math.min(options.limit ?? PAGE_SIZE, 200));
  const filter = buildMessageFilter(viewer, filters);
  const unpaged = { ...filter };
  if (options.cursor) {
    const cursor = decodeCursor(options.cursor);
    if (!cursor) throw new AppError('VALIDATION_FAILED', `cursor ${NOT_A_CURSOR}`, { status: 400, fields: { cursor: NOT_A_CURSOR } });
    const after = [{ receivedAt: { $lt: cursor.receivedAt } }, { receivedAt: cursor.receivedAt, _id: { $lt: cursor.id } }];
    // The $lte bound lets the index scan start at the cursor; the $or settles ties on receivedAt.
    filter.receivedAt = { ...(filter.receivedAt as Record<string, Date> | undefined), $lte: cursor.receivedAt };
    filter.$and = [{ $or: after }];
  }
  // Only the first 200 characters of the text are needed for the snippet. $substrCP in a find
  // projection needs MongoDB 4.4+; FerretDB 1.x lacks it, so there the text is read whole (but not the words
  // of attached messages kept for search: up to 200,000 characters a message, for each of 51 rows).
  const projection = (await supportsProjectionExpressions(store)) ? SUMMARY_PROJECTION : { html: 0, headers: 0, references: 0, attachedText: 0 };
  const query = store.models.Message.find(filter).select(projection).sort({ receivedAt: -1, _id: -1 }).limit(limit + 1);
  const rows = (await query.lean()) as unknown as MessageRow[];
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { messages: await oneEntryPerMail(store, unpaged, page), nextCursor: rows.length > limit && last ? encodeCursor(last.receivedAt, last._id) : null };
}

const expressionSupport = new WeakMap<Store, Promise<boolean>>();

/** Asked once per store: a read of at most one document. */
function supportsProjectionExpressions(store: Store): Promise<boolean> {
  let probe = expressionSupport.get(store);
  if (!probe) {
    probe = store.models.Message.find({}).select({ text: { $substrCP: ['$text', 0, 1] } }).limit(1).lean().then(() => true, () => false);
    expressionSupport.set(store, probe);
  }
  return probe;
}

/** The full message when the viewer may read it; null otherwise (callers answer 404). `fields`: a mongoose selection instead. */
export async function getMessageFor(store: Store, viewer: Viewer, id: string, fields?: string) {
  const objectId = parseObjectId(id);
  if (!objectId) return null;
  const query = store.models.Message.findOne({ _id: objectId, ...messageScope(viewer) });
  return (fields ? query.select(fields) : query).lean();
}

/**
 * The stored message this one answers (its In-Reply-To, RFC 5322 §3.6.4) among its owner's mail, when the
 * viewer may read it: what a "Re:" is a reply to, one look-up on the (ownerId, messageId) index.
 */
export async function repliedMessage(store: Store, viewer: Viewer, message: { ownerId: ObjectId; inReplyTo?: string | null }) {
  if (!message.inReplyTo) return null;
  return store.models.Message.findOne({ ownerId: message.ownerId, messageId: message.inReplyTo, ...messageScope(viewer) })
    .select('subject from date receivedAt').lean();
}

/** Raw RFC 5322 bytes of a message the viewer may read, as a stream (from the document when small, else GridFS). */
export async function openRawMessage(store: Store, viewer: Viewer, id: string): Promise<{ stream: Readable; size: number; subject: string } | null> {
  const message = await getMessageFor(store, viewer, id, 'rawBlobId size subject +rawInline');
  if (!message) return null;
  return { stream: rawStream(store, message), size: message.size, subject: message.subject ?? '' };
}

/** The raw bytes of a stored message, wherever they are kept (loaded with '+rawInline'). */
export function rawStream(store: Store, message: { rawBlobId?: ObjectId | null; rawInline?: Buffer | { buffer: Uint8Array } | null }): Readable {
  if (message.rawInline) {
    const bytes = Buffer.isBuffer(message.rawInline) ? message.rawInline : Buffer.from(message.rawInline.buffer);
    return Readable.from([bytes]);
  }
  if (!message.rawBlobId) throw new Error('message has no raw bytes stored');
  return store.blobs.open(message.rawBlobId);
}

/**
 * An attachment of a message the viewer may read, by position: read back
 * from the raw message (gateway/mail/attachments.ts), or from its own
 * GridFS copy for messages stored before attachments stopped being copied.
 */
export async function openAttachment(store: Store, viewer: Viewer, id: string, index: number) {
  const message = await getMessageFor(store, viewer, id, 'attachments rawBlobId +rawInline');
  const attachment = message?.attachments?.[index];
  if (!message || !attachment) return null;
  const stream = await attachmentStream(store, message, index);
  if (!stream) return null;
  return { stream, filename: attachmentFilename(attachment, index), contentType: attachment.contentType || 'application/octet-stream', size: attachment.size ?? 0 };
}

/** The bytes of attachment `index` of a stored message (loaded with its attachments, rawBlobId and '+rawInline'). */
export async function attachmentStream(
  store: Store,
  message: Parameters<typeof rawStream>[1] & { attachments?: Array<{ blobId?: ObjectId | null }> },
  index: number,
): Promise<Readable | null> {
  const attachment = message.attachments?.[index];
  if (!attachment) return null;
  return attachment.blobId ? store.blobs.open(attachment.blobId) : attachmentFromRaw(rawStream(store, message), index);
}

/**
 * The contents of a message's parts at `indexes`, each at most `maxBytes` (a larger one is left out): from
 * the GridFS copy older messages kept, else from the raw message, all of them in one parse.
 */
export async function messageParts(
  store: Store,
  message: { _id: ObjectId; attachments?: Array<{ blobId?: ObjectId | null }> },
  indexes: ReadonlySet<number>,
  maxBytes: number,
): Promise<Map<number, Buffer>> {
  const contents = new Map<number, Buffer>();
  const fromRaw = new Set([...indexes].filter((index) => !message.attachments?.[index]?.blobId));
  if (fromRaw.size > 0) {
    const raw = await store.models.Message.findById(message._id, { rawBlobId: 1 }).select('+rawInline').lean();
    if (raw) for (const [index, bytes] of await attachmentsFromRaw(rawStream(store, raw), fromRaw, { maxBytes })) contents.set(index, bytes);
  }
  for (const index of indexes) {
    const blobId = message.attachments?.[index]?.blobId;
    if (!blobId) continue;
    const bytes = await store.blobs.get(blobId);
    if (bytes.length <= maxBytes) contents.set(index, bytes);
  }
  return contents;
}

/**
 * The inline images a message's HTML shows (planned by planInlineImages()
 * from its stored descriptions) as data: URLs keyed by normalised
 * Content-ID, for the body frame. The parts are read back from the raw
 * message in one parse that stops after the last of them; messages stored
 * before that read their GridFS copies. A part that cannot be read, or
 * turns out larger than INLINE_IMAGE_MAX_BYTES, is left out: its image
 * stays broken with its alt text.
 */
export async function inlineImageUrls(
  store: Store,
  message: { _id: ObjectId; attachments?: Array<{ blobId?: ObjectId | null }> },
  plan: readonly InlineImage[],
): Promise<Map<string, string>> {
  const urls = new Map<string, string>();
  if (plan.length === 0) return urls;
  const contents = await messageParts(store, message, new Set(plan.map((image) => image.index)), INLINE_IMAGE_MAX_BYTES);
  for (const image of plan) {
    const bytes = contents.get(image.index);
    if (bytes) urls.set(image.contentId, imageDataUrl(image.contentType, bytes));
  }
  return urls;
}

/**
 * Release a quarantined message to the inbox. `afterRelease` lets the caller
 * run CRM association (quarantined mail is not associated at ingest).
 */
/** A release writes one document; a lease left by a process that died frees itself after this. */
const RELEASE_LEASE_TTL_MS = 30_000;

/**
 * The lease under which a message changes state: released (console, API, or found in the mailbox by the
 * IMAP sync) or deleted (alone or as part of Quarantine's page). Each re-reads the message under it.
 */
export function heldMessageLease(id: ObjectId): string {
  return `message-release:${id.toString()}`;
}

/** Run `change` under the held message's lease, waiting for another change of it to end (a few round trips). */
export function changeHeldMessage<T>(store: Store, id: ObjectId, change: () => Promise<T>): Promise<T> {
  return runExclusive(store, heldMessageLease(id), {
    ttlMs: RELEASE_LEASE_TTL_MS,
    waitMs: 10_000,
    busy: () => new AppError('BUSY', 'this message is being changed right now; try again', { status: 409 }),
  }, change);
}

export async function releaseMessage(deps: { store: Store; actor: Actor; afterRelease?: (messageId: ObjectId) => Promise<void> }, viewer: Viewer, id: string) {
  const message = await getMessageFor(deps.store, viewer, id);
  if (!message) throw notFound('message');
  const notQuarantined = () => new AppError('NOT_QUARANTINED', 'this message is not in quarantine', { status: 409 });
  if (message.status !== 'quarantine') throw notQuarantined();
  // Two releases at once (a double click, two admins) must release, audit and hand on to the CRM once: the
  // conditional write decides on MongoDB, and the lease where FerretDB applies it as a read then a write.
  const released = await claimUnderLease(deps.store, heldMessageLease(message._id), newHolderId(), RELEASE_LEASE_TTL_MS, async () => {
    const written = await deps.store.models.Message.updateOne({ _id: message._id, status: 'quarantine' }, { $set: { status: 'inbox' } });
    return written.modifiedCount === 1 ? written : null;
  });
  if (!released) throw notQuarantined();
  // The owner's held copies in their other mailboxes go with it: the list shows them as one entry.
  const copies = await sameMailCopies(deps.store, [message]);
  for (const copy of copies) await deps.store.models.Message.updateOne({ _id: copy._id, status: 'quarantine' }, { $set: { status: 'inbox' } });
  for (const held of [message, ...copies]) await forgetHeldNotice(deps.store, held);
  forgetUnreadCounts(deps.store, [message.ownerId]);
  await recordAudit(deps.store, deps.actor, { action: 'message.release', targetType: 'message', targetId: message._id.toString(), details: { subject: message.subject, from: message.from?.address ?? '', reason: message.quarantineReason } });
  if (deps.afterRelease) for (const held of [message, ...copies]) await deps.afterRelease(held._id);
}

/** What sameMailCopies reads of a message. */
interface CopyKey {
  _id: ObjectId;
  ownerId: ObjectId;
  dedupeKey: string;
  status?: string | null;
}

/**
 * The owner's other copies of these messages, in the same state: the same mail in another of their
 * mailboxes (same de-duplication key), which the list shows as one entry (oneEntryPerMail). What is done
 * to the entry is done to them too, or the next copy would take its place. One query, on the
 * {ownerId, dedupeKey} index.
 */
async function sameMailCopies(store: Store, messages: readonly CopyKey[]) {
  if (messages.length === 0) return [];
  const rows = await store.models.Message.find({
    ownerId: { $in: messages.map((m) => m.ownerId) },
    dedupeKey: { $in: [...new Set(messages.map((m) => m.dedupeKey))] },
    _id: { $nin: messages.map((m) => m._id) },
  }).select({ ...REMOVABLE_MESSAGE_FIELDS, ownerId: 1, status: 1 }).lean();
  return rows.filter((row) => messages.some((m) => m.ownerId.equals(row.ownerId) && m.dedupeKey === row.dedupeKey && (m.status ?? 'inbox') === (row.status ?? 'inbox')));
}

/**
 * Delete a message: remember its de-duplication key first (a tombstone, so
 * an IMAP sync never brings it back), then remove the document, its links
 * and its blobs. Order matters for crash safety: a crash after the
 * tombstone leaves at worst an orphan blob, never a resurrected message.
 */
export async function deleteMessage(deps: { store: Store; actor: Actor; now?: Date }, viewer: Viewer, id: string): Promise<void> {
  const message = await getMessageFor(deps.store, viewer, id);
  if (!message) throw notFound('message');
  await deleteWithCopies(deps, [message]);
}

/**
 * Delete each message with its copies in the owner's other mailboxes (a held copy from Quarantine alone); one
 * audit event per message. With `onlyHeld` (Quarantine's page), a message is deleted only if it is still held
 * when its turn comes: one released meanwhile (by a colleague, in another tab, by the IMAP sync) is genuine
 * mail in the inbox by then. Returns how many were deleted.
 */
async function deleteWithCopies(
  deps: { store: Store; actor: Actor; now?: Date },
  messages: ReadonlyArray<CopyKey & RemovableMessage & { subject?: string | null; from?: { address?: string | null } | null }>,
  options: { onlyHeld?: boolean } = {},
): Promise<number> {
  const { store } = deps;
  const copies = await sameMailCopies(store, messages);
  // Under the message's lease, looked up again: another request deleting it at the same moment (Delete
  // pressed twice at once) finds it gone, rather than both deleting and auditing it (on FerretDB a
  // deleteOne's count does not tell the two apart).
  const remove = (doomed: RemovableMessage) => changeHeldMessage(store, doomed._id, async () => {
    if (!(await store.models.Message.exists({ _id: doomed._id, ...(options.onlyHeld ? { status: 'quarantine' } : {}) }))) return false;
    return removeMessage(store, doomed, { now: deps.now ?? new Date(), deletedBy: deps.actor.id ?? null });
  });
  let deleted = 0;
  try {
    for (const message of messages) {
      const own = copies.filter((copy) => copy.ownerId.equals(message.ownerId) && copy.dedupeKey === message.dedupeKey);
      // Deleted here, not by a request that got to it first (Delete pressed twice at once): audited once.
      const gone = await remove(message);
      for (const doomed of own) await remove(doomed);
      if (!gone) continue;
      deleted++;
      await recordAudit(store, deps.actor, {
        action: 'message.delete', targetType: 'message', targetId: message._id.toString(),
        details: { subject: message.subject, from: message.from?.address ?? '', status: message.status, ...(own.length ? { copies: own.length + 1 } : {}) },
      }, deps.now);
    }
  } finally {
    forgetUnreadCounts(store, messages.map((message) => message.ownerId));
  }
  return deleted;
}

/**
 * Delete quarantined messages the viewer chose from the Quarantine list (a page of them at once: spoofs
 * come by the hundred). Only what is still in quarantine goes: a message released meanwhile, or an id
 * that is not the viewer's, is left alone. Returns how many were deleted.
 */
export async function deleteQuarantined(deps: { store: Store; actor: Actor; now?: Date }, viewer: Viewer, ids: readonly string[]): Promise<number> {
  const objectIds = [...new Set(ids)].map((id) => parseObjectId(id)).filter((id): id is ObjectId => Boolean(id));
  if (objectIds.length === 0) return 0;
  const held = await deps.store.models.Message.find({ _id: { $in: objectIds }, status: 'quarantine', ...messageScope(viewer) })
    .select({ ...REMOVABLE_MESSAGE_FIELDS, ownerId: 1, status: 1, subject: 1, 'from.address': 1 }).lean();
  return deleteWithCopies(deps, held, { onlyHeld: true });
}

/**
 * The account page says "mail reached this forwarding address but is held in Quarantine: open it" for
 * the latest quarantined message (forwarding-health.ts). Once that message is released or deleted the
 * sentence is false and its link leads nowhere: drop it (the next held message raises it again).
 */
export async function forgetHeldNotice(store: Store, message: { _id: ObjectId; accountId?: ObjectId | null }): Promise<void> {
  if (!message.accountId) return;
  await store.models.MailAccount.updateOne(
    { _id: message.accountId, 'forwarding.quarantinedMessageId': message._id },
    { $set: { 'forwarding.quarantinedAt': null, 'forwarding.quarantinedReason': '', 'forwarding.quarantinedMessageId': null } },
  );
}

/** What removeMessage needs of a message document. */
export interface RemovableMessage {
  _id: ObjectId;
  mailboxKey: string;
  dedupeKey: string;
  contentHash?: string | null;
  accountId?: ObjectId | null;
  rawBlobId?: ObjectId | null;
  attachments?: Array<{ blobId?: ObjectId | null }> | null;
  receivedAt?: Date | null;
}

/** The fields of a message removeMessage reads (a projection for callers that list many). */
export const REMOVABLE_MESSAGE_FIELDS = { mailboxKey: 1, dedupeKey: 1, contentHash: 1, accountId: 1, rawBlobId: 1, 'attachments.blobId': 1, receivedAt: 1 } as const;

/**
 * Remove one message for good, in the crash-safe order described at
 * deleteMessage: tombstone, document, links, blobs. Shared by a user's
 * Delete and by mail retention (gateway/accounts/mail-retention.ts).
 */
export async function removeMessage(store: Store, message: RemovableMessage, options: { now: Date; deletedBy: ObjectId | null; expired?: boolean }): Promise<boolean> {
  const expiredReceivedAt = options.expired ? message.receivedAt ?? options.now : null;
  await store.models.Tombstone.updateOne(
    { mailboxKey: message.mailboxKey, dedupeKey: message.dedupeKey },
    { $setOnInsert: { mailboxKey: message.mailboxKey, dedupeKey: message.dedupeKey, contentHash: message.contentHash ?? '', deletedAt: options.now, deletedBy: options.deletedBy, expiredReceivedAt } },
    { upsert: true },
  );
  const removed = await store.models.Message.deleteOne({ _id: message._id });
  // The account's messageCount (API) counts what it holds: ingest adds one per stored message.
  if (removed.deletedCount === 1 && message.accountId) await store.models.MailAccount.updateOne({ _id: message.accountId, messageCount: { $gt: 0 } }, { $inc: { messageCount: -1 } });
  await store.models.Link.deleteMany({ messageId: message._id });
  await forgetHeldNotice(store, message);
  if (message.rawBlobId) await store.blobs.delete(message.rawBlobId);
  for (const attachment of message.attachments ?? []) if (attachment.blobId) await store.blobs.delete(attachment.blobId);
  return removed.deletedCount === 1;
}

export interface VolumeDay {
  day: string;
  counts: Record<string, number>;
  total: number;
}

/**
 * Messages per day and source for the last `days` days (oldest first), for the dashboard chart. The days
 * are the reader's (`timeZone`, default UTC): mail of 23:30 in New York belongs to that evening, not to the
 * next UTC day, and a day with a clock change is 23 or 25 hours long. MongoDB groups on the server;
 * FerretDB 1.x lacks $dateToString, so there the (indexed, projected) rows are counted here.
 */
export async function messageVolume(store: Store, viewer: Viewer, options: { now?: Date; days?: number; timeZone?: string } = {}): Promise<VolumeDay[]> {
  const days = options.days ?? 30;
  const now = options.now ?? new Date();
  const timeZone = options.timeZone ?? DEFAULT_TIME_ZONE;
  const firstDay = addDays(dayInZone(now, timeZone), -(days - 1));
  const since = startOfDayInZone(firstDay, timeZone);
  const match = { ...messageScope(viewer), receivedAt: { $gte: since } };
  const series: VolumeDay[] = [];
  const index = new Map<string, VolumeDay>();
  for (let i = 0; i < days; i++) {
    const day = addDays(firstDay, i);
    const entry = { day, counts: Object.fromEntries(SOURCE_KINDS.map((kind) => [kind, 0])), total: 0 };
    series.push(entry);
    index.set(day, entry);
  }
  const add = (day: string, kind: string, count: number) => {
    const entry = index.get(day);
    if (!entry || !(kind in entry.counts)) return;
    entry.counts[kind] += count;
    entry.total += count;
  };
  try {
    // One count per mail and owner, as the list shows it (oneEntryPerMail): its first copy's day and path.
    const groups = await store.models.Message.aggregate<{ _id: { day: string; kind: string }; n: number }>([
      { $match: match },
      { $sort: { receivedAt: 1 } },
      { $project: { ownerId: 1, dedupeKey: 1, day: { $dateToString: { format: '%Y-%m-%d', date: '$receivedAt', timezone: timeZone } }, kind: { $arrayElemAt: ['$sources.kind', 0] } } },
      { $group: { _id: { owner: '$ownerId', mail: '$dedupeKey' }, day: { $first: '$day' }, kind: { $first: '$kind' } } },
      { $group: { _id: { day: '$day', kind: '$kind' }, n: { $sum: 1 } } },
    ]);
    for (const group of groups) add(group._id.day, group._id.kind, group.n);
  } catch (err) {
    // FerretDB lacks these stages; a MongoDB whose own zone data predates a zone Intl knows refuses it
    // ("unrecognized time zone identifier"): both are counted here instead.
    if (!/not implemented|time ?zone/i.test((err as Error).message)) throw err;
    const counted = new Set<string>();
    const cursor = store.models.Message.find(match).select({ receivedAt: 1, 'sources.kind': 1, ownerId: 1, dedupeKey: 1, _id: 0 }).sort({ receivedAt: 1 }).lean().cursor();
    // Every zone's offset is a multiple of 15 minutes, so every instant of a quarter hour is on the same day:
    // one zone lookup per quarter hour (at most 2,880 in 30 days), not per message.
    const dayOfQuarter = new Map<number, string>();
    for await (const row of cursor as AsyncIterable<{ receivedAt: Date; sources?: Array<{ kind: string }>; ownerId: ObjectId; dedupeKey: string }>) {
      const mail = `${row.ownerId.toString()}\u0000${row.dedupeKey}`;
      if (counted.has(mail)) continue;
      counted.add(mail);
      const quarter = Math.floor(row.receivedAt.getTime() / 900_000);
      let day = dayOfQuarter.get(quarter);
      if (day === undefined) dayOfQuarter.set(quarter, (day = dayInZone(row.receivedAt, timeZone)));
      add(day, row.sources?.[0]?.kind ?? '', 1);
    }
  }
  return series;
}
