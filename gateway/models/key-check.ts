import { Schema, type InferSchemaType } from 'mongoose';

/**
 * One document (_id 'secrets'): a value sealed with the key that seals this
 * store's secrets, so a process started with another key (a restore without
 * the backup's SECRET_KEY or secret.key) can tell before it touches them
 * (gateway/accounts/secret-key-check.ts).
 */
export const keyCheckSchema = new Schema(
  {
    _id: { type: String, required: true },
    sealed: { type: String, required: true },
    createdAt: { type: Date, required: true },
  },
  { collection: 'key_checks', versionKey: false },
);

export type KeyCheckDoc = InferSchemaType<typeof keyCheckSchema>;
