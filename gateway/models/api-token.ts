import { Schema, type InferSchemaType } from 'mongoose';

/** API bearer tokens, stored by SHA-256 only; the token is shown once. */
export const apiTokenSchema = new Schema(
  {
    userId: { type: Schema.Types.ObjectId, required: true },
    name: { type: String, default: '' },
    tokenHash: { type: String, required: true },
    /** First characters, to tell tokens apart in the console. */
    prefix: { type: String, default: '' },
    createdAt: { type: Date, required: true },
    lastUsedAt: { type: Date, default: null },
    revokedAt: { type: Date, default: null },
  },
  { collection: 'api_tokens' },
);
apiTokenSchema.index({ tokenHash: 1 }, { unique: true });
apiTokenSchema.index({ userId: 1, createdAt: -1 });

export type ApiTokenDoc = InferSchemaType<typeof apiTokenSchema>;
