import { Schema, type InferSchemaType } from 'mongoose';

/**
 * Console sessions (admin/session-store.ts). No TTL index (FerretDB has
 * none): a read past `expiresAt` counts as no session, and the admin process
 * sweeps expired rows periodically through the `expiresAt` index.
 */
export const sessionSchema = new Schema(
  {
    _id: { type: String, required: true },
    /** The express-session object as JSON (a string: its keys are not ours to vet for '.'/'$'). */
    data: { type: String, required: true },
    expiresAt: { type: Date, required: true },
    /** Set once signed in, so disabling a user ends all of their sessions. */
    userId: { type: Schema.Types.ObjectId, default: null },
  },
  { collection: 'sessions' },
);
sessionSchema.index({ expiresAt: 1 });
sessionSchema.index({ userId: 1 });

export type SessionDoc = InferSchemaType<typeof sessionSchema>;
