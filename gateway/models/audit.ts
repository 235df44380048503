import { Schema, type InferSchemaType } from 'mongoose';

/** Who changed what, when: every account, user and settings change. */
export const auditEventSchema = new Schema(
  {
    at: { type: Date, required: true },
    actorId: { type: Schema.Types.ObjectId, default: null },
    actorEmail: { type: String, default: '' },
    action: { type: String, required: true },
    targetType: { type: String, default: '' },
    targetId: { type: String, default: '' },
    /** Never secrets: callers pass field names, not values, for secret changes. */
    details: { type: Schema.Types.Mixed, default: {} },
    ip: { type: String, default: '' },
  },
  { collection: 'audit_events' },
);
auditEventSchema.index({ at: -1 });
auditEventSchema.index({ targetType: 1, targetId: 1, at: -1 });
// The audit log filtered by who acted (admin/routes/audit.ts).
auditEventSchema.index({ actorEmail: 1, at: -1 });

export type AuditEventDoc = InferSchemaType<typeof auditEventSchema>;
