import { Schema, type InferSchemaType } from 'mongoose';

export const WEBHOOK_EVENTS = ['link.created'] as const;

/** An admin-registered receiver of CRM events (gateway/crm/webhooks.ts). */
export const webhookSchema = new Schema(
  {
    /** The URL as lists and the audit log show it (shownWebhookUrl): its site and first path segment, not the rest. */
    url: { type: String, required: true },
    /**
     * The whole URL, sealed with SecretBox under context `webhook-url:<id>`: receivers such as Slack, Teams
     * or Zapier take the secret in the path or the query. Empty in rows an earlier release wrote (their
     * `url` is the whole URL until sealWebhookUrls runs at the admin's start).
     */
    urlEnc: { type: String, default: '' },
    description: { type: String, default: '' },
    events: { type: [String], default: () => [...WEBHOOK_EVENTS] },
    enabled: { type: Boolean, default: true },
    /** Signing secret, sealed with SecretBox under context `webhook:<id>`; shown once when created or rotated. */
    secretEnc: { type: String, required: true },
    /** First characters of the secret, to tell secrets apart in the console. */
    secretPrefix: { type: String, default: '' },
    /** Loopback/private targets are refused unless an admin sets this explicitly (SSRF guard). */
    allowPrivate: { type: Boolean, default: false },
    createdBy: { type: Schema.Types.ObjectId, default: null },
    lastDeliveryAt: { type: Date, default: null },
    lastStatus: { type: String, default: '' },
  },
  { timestamps: true, collection: 'webhooks' },
);
webhookSchema.index({ enabled: 1 });

export type WebhookDoc = InferSchemaType<typeof webhookSchema>;
