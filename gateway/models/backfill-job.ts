import { Schema, type InferSchemaType } from 'mongoose';

/**
 * Background CRM work with its progress, so the console can show it and a
 * restarted process resumes it from `cursor`:
 * - backfill: link existing messages to an object that was created or
 *   gained addresses/domains;
 * - prune: re-check the links an object had through removed addresses/domains;
 * - relink: run association over every inbox message (after a CSV import).
 */
export const BACKFILL_KINDS = ['backfill', 'prune', 'relink'] as const;
export const BACKFILL_STATUSES = ['pending', 'running', 'done', 'failed'] as const;

export const backfillJobSchema = new Schema(
  {
    kind: { type: String, enum: BACKFILL_KINDS, required: true },
    objectId: { type: Schema.Types.ObjectId, default: null, ref: 'CrmObject' },
    /** What changed: the addresses/domains to look for (backfill) or that were removed (prune). */
    emails: { type: [String], default: [] },
    domains: { type: [String], default: [] },
    status: { type: String, enum: BACKFILL_STATUSES, default: 'pending' },
    total: { type: Number, default: 0 },
    processed: { type: Number, default: 0 },
    linked: { type: Number, default: 0 },
    removed: { type: Number, default: 0 },
    /** Last message/link _id handled; work resumes after it. */
    cursor: { type: Schema.Types.ObjectId, default: null },
    error: { type: String, default: '' },
    /** Failed runs so far; a job is retried (resuming at its cursor) until MAX_JOB_ATTEMPTS. */
    attempts: { type: Number, default: 0 },
    lockedUntil: { type: Date, default: () => new Date(0) },
    createdBy: { type: Schema.Types.ObjectId, default: null },
    createdAt: { type: Date, required: true },
    startedAt: { type: Date, default: null },
    finishedAt: { type: Date, default: null },
  },
  { collection: 'crm_backfill_jobs' },
);
backfillJobSchema.index({ status: 1, createdAt: 1 });
backfillJobSchema.index({ objectId: 1, createdAt: -1 });
backfillJobSchema.index({ createdAt: -1 });

export type BackfillJobDoc = InferSchemaType<typeof backfillJobSchema>;
