import { Schema, type InferSchemaType } from 'mongoose';

/**
 * Mail composed in Postroom, from the moment it is sent until it is
 * delivered to the provider's SMTP server and filed (stored through ingest,
 * appended to the provider's Sent folder). Written before the first attempt,
 * so a crash mid-send loses nothing: the outbox worker (gateway/send/worker.ts)
 * picks up whatever has `nextAttemptAt` due and no live lock.
 *
 * status: 'queued' — recipients remain that the server has not accepted yet
 * (a 4xx reply or a network failure; retried with exponential backoff);
 * 'sent' — nothing remains and at least one recipient was accepted;
 * 'failed' — nothing remains and no recipient was accepted (refused with
 * 5xx, authentication failed, or retries gave up).
 */
export const OUTBOX_STATUSES = ['queued', 'sent', 'failed'] as const;
export type OutboxStatus = (typeof OUTBOX_STATUSES)[number];

/** One envelope recipient: RFC 5321 replies are per recipient (§3.3), and so is retrying. */
export const RECIPIENT_STATES = ['pending', 'accepted', 'refused', 'deferred'] as const;
export type RecipientState = (typeof RECIPIENT_STATES)[number];

export const SENT_FOLDER_STATES = ['pending', 'appended', 'skipped', 'failed'] as const;

const recipientSchema = new Schema(
  {
    address: { type: String, required: true },
    state: { type: String, enum: RECIPIENT_STATES, default: 'pending' },
    /** The server's reply for this recipient (e.g. "550 5.1.1 No such user"). */
    reply: { type: String, default: '' },
    at: { type: Date, default: null },
  },
  { _id: false },
);

const addressSchema = new Schema({ address: { type: String, default: '' }, name: { type: String, default: '' } }, { _id: false });

export const outboxSchema = new Schema(
  {
    accountId: { type: Schema.Types.ObjectId, required: true, ref: 'MailAccount' },
    ownerId: { type: Schema.Types.ObjectId, required: true, ref: 'User' },
    /** Who pressed Send (an admin may send for an account they manage). */
    createdBy: { type: Schema.Types.ObjectId, default: null },
    /** Message-ID header without angle brackets: the same in what is sent, stored and appended. */
    messageId: { type: String, required: true },
    subject: { type: String, default: '' },
    from: { type: addressSchema, default: () => ({}) },
    to: { type: [addressSchema], default: [] },
    cc: { type: [addressSchema], default: [] },
    bcc: { type: [addressSchema], default: [] },
    /** RFC 5321 MAIL FROM (the account address). */
    envelopeFrom: { type: String, required: true },
    recipients: { type: [recipientSchema], default: [] },
    /**
     * GridFS ids (bucket `raw`): what goes over SMTP (no Bcc header) and the
     * filed copy (with Bcc, RFC 5322 §3.6.3) that is stored and appended to
     * Sent. The same id twice when there is no Bcc.
     */
    transmitBlobId: { type: Schema.Types.ObjectId, default: null },
    fileBlobId: { type: Schema.Types.ObjectId, default: null },
    size: { type: Number, default: 0 },
    status: { type: String, enum: OUTBOX_STATUSES, default: 'queued' },
    /** Delivery attempts made (a 4xx or network failure counts one). */
    attempts: { type: Number, default: 0 },
    /** When the worker should next act on this entry (deliver or file); null: nothing left to do. */
    nextAttemptAt: { type: Date, default: null },
    /** A sender (the request that created it, or a worker) holds the entry until then. */
    lockedUntil: { type: Date, default: null },
    lockedBy: { type: String, default: '' },
    lastError: { type: String, default: '' },
    lastErrorCode: { type: String, default: '' },
    /** When the server first accepted a recipient. */
    acceptedAt: { type: Date, default: null },
    /** Filing after acceptance: the stored Message and the Sent-folder copy. */
    storedMessageId: { type: Schema.Types.ObjectId, default: null, ref: 'Message' },
    sentFolder: {
      state: { type: String, enum: SENT_FOLDER_STATES, default: 'pending' },
      folder: { type: String, default: '' },
      attempts: { type: Number, default: 0 },
      error: { type: String, default: '' },
    },
    /** The stored message this one replies to or forwards, and how. */
    original: {
      messageId: { type: Schema.Types.ObjectId, default: null, ref: 'Message' },
      action: { type: String, default: '' },
    },
    finishedAt: { type: Date, default: null },
  },
  { timestamps: true, collection: 'outbox' },
);

// The worker's query: what is due now (equality-free range, small collection).
outboxSchema.index({ nextAttemptAt: 1 });
// The Outbox page and the per-account rate limit: an account's entries, newest first.
outboxSchema.index({ accountId: 1, createdAt: -1 });
outboxSchema.index({ ownerId: 1, createdAt: -1 });
outboxSchema.index({ createdAt: -1 });

export type OutboxDoc = InferSchemaType<typeof outboxSchema>;
