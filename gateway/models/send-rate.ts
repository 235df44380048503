import { Schema, type InferSchemaType } from 'mongoose';

/**
 * The per-account send rate limit (SEND_RATE_LIMIT = max per window) as `max`
 * slots per account, each holding when it was last used. Sending claims a
 * slot last used before the window began, with one atomic findOneAndUpdate,
 * so concurrent requests in any number of processes never exceed the limit
 * — without transactions (FerretDB has none). See gateway/send/rate-limit.ts.
 */
export const sendRateSlotSchema = new Schema(
  {
    accountId: { type: Schema.Types.ObjectId, required: true, ref: 'MailAccount' },
    /** 0 … max-1; slots beyond a lowered limit are simply not used. */
    n: { type: Number, required: true },
    usedAt: { type: Date, required: true },
  },
  { collection: 'send_rate_slots' },
);

sendRateSlotSchema.index({ accountId: 1, n: 1 }, { unique: true });
sendRateSlotSchema.index({ accountId: 1, usedAt: 1 });

export type SendRateSlotDoc = InferSchemaType<typeof sendRateSlotSchema>;
