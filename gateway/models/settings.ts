import { Schema, type InferSchemaType } from 'mongoose';

export const AUTH_POLICIES = ['quarantine', 'reject'] as const;

/**
 * One OAuth2 provider as entered in Preferences → Business. Empty fields fall
 * back to the environment, then to the built-in defaults (gateway/oauth).
 */
const oauthProviderSettings = () => ({
  clientId: { type: String, default: '' },
  /** SecretBox-sealed, context 'settings:oauth:<provider>'. Never sent to a browser. */
  clientSecretEnc: { type: String, default: '' },
  issuer: { type: String, default: '' },
  authorizationUrl: { type: String, default: '' },
  tokenUrl: { type: String, default: '' },
  revocationUrl: { type: String, default: '' },
  /** Space-separated; empty = the environment's or the default scopes. */
  scopes: { type: String, default: '' },
  tenant: { type: String, default: '' },
  label: { type: String, default: '' },
});

/** Business-wide settings: one document with _id 'business'. */
export const businessSettingsSchema = new Schema(
  {
    _id: { type: String, default: 'business' },
    name: { type: String, default: '' },
    domains: { type: [String], default: [] },
    /** What happens to mail whose authentication verdict is fail. */
    authPolicy: { type: String, enum: AUTH_POLICIES, default: 'quarantine' },
    retentionDays: { type: Number, default: 0 },
    /** IANA zone of the business: the console's times for everyone who did not choose their own ('' = UTC). */
    timeZone: { type: String, default: '' },
    /**
     * When an admin last saved retentionDays on a form that says older mail is
     * deleted. Stores from before retention was applied may hold a value typed
     * when it did nothing: that value deletes nothing until saved again.
     */
    retentionConfirmedAt: { type: Date, default: null },
    /** When the admin finished making older mail's attached messages searchable (accounts/attached-text-backfill.ts): later starts skip its scan. */
    attachedTextBackfilledAt: { type: Date, default: null },
    /** Extra free-mail domains never linked to customers by domain. */
    freemailDomains: { type: [String], default: [] },
    /** Match `bob+tag@` as `bob@` (RFC 5233 sub-addressing) when linking mail to CRM objects. */
    stripSubaddress: { type: Boolean, default: true },
    /** Employees' linked mail is visible on object timelines to everyone. */
    shareLinkedMail: { type: Boolean, default: false },
    /** OAuth2 clients for "Sign in with Google/Microsoft/…" (IMAP and SMTP via XOAUTH2). */
    oauth: {
      google: oauthProviderSettings(),
      microsoft: oauthProviderSettings(),
      oidc: oauthProviderSettings(),
    },
  },
  { timestamps: true, collection: 'settings' },
);

export type BusinessSettingsDoc = InferSchemaType<typeof businessSettingsSchema>;
