import { Schema, type InferSchemaType } from 'mongoose';

export const AUTH_POLICIES = ['quarantine', 'reject'] as const;

/** Business-wide settings: one document with _id 'business'. */
export const businessSettingsSchema = new Schema(
  {
    _id: { type: String, default: 'business' },
    name: { type: String, default: '' },
    domains: { type: [String], default: [] },
    /** What happens to mail whose authentication verdict is fail. */
    authPolicy: { type: String, enum: AUTH_POLICIES, default: 'quarantine' },
    retentionDays: { type: Number, default: 0 },
    /** Extra free-mail domains never linked to customers by domain. */
    freemailDomains: { type: [String], default: [] },
    /** Employees' linked mail is visible on object timelines to everyone. */
    shareLinkedMail: { type: Boolean, default: false },
  },
  { timestamps: true, collection: 'settings' },
);

export type BusinessSettingsDoc = InferSchemaType<typeof businessSettingsSchema>;
