import { Schema, type InferSchemaType } from 'mongoose';

/**
 * One press of Send in the console (see gateway/send/send-once.ts): the
 * compose form's random key, claimed by the first request that carries it,
 * with where that request's result is once it has one. Removed a day later.
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
    createdAt: { type: Date, required: true },
  },
  { collection: 'send_claims' },
);
sendClaimSchema.index({ createdAt: 1 });

export type SendClaimDoc = InferSchemaType<typeof sendClaimSchema>;
