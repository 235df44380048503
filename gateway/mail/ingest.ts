import type { Readable } from 'node:stream';
import mongoose from 'mongoose';
import { detectBulk } from '../crm/bulk';
import { AppError } from '../core/errors';
import type { Logger } from '../core/log';
import type { SourceKind } from '../models/message';
import type { Store } from '../store';
import { contentHash, dedupeKey } from './dedupe';
import { MessageTooLargeError, streamAndParse, type ParsedMessage } from './parse';

type ObjectId = mongoose.Types.ObjectId;

/**
 * THE ingest pipeline. SMTP (forwarded and MX-routed), IMAP sync and sent
 * mail all store through this one function:
 *
 *   stream raw bytes + parse → de-duplicate per mailbox → write the document
 *   → (acknowledged) → associate with CRM objects
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
}

/** Fields a caller may add after seeing the parsed message (e.g. forwarding-confirmation detection). */
export interface Classification {
  kind?: string;
  status?: 'inbox' | 'quarantine';
  quarantineReason?: string;
  confirmation?: { provider: string; code: string; link: string; requester: string };
  bulk?: boolean;
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
  /** When the mail reached the mailbox (IMAP INTERNALDATE); default now. */
  receivedAt?: Date;
  maxBytes?: number;
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

/** Called after an inbox message is acknowledged (CRM association). Errors are logged, never fail ingest. */
export type AfterStoreHook = (message: { _id: ObjectId } & Record<string, unknown>) => Promise<unknown>;

export interface IngestDeps {
  store: Store;
  log: Logger;
  afterStore?: AfterStoreHook[];
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

function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: number }).code === 11000 || /E11000|duplicate key/i.test((err as Error).message ?? '');
}

export async function ingest(deps: IngestDeps, input: IngestInput): Promise<IngestResult> {
  const { store } = deps;
  const log = deps.log.child({ component: 'ingest', mailbox: input.mailboxKey, source: input.source.kind });
  const now = new Date();

  let streamed;
  try {
    streamed = await streamAndParse(store.blobs, input.raw, { maxBytes: input.maxBytes });
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

  const discardBlobs = async () => {
    await Promise.allSettled([streamed.rawBlobId, ...parsed.attachments.map((a) => a.blobId)].map((id) => store.blobs.delete(id)));
  };

  try {
    if (await store.models.Tombstone.exists({ mailboxKey: input.mailboxKey, dedupeKey: key })) {
      await discardBlobs();
      log.info({ dedupeKey: key }, 'message was deleted by its owner; not re-imported');
      return { outcome: 'tombstoned', id: null, dedupeKey: key, parsed, status, size: streamed.size };
    }

    const document = {
      mailboxKey: input.mailboxKey,
      accountId: input.accountId ?? null,
      ownerId: input.ownerId,
      messageId: parsed.messageId,
      contentHash: hash,
      dedupeKey: key,
      sources: [source],
      receivedAt: input.receivedAt ?? now,
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
      attachments: parsed.attachments.map(({ checksum: _checksum, ...attachment }) => attachment),
      rawBlobId: streamed.rawBlobId,
      size: streamed.size,
      auth: input.auth ?? { verdict: 'none', reason: `${source.kind}: not authenticated at ingest`, results: '' },
      status,
      quarantineReason: classification.quarantineReason ?? input.quarantineReason ?? '',
      parseError: parsed.parseError,
      kind: classification.kind ?? 'message',
      confirmation: classification.confirmation,
      bulk: classification.bulk ?? detectBulk(parsed.headers).bulk,
    };

    let id: ObjectId;
    try {
      const created = await store.models.Message.create(document);
      id = created._id as ObjectId;
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      // Already stored (a retried SMTP delivery, or the IMAP copy of a
      // forwarded mail): record this source on it and drop our blobs.
      const existing = await store.models.Message.findOneAndUpdate(
        { mailboxKey: input.mailboxKey, dedupeKey: key },
        { $addToSet: { sources: source } },
        // No projection: FerretDB 1.24 does not implement findAndModify "fields".
        { returnDocument: 'after' },
      ).lean();
      await discardBlobs();
      if (!existing) throw err;
      log.debug({ id: existing._id }, 'duplicate message: source recorded');
      return { outcome: 'duplicate', id: existing._id as ObjectId, dedupeKey: key, parsed, status: existing.status as 'inbox' | 'quarantine', size: streamed.size };
    }

    await store.models.MailAccount.updateOne(
      { _id: input.accountId ?? null },
      { $set: { lastMailAt: now }, $inc: { messageCount: 1 } },
    ).catch(() => undefined);

    if (status === 'inbox' && deps.afterStore) {
      for (const hook of deps.afterStore) {
        await hook({ _id: id, ...document }).catch((err: Error) => log.error({ err, id }, 'post-store step failed; the message is stored'));
      }
    }
    return { outcome: 'stored', id, dedupeKey: key, parsed, status, size: streamed.size };
  } catch (err) {
    await discardBlobs();
    if (err instanceof AppError) throw err;
    throw storeError(err, 'ING02');
  }
}

function collectAddresses(parsed: ParsedMessage): string[] {
  const all = [parsed.from, parsed.sender, ...parsed.to, ...parsed.cc, ...parsed.bcc, ...parsed.replyTo];
  return [...new Set(all.filter((a): a is NonNullable<typeof a> => Boolean(a?.address)).map((a) => a.address.toLowerCase()))].slice(0, 1000);
}
