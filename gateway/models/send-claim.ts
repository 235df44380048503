import { Schema, type InferSchemaType } from 'mongoose';

/**
 * One press of Send in the console, or one API send with an Idempotency-Key
 * (see gateway/send/send-once.ts): the key, claimed by the first request that
 * carries it, with that request's result once it has one. Removed a day later.
 */
export const sendClaimSchema = new Schema(
  {
    /** `${ownerId}:${key}`: the unique _id settles which request sends. */
    _id: { type: String, required: true },
    state: { type: String, enum: ['sending', 'done'], default: 'sending' },
    /** The page that shows the result (the stored message or the Outbox) and the notice shown there. */
    location: { type: String, default: '' },
    notice: { type: String, default: '' },
    noticeKind: { type: String, default: 'success' },
    /** API: a hash of the account and body, so a key sent again with another request is refused, not answered with this one's result. */
    fingerprint: { type: String, default: '' },
    /** API: the first request's reply, given again to a repeat. */
    responseStatus: { type: Number, default: 0 },
    responseBody: { type: String, default: '' },
    createdAt: { type: Date, required: true },
  },
  { collection: 'send_claims' },
);
sendClaimSchema.index({ createdAt: 1 });

export type SendClaimDoc = InferSchemaType<typeof sendClaimSchema>;
