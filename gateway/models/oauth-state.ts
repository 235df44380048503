import { Schema, type InferSchemaType } from 'mongoose';

/**
 * Pending OAuth2 authorisations (gateway/oauth/authorize.ts): one row per
 * "Sign in with …" click, deleted by the callback that consumes it (single
 * use) or swept once expired. `_id` is the SHA-256 of the `state` parameter
 * (RFC 6749 §10.12), so a database reader cannot replay a live state; the
 * PKCE code verifier (RFC 7636) is sealed under the same hash. No TTL index
 * (FerretDB has none): expired rows are refused on read and swept through
 * the `expiresAt` index.
 */
export const oauthStateSchema = new Schema(
  {
    _id: { type: String, required: true },
    userId: { type: Schema.Types.ObjectId, required: true },
    accountId: { type: Schema.Types.ObjectId, required: true },
    provider: { type: String, required: true },
    codeVerifierEnc: { type: String, required: true },
    redirectUri: { type: String, required: true },
    createdAt: { type: Date, required: true },
    expiresAt: { type: Date, required: true },
  },
  { collection: 'oauth_states' },
);
oauthStateSchema.index({ expiresAt: 1 });

export type OAuthStateDoc = InferSchemaType<typeof oauthStateSchema>;
