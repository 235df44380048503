import { Schema, type InferSchemaType } from 'mongoose';

/** What a token may do: `full` what its user may; `read` only list and read (GET), for reporting and exports. */
export const TOKEN_ACCESS = ['full', 'read'] as const;
export type TokenAccess = (typeof TOKEN_ACCESS)[number];

/** API bearer tokens, stored by SHA-256 only; the token is shown once. */
export const apiTokenSchema = new Schema(
  {
    userId: { type: Schema.Types.ObjectId, required: true },
    name: { type: String, default: '' },
    tokenHash: { type: String, required: true },
    /** First characters, to tell tokens apart in the console. */
    prefix: { type: String, default: '' },
    /** Tokens made before access levels existed have none stored: full, as they always were. */
    access: { type: String, enum: TOKEN_ACCESS, default: 'full' },
    createdAt: { type: Date, required: true },
    lastUsedAt: { type: Date, default: null },
    revokedAt: { type: Date, default: null },
  },
  { collection: 'api_tokens' },
);
apiTokenSchema.index({ tokenHash: 1 }, { unique: true });
apiTokenSchema.index({ userId: 1, createdAt: -1 });

export type ApiTokenDoc = InferSchemaType<typeof apiTokenSchema>;
