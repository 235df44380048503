import { Schema, type InferSchemaType } from 'mongoose';

/**
 * One token refresh per mail account at a time, across processes
 * (gateway/oauth/tokens.ts). Taken by inserting `_id` = account id: the
 * unique _id makes exactly one insert win, on MongoDB and on FerretDB alike —
 * FerretDB 1.24 evaluates the filter of a conditional update and its write
 * separately, so "update where unlocked" can let several writers through.
 * A holder that died leaves a row past `until`, which the next caller
 * removes (by its lockId) before taking the lock.
 */
export const oauthRefreshLockSchema = new Schema(
  {
    _id: { type: String, required: true },
    lockId: { type: String, required: true },
    until: { type: Date, required: true },
  },
  { collection: 'oauth_refresh_locks', versionKey: false },
);

export type OAuthRefreshLockDoc = InferSchemaType<typeof oauthRefreshLockSchema>;
