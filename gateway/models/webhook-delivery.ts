import { Schema, type InferSchemaType } from 'mongoose';

export const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;

/**
 * The webhook outbox and delivery log in one: a row per (webhook, event),
 * written before anything is sent, retried with backoff until delivered or
 * past its deadline. Any process may run the dispatcher loop; a row is
 * claimed with a short lease so two loops do not send it at once.
 */
export const webhookDeliverySchema = new Schema(
  {
    webhookId: { type: Schema.Types.ObjectId, required: true, ref: 'Webhook' },
    /** Stable event id (also sent as Postroom-Event-Id) so receivers can de-duplicate. */
    eventId: { type: String, required: true },
    eventType: { type: String, required: true },
    /** The exact JSON body that is signed and sent. */
    payload: { type: String, required: true },
    status: { type: String, enum: DELIVERY_STATUSES, default: 'pending' },
    attempts: { type: Number, default: 0 },
    nextAttemptAt: { type: Date, required: true },
    /** Give up after this (creation or resend + 24 h by default). */
    expiresAt: { type: Date, required: true },
    lockedUntil: { type: Date, default: () => new Date(0) },
    lastAttemptAt: { type: Date, default: null },
    lastStatusCode: { type: Number, default: 0 },
    lastError: { type: String, default: '' },
    deliveredAt: { type: Date, default: null },
    /** One entry per attempt (bounded by the schedule: ~20 within 24 h). */
    log: {
      type: [
        new Schema(
          {
            at: { type: Date, required: true },
            statusCode: { type: Number, default: 0 },
            error: { type: String, default: '' },
            durationMs: { type: Number, default: 0 },
          },
          { _id: false },
        ),
      ],
      default: [],
    },
    createdAt: { type: Date, required: true },
  },
  { collection: 'webhook_deliveries' },
);
webhookDeliverySchema.index({ webhookId: 1, eventId: 1 }, { unique: true });
webhookDeliverySchema.index({ status: 1, nextAttemptAt: 1 });
webhookDeliverySchema.index({ webhookId: 1, createdAt: -1 });

export type WebhookDeliveryDoc = InferSchemaType<typeof webhookDeliverySchema>;
