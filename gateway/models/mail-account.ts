import { Schema, type InferSchemaType } from 'mongoose';

export const FORWARDING_STATUSES = ['waiting', 'code_received', 'verified', 'broken', 'blocked'] as const;
export const IMAP_STATUSES = ['off', 'unverified', 'authenticated', 'failing'] as const;
export const TLS_MODES = ['implicit', 'starttls', 'none'] as const;
export const OAUTH_STATUSES = ['ok', 'reauth_needed'] as const;

/** Connection settings shared by the IMAP (sync) and SMTP (send) sides. */
const serverSettings = {
  enabled: { type: Boolean, default: false },
  service: { type: String, default: 'custom' },
  host: { type: String, default: '' },
  port: { type: Number, default: 0 },
  tls: { type: String, enum: TLS_MODES, default: 'implicit' },
  username: { type: String, default: '' },
  /** AES-256-GCM sealed password (gateway/core/crypto SecretBox, context = account id). Never sent to a browser. */
  passwordEnc: { type: String, default: '' },
  status: { type: String, enum: IMAP_STATUSES, default: 'off' },
  lastError: { type: String, default: '' },
  lastErrorCode: { type: String, default: '' },
  authenticatedAt: { type: Date, default: null },
};

export const mailAccountSchema = new Schema(
  {
    ownerId: { type: Schema.Types.ObjectId, required: true, ref: 'User' },
    /** The employee's mailbox, e.g. bob@acme.com (lower-cased). */
    email: { type: String, required: true, lowercase: true, trim: true },
    domain: { type: String, required: true, lowercase: true },
    /** Random, unguessable, never reused: `<readable>.<token>@GATEWAY_DOMAIN`. */
    forwardingToken: { type: String, required: true },
    forwardingAddress: { type: String, required: true, lowercase: true },
    enabled: { type: Boolean, default: true },
    forwarding: {
      status: { type: String, enum: FORWARDING_STATUSES, default: 'waiting' },
      provider: { type: String, default: '' },
      confirmationCode: { type: String, default: '' },
      confirmationLink: { type: String, default: '' },
      confirmationAt: { type: Date, default: null },
      verifiedAt: { type: Date, default: null },
      lastForwardedAt: { type: Date, default: null },
      /** Why forwarding is broken/blocked (e.g. IMAP saw mail that never arrived by forwarding; M365 5.7.520). */
      problem: { type: String, default: '' },
      problemAt: { type: Date, default: null },
      /**
       * The latest provider confirmation held in Quarantine because another mailbox asked for it (an alias's
       * primary address, the owner's other account, a stranger): the account page points to it.
       */
      heldAt: { type: Date, default: null },
      heldRequester: { type: String, default: '' },
      heldProvider: { type: String, default: '' },
      heldMessageId: { type: Schema.Types.ObjectId, default: null },
      /** The requester is another of the owner's accounts: the wrong forwarding address was pasted at the provider. */
      heldForOtherAccount: { type: Boolean, default: false },
      /** The latest mail to the forwarding address quarantined for failing authentication while forwarding was unverified. */
      quarantinedAt: { type: Date, default: null },
      quarantinedReason: { type: String, default: '' },
      quarantinedMessageId: { type: Schema.Types.ObjectId, default: null },
    },
    imap: {
      ...serverSettings,
      /** Extra folders picked by the user, beyond INBOX and the \Sent folder. */
      folders: { type: [String], default: [] },
      lastSyncAt: { type: Date, default: null },
      lastSuccessAt: { type: Date, default: null },
      lastPassStored: { type: Number, default: 0 },
      /** Exponential backoff after network/TLS failures. */
      failures: { type: Number, default: 0 },
      nextAttemptAt: { type: Date, default: null },
    },
    smtp: {
      ...serverSettings,
      /** Reuse the IMAP username/password unless the user gave others. */
      sameCredentials: { type: Boolean, default: true },
    },
    /**
     * OAuth2 authorisation for IMAP/SMTP (XOAUTH2/OAUTHBEARER) instead of a
     * password; `provider` '' means the account uses passwords. Tokens are
     * sealed like passwords (SecretBox, context = account id) and owned by
     * gateway/oauth: read them only through getAccessToken().
     */
    oauth: {
      provider: { type: String, default: '' },
      refreshTokenEnc: { type: String, default: '' },
      accessTokenEnc: { type: String, default: '' },
      expiresAt: { type: Date, default: null },
      /** 'reauth_needed': the provider refused the grant (revoked/expired); nothing retries until the user signs in again. */
      status: { type: String, enum: OAUTH_STATUSES, default: 'ok' },
      lastError: { type: String, default: '' },
      lastErrorCode: { type: String, default: '' },
      lastErrorAt: { type: Date, default: null },
      /** Scopes the provider granted (space-separated, RFC 6749 §3.3). */
      scope: { type: String, default: '' },
      grantedAt: { type: Date, default: null },
      /**
       * The token and revocation endpoints the grant came from: its refresh token is sent to these only, so
       * an endpoint changed in Preferences → Business later never receives it. '' on grants older than this
       * field (bound at their next refresh).
       */
      tokenEndpoint: { type: String, default: '' },
      revocationEndpoint: { type: String, default: '' },
      refreshedAt: { type: Date, default: null },
      /** Backoff after a failed refresh the provider may recover from (network, 5xx, client misconfigured). */
      failures: { type: Number, default: 0 },
      retryAfter: { type: Date, default: null },
    },
    lastMailAt: { type: Date, default: null },
    messageCount: { type: Number, default: 0 },
  },
  { timestamps: true, collection: 'mail_accounts' },
);

mailAccountSchema.index({ forwardingToken: 1 }, { unique: true });
mailAccountSchema.index({ forwardingAddress: 1 }, { unique: true });
mailAccountSchema.index({ ownerId: 1, email: 1 }, { unique: true });
mailAccountSchema.index({ email: 1 });
mailAccountSchema.index({ 'imap.enabled': 1, enabled: 1 });

export type MailAccountDoc = InferSchemaType<typeof mailAccountSchema>;
