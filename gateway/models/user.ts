import { Schema, type InferSchemaType } from 'mongoose';

export const ROLES = ['admin', 'employee'] as const;
export type Role = (typeof ROLES)[number];

export const userSchema = new Schema(
  {
    email: { type: String, required: true, lowercase: true, trim: true },
    name: { type: String, default: '' },
    role: { type: String, enum: ROLES, default: 'employee', required: true },
    /** argon2id hash; empty until an invited user sets a password. */
    passwordHash: { type: String, default: '' },
    disabled: { type: Boolean, default: false },
    /** Token of the user's BCC/dropbox address (dropbox.<token>@GATEWAY_DOMAIN). */
    dropboxToken: { type: String, required: true },
    /** Pending invite: only the SHA-256 of the link token is stored. */
    invite: {
      tokenHash: { type: String, default: '' },
      expiresAt: { type: Date, default: null },
      invitedBy: { type: Schema.Types.ObjectId, default: null },
    },
    lastLoginAt: { type: Date, default: null },
    /** Set by every password change or reset: console sessions signed in before it are over. */
    passwordChangedAt: { type: Date, default: null },
    /** IANA zone the console shows this user's times and reads their dates in; '' = the business's zone. */
    timeZone: { type: String, default: '' },
  },
  { timestamps: true, collection: 'users' },
);

userSchema.index({ email: 1 }, { unique: true });
userSchema.index({ dropboxToken: 1 }, { unique: true });
userSchema.index({ 'invite.tokenHash': 1 });
userSchema.index({ role: 1, email: 1 });

export type UserDoc = InferSchemaType<typeof userSchema>;
