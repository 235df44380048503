import type { Readable } from 'node:stream';
import mongoose from 'mongoose';
import { detectBulk } from '../crm/bulk';
import { AppError, isDuplicateKeyError } from '../core/errors';
import type { Logger } from '../core/log';
import { metrics } from '../core/metrics';
import { recordStoreWrite } from '../core/store-writes';
import type { SourceKind } from '../models/message';
import type { Store } from '../store';
import { groupCounterUpdate } from '../store/group-counter';
import { groupInsert } from '../store/group-insert';
import { groupExists } from '../store/group-lookup';
import { contentHash, dedupeKey } from './dedupe';
import { provesHeldPath, releaseFoundInMailbox } from './found-in-mailbox';
import { MessageTooLargeError, streamAndParse, type ParsedMessage } from './parse';
import { arrivalTime } from './arrival-time';

type ObjectId = mongoose.Types.ObjectId;

/**
 * THE ingest pipeline. SMTP (forwarded and MX-routed), IMAP sync and sent
 * mail all store through this one function:
 *
 *   stream raw bytes + parse → plan CRM association → write the document
 *   (de-duplicated per mailbox) → (acknowledged) → write the link records
 *
 * It resolves only after the raw blob and the message document are
 * acknowledged by the store, so callers may then answer 250 / advance an
 * IMAP cursor. Store failures reject with STORE_UNAVAILABLE (SMTP 451) and
 * leave nothing half-written; MIME problems never reject (the message is
 * stored raw with `parseError`).
 */

export interface IngestSource {
  kind: SourceKind;
  at?: Date;
  queueId?: string;
  remoteIp?: string;
  envelopeFrom?: string;
  envelopeTo?: string[];
  folder?: string;
  uidValidity?: string;
  uid?: number;
}

export interface AuthVerdict {
  verdict: 'pass' | 'fail' | 'none';
  reason: string;
  results: string;
  spf?: string;
  dkim?: string;
  dmarc?: string;
  arc?: string;
  /** Whether the author's From domain is authenticated (auth-policy.ts senderAuthentication): pass, fail, none. */
  sender?: string;
  /** Why a failing message was held, in plain words (auth-explain.ts); '' when it passed. */
  explanation?: string;
}

/** Fields a caller may add after seeing the parsed message (e.g. forwarding-confirmation detection). */
export interface Classification {
  kind?: string;
  status?: 'inbox' | 'quarantine';
  quarantineReason?: string;
  confirmation?: { provider: string; code: string; link: string; requester: string };
  bulk?: boolean;
  /** Mail-account fields to set in the same write that counts the message (saves a write per message). */
  accountSet?: Record<string, unknown>;
}

export interface IngestInput {
  raw: Readable | Buffer;
  mailboxKey: string;
  accountId?: ObjectId | null;
  ownerId: ObjectId;
  source: IngestSource;
  auth?: AuthVerdict;
  status?: 'inbox' | 'quarantine';
  quarantineReason?: string;
  /** When the mail reached the mailbox (IMAP INTERNALDATE); default now. One that cannot be true is corrected (arrival-time.ts). */
  receivedAt?: Date;
  maxBytes?: number;
  /**
   * The owner has already read this mail: sent mail (the default for source `sent`), the owner's dropbox,
   * IMAP mail the server flags \Seen (RFC 9051 §2.3.2). Written with the document, not after it; a
   * duplicate that arrives read marks the stored copy read in the write that records its source.
   */
  read?: boolean;
  /** The caller updates the account's messageCount/lastMailAt itself (the syncer: once per batch, not per message). */
  countedByCaller?: boolean;
  classify?: (parsed: ParsedMessage) => Classification | Promise<Classification>;
}

export type IngestOutcome = 'stored' | 'duplicate' | 'tombstoned';

export interface IngestResult {
  outcome: IngestOutcome;
  /** Database id of the stored (or already stored) message; null when tombstoned. */
  id: ObjectId | null;
  dedupeKey: string;
  parsed: ParsedMessage;
  status: 'inbox' | 'quarantine';
  size: number;
}

/** A message as association sees it: the document ingest writes, with its _id. */
export type AssociableMessage = { _id: ObjectId } & Record<string, unknown>;

/** What association decided before the write: the objects the message document lists from its first write. */
export interface PlannedAssociation {
  objectIds: ObjectId[];
}

/**
 * Association with CRM objects (gateway/crm), in halves around the message
 * write. `plan` runs before it, so the document is written once, already
 * carrying its links (linkedObjectIds, linkedAt): a second write of a large
 * document per message is what limited throughput. `commit` then writes the
 * link records. If the process dies between the two, nothing was
 * acknowledged, the message comes again (SMTP retry, IMAP cursor not
 * advanced) and ingest calls `repair` on the duplicate. Errors of `commit`
 * and `repair` are logged, never fail ingest: the message is stored.
 */
export interface Associator {
  plan(message: AssociableMessage): Promise<PlannedAssociation>;
  commit(message: AssociableMessage, plan: PlannedAssociation): Promise<unknown>;
  repair(message: AssociableMessage): Promise<unknown>;
}

export interface IngestDeps {
  store: Store;
  log: Logger;
  /** CRM association of inbox mail; without it messages are stored unlinked (linkedAt null, the CRM sweep links them). */
  associate?: Associator;
}

function storeError(err: unknown, tag: string): AppError {
  return new AppError('STORE_UNAVAILABLE', 'Temporary storage failure, please retry', {
    status: 503,
    smtpCode: 451,
    enhancedCode: '4.3.0',
    tag,
    cause: err,
  });
}


/** Store one message for one mailbox, counted in the process's metrics (gateway/core/metrics.ts). */
export async function ingest(deps: IngestDeps, input: IngestInput): Promise<IngestResult> {
  try {
    const result = await ingestOnce(deps, input);
    metrics().messages.inc({ source: input.source.kind, outcome: result.outcome });
    if (result.outcome === 'stored') recordStoreWrite(true);
    return result;
  } catch (err) {
    const code = err instanceof AppError ? err.code : 'UNEXPECTED';
    metrics().ingestFailures.inc({ source: input.source.kind, code });
    if (code === 'STORE_UNAVAILABLE') recordStoreWrite(false);
    throw err;
  }
}

async function ingestOnce(deps: IngestDeps, input: IngestInput): Promise<IngestResult> {
  const { store } = deps;
  const log = deps.log.child({ component: 'ingest', mailbox: input.mailboxKey, source: input.source.kind });
  const now = new Date();
  // Chosen before the blobs are written, so each blob names the document it belongs to (the orphan sweep's proof).
  const id = new mongoose.Types.ObjectId();

  let streamed;
  try {
    streamed = await streamAndParse(store.blobs, input.raw, { maxBytes: input.maxBytes, owner: { collection: 'messages', id } });
  } catch (err) {
    if (err instanceof MessageTooLargeError) {
      throw new AppError('MESSAGE_TOO_LARGE', err.message, { status: 413, smtpCode: 552, enhancedCode: '5.3.4', cause: err });
    }
    throw storeError(err, 'ING01');
  }
  const { parsed } = streamed;
  const hash = contentHash(parsed, streamed.rawSha256);
  const key = dedupeKey(parsed.messageId, hash);
  const classification = input.classify ? await input.classify(parsed) : {};
  const status = classification.status ?? input.status ?? 'inbox';
  const source = { ...input.source, at: input.source.at ?? now };
  const read = input.read ?? source.kind === 'sent';

  const discardBlobs = async () => {
    const ids = [streamed.rawBlobId, ...parsed.attachments.map((a) => a.blobId)].filter((id): id is ObjectId => Boolean(id));
    await Promise.allSettled(ids.map((id) => store.blobs.delete(id)));
  };

  try {
    const document = {
      mailboxKey: input.mailboxKey,
      accountId: input.accountId ?? null,
      ownerId: input.ownerId,
      messageId: parsed.messageId,
      contentHash: hash,
      dedupeKey: key,
      sources: [source],
      receivedAt: input.receivedAt ? arrivalTime(input.receivedAt, parsed.date, now) : now,
      date: parsed.date,
      from: parsed.from,
      sender: parsed.sender,
      to: parsed.to,
      cc: parsed.cc,
      bcc: parsed.bcc,
      replyTo: parsed.replyTo,
      addresses: collectAddresses(parsed),
      subject: parsed.subject,
      inReplyTo: parsed.inReplyTo,
      references: parsed.references,
      headers: parsed.headers,
      text: parsed.text,
      html: parsed.html,
      attachedText: parsed.attachedText,
      attachments: parsed.attachments.map(({ checksum: _checksum, ...attachment }) => attachment),
      rawBlobId: streamed.rawBlobId,
      rawInline: streamed.rawInline,
      size: streamed.size,
      auth: input.auth ?? { verdict: 'none', reason: `${source.kind}: not authenticated at ingest`, results: '' },
      status,
      quarantineReason: classification.quarantineReason ?? input.quarantineReason ?? '',
      parseError: parsed.parseError,
      kind: classification.kind ?? 'message',
      confirmation: classification.confirmation,
      bulk: classification.bulk ?? detectBulk(parsed.headers).bulk,
      // New mail is unread until its owner opens it (gateway/accounts/read-state.ts).
      unread: !read,
    };

    // The deletion check and association planning are independent reads: waiting for them together
    // saves a store round trip per message, and a round trip is most of what a message waits for.
    // A planning failure must not refuse mail: stored unlinked, the CRM sweep links it later.
    const planning: Promise<PlannedAssociation | null> =
      status === 'inbox' && deps.associate
        ? deps.associate.plan({ _id: id, ...document }).catch((err: Error) => {
            log.error({ err }, 'association could not be planned; the message is stored unlinked for the CRM sweep');
            return null;
          })
        : Promise.resolve(null);
    // Mail without a Message-ID: also deleted when its copy with one (identifiedTwin) was.
    const unidentified = !parsed.messageId && !hash.startsWith('raw:');
    const isDeleted = async () => await groupExists(store.models.Tombstone, { mailboxKey: input.mailboxKey, dedupeKey: key })
      || (unidentified && await groupExists(store.models.Tombstone, { mailboxKey: input.mailboxKey, contentHash: hash }));
    const tombstoned = (): IngestResult => ({ outcome: 'tombstoned', id: null, dedupeKey: key, parsed, status, size: streamed.size });
    if (await isDeleted()) {
      await discardBlobs();
      log.info({ dedupeKey: key }, 'message was deleted by its owner; not re-imported');
      return tombstoned();
    }

    /** Record this source on the stored copy `filter` finds and drop our blobs; null when there is none. */
    const asDuplicate = async (filter: Record<string, unknown>): Promise<IngestResult | null> => {
      // Read in the mailbox (the IMAP copy of a forwarded mail, flagged \Seen): read here too, in the same write.
      const update = read ? { $addToSet: { sources: source }, $set: { unread: false } } : { $addToSet: { sources: source } };
      const existing = await store.models.Message.findOneAndUpdate(filter, update, { returnDocument: 'after' })
        // No projection at all, not even the schema's default exclusion of
        // rawInline: FerretDB 1.24 does not implement findAndModify "fields".
        .select('+rawInline')
        .lean();
      if (!existing) return null;
      await discardBlobs();
      let existingStatus = existing.status as 'inbox' | 'quarantine';
      if (provesHeldPath(source.kind, existing)) {
        existingStatus = await releaseFoundInMailbox({ store, log, associate: deps.associate }, existing, source);
      } else if (deps.associate && existing.status === 'inbox' && existing.linkedAt && existing.linkedObjectIds?.length) {
        await deps.associate.repair(existing as AssociableMessage).catch((e: Error) => log.error({ err: e, id: existing._id }, 'could not repair the links of a duplicate; it is stored'));
      }
      log.debug({ id: existing._id }, 'duplicate message: source recorded');
      return { outcome: 'duplicate', id: existing._id as ObjectId, dedupeKey: existing.dedupeKey, parsed, status: existingStatus, size: streamed.size };
    };

    const planned = await planning;
    if (unidentified) {
      const twin = await identifiedTwin(store, input, hash, document.receivedAt);
      const duplicate = twin ? await asDuplicate({ _id: twin }) : null;
      if (duplicate) return duplicate;
    }
    const written = { _id: id, ...document, linkedObjectIds: planned?.objectIds ?? [], linkedAt: planned ? now : null };
    try {
      await groupInsert(store.models.Message, written);
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
      // Already stored (a retried SMTP delivery, or the IMAP copy of a
      // forwarded mail): record this source on it and drop our blobs.
      const duplicate = await asDuplicate({ mailboxKey: input.mailboxKey, dedupeKey: key });
      if (duplicate) return duplicate;
      // The stored copy went between our write and this update: its owner deleted it (the tombstone says so).
      if (await isDeleted()) {
        await discardBlobs();
        log.info({ dedupeKey: key }, 'message was deleted by its owner while this copy was stored; not re-imported');
        return tombstoned();
      }
      throw err;
    }

    // The owner may have deleted another copy of this mail (the forwarded one, say) between the check above
    // and our write: removeMessage writes the tombstone before it removes that copy, and our write only got
    // in once the copy was gone, so the tombstone is there to see now. Without this look the deleted mail
    // came back. It runs beside the account's counters and the link records (independent writes, sent
    // together), so it costs no round trip; in the rare case it finds one, those are taken back with the
    // document. A failure of the look leaves the message stored (acknowledged, as if the delete came later).
    const counting = Boolean(input.accountId && !input.countedByCaller);
    const [deletedMeanwhile, counted] = await Promise.all([
      isDeleted().catch((e: Error) => {
        log.warn({ err: e, id }, 'could not check for a deletion while storing; the message is stored');
        return false;
      }),
      counting
        ? // Statistics: a failure here must not turn a stored message into a 451.
          groupCounterUpdate(store.models.MailAccount, input.accountId!, { inc: { messageCount: 1 }, set: { ...classification.accountSet, lastMailAt: now } }).then(() => true, (err: Error) => {
            log.warn({ err }, 'could not update the mail account counters; the message is stored');
            return false;
          })
        : false,
      planned && deps.associate
        ? deps.associate.commit(written, planned).catch((err: Error) => log.error({ err, id }, 'could not write the links; the message is stored'))
        : undefined,
    ]);
    if (deletedMeanwhile) {
      // null: not taken back (the message stays stored); 0: the owner's Delete removed this very document
      // meanwhile and took back its count; 1: taken back here.
      const removed = await store.models.Message.deleteOne({ _id: id }).then((r) => r.deletedCount, (e: Error) => {
        log.warn({ err: e, id }, 'could not take back a message deleted while it was stored; it is stored');
        return null;
      });
      if (removed !== null) {
        await Promise.allSettled([
          discardBlobs(),
          store.models.Link.deleteMany({ messageId: id }),
          counted && removed === 1 ? store.models.MailAccount.updateOne({ _id: input.accountId!, messageCount: { $gt: 0 } }, { $inc: { messageCount: -1 } }) : undefined,
        ]);
        log.info({ dedupeKey: key }, 'message was deleted by its owner while it was stored; not re-imported');
        return tombstoned();
      }
    }
    return { outcome: 'stored', id, dedupeKey: key, parsed, status, size: streamed.size };
  } catch (err) {
    await discardBlobs();
    if (err instanceof AppError) throw err;
    throw storeError(err, 'ING02');
  }
}

/** How far apart two paths may deliver one mail (a forwarder's retries): the copies' receivedAt differ by less. */
const TWIN_WINDOW_MS = 2 * 86_400_000;

/**
 * The stored copy, with a Message-ID, of a mail that came without one: a
 * host forwarding by Sieve redirect re-submits the message and its MTA
 * (Postfix, Exchange) adds a Message-ID to the forwarded copy only, while
 * the copy in the mailbox, read by IMAP, has none. Nothing tells them apart
 * but that header: the same sender, date to the second, subject, body and
 * attachments (the content hash), in the same mailbox, received about the
 * same time (forwarding takes seconds; IMAP reports when the mail reached the
 * mailbox). Only asked for mail without a Message-ID, through the owner's
 * (ownerId, receivedAt) index.
 */
async function identifiedTwin(store: Store, input: IngestInput, hash: string, receivedAt: Date): Promise<ObjectId | null> {
  const twin = await store.models.Message.findOne({
    ownerId: input.ownerId,
    receivedAt: { $gte: new Date(receivedAt.getTime() - TWIN_WINDOW_MS), $lte: new Date(receivedAt.getTime() + TWIN_WINDOW_MS) },
    mailboxKey: input.mailboxKey,
    contentHash: hash,
    messageId: { $ne: '' },
  }, { _id: 1 }).lean();
  return (twin?._id as ObjectId | undefined) ?? null;
}

function collectAddresses(parsed: ParsedMessage): string[] {
  const all = [parsed.from, parsed.sender, ...parsed.to, ...parsed.cc, ...parsed.bcc, ...parsed.replyTo];
  return [...new Set(all.filter((a): a is NonNullable<typeof a> => Boolean(a?.address)).map((a) => a.address.toLowerCase()))].slice(0, 1000);
}
