import { Schema, type InferSchemaType } from 'mongoose';

export const SOURCE_KINDS = ['forward', 'mx', 'imap', 'sent'] as const;
export type SourceKind = (typeof SOURCE_KINDS)[number];
export const VERDICTS = ['pass', 'fail', 'none'] as const;
export const MESSAGE_STATUSES = ['inbox', 'quarantine'] as const;

const addressSchema = new Schema({ address: { type: String, default: '' }, name: { type: String, default: '' } }, { _id: false });

/** How one copy of the message reached Postroom; a message reached twice has two. */
const sourceSchema = new Schema(
  {
    kind: { type: String, enum: SOURCE_KINDS, required: true },
    at: { type: Date, required: true },
    queueId: { type: String, default: '' },
    remoteIp: { type: String, default: '' },
    envelopeFrom: { type: String, default: '' },
    envelopeTo: { type: [String], default: [] },
    folder: { type: String, default: '' },
    uidValidity: { type: String, default: '' },
    uid: { type: Number, default: 0 },
  },
  { _id: false },
);

export const messageSchema = new Schema(
  {
    /** De-duplication scope: the mail account id, or `dropbox:<userId>` for BCC-dropbox mail. */
    mailboxKey: { type: String, required: true },
    accountId: { type: Schema.Types.ObjectId, default: null, ref: 'MailAccount' },
    ownerId: { type: Schema.Types.ObjectId, required: true, ref: 'User' },
    /** Message-ID header without angle brackets ('' when absent). */
    messageId: { type: String, default: '' },
    /** SHA-256 of what a forwarder does not change: From, Date, Subject, body. */
    contentHash: { type: String, required: true },
    /** SHA-256(messageId, contentHash): unique per mailbox, so a reused Message-ID with other content is still stored. */
    dedupeKey: { type: String, required: true },
    sources: { type: [sourceSchema], default: [] },
    receivedAt: { type: Date, required: true },
    date: { type: Date, default: null },
    from: { type: addressSchema, default: () => ({}) },
    sender: { type: addressSchema, default: null },
    to: { type: [addressSchema], default: [] },
    cc: { type: [addressSchema], default: [] },
    bcc: { type: [addressSchema], default: [] },
    replyTo: { type: [addressSchema], default: [] },
    /** Every address of the message, lower-cased: search and CRM matching. */
    addresses: { type: [String], default: [] },
    subject: { type: String, default: '' },
    inReplyTo: { type: String, default: '' },
    references: { type: [String], default: [] },
    /** Headers in order as {name, value} pairs (FerretDB forbids '.'/'$' in keys). */
    headers: { type: [new Schema({ name: String, value: String }, { _id: false })], default: [] },
    text: { type: String, default: '' },
    /** The HTML part as received; always sanitised before it is shown. */
    html: { type: String, default: '' },
    /** Senders, subjects and texts of messages attached to this one (forwarded as attachment): found by search. */
    attachedText: { type: String, default: '' },
    attachments: {
      type: [
        new Schema(
          {
            filename: { type: String, default: '' },
            contentType: { type: String, default: 'application/octet-stream' },
            size: { type: Number, default: 0 },
            contentId: { type: String, default: '' },
            disposition: { type: String, default: 'attachment' },
            /**
             * null: the bytes are read back from the raw message (gateway/mail/attachments.ts), by
             * position in this array. Messages stored before that have a GridFS copy here.
             */
            blobId: { type: Schema.Types.ObjectId, default: null },
          },
          { _id: false },
        ),
      ],
      default: [],
    },
    /** Raw RFC 5322 bytes in the `raw` GridFS bucket; null when they are in rawInline. */
    rawBlobId: { type: Schema.Types.ObjectId, default: null },
    /**
     * Raw bytes of a small message (gateway/mail/parse.ts INLINE_RAW_MAX)
     * kept in the document itself: one write instead of three (GridFS file
     * and chunk). Not loaded unless asked for ('+rawInline').
     */
    rawInline: { type: Buffer, default: null, select: false },
    size: { type: Number, required: true },
    auth: {
      verdict: { type: String, enum: VERDICTS, default: 'none' },
      reason: { type: String, default: '' },
      /** The full Authentication-Results header value we computed (RFC 8601). */
      results: { type: String, default: '' },
      spf: { type: String, default: '' },
      dkim: { type: String, default: '' },
      dmarc: { type: String, default: '' },
      arc: { type: String, default: '' },
      /** Is the From domain authenticated (DMARC here, or at a trusted forwarder)? pass, fail, none; '' before it was recorded. */
      sender: { type: String, default: '' },
      /** Why a failing message was held, in plain words for the employee (gateway/mail/auth-explain.ts); '' when it passed or before it was recorded. */
      explanation: { type: String, default: '' },
    },
    status: { type: String, enum: MESSAGE_STATUSES, default: 'inbox' },
    quarantineReason: { type: String, default: '' },
    /** Set when MIME parsing failed: the raw bytes are kept, fields are partial. */
    parseError: { type: String, default: '' },
    /** 'message', 'forwarding-confirmation', 'forwarding-blocked', 'bulk' … */
    kind: { type: String, default: 'message' },
    confirmation: {
      provider: { type: String, default: '' },
      code: { type: String, default: '' },
      link: { type: String, default: '' },
      requester: { type: String, default: '' },
    },
    bulk: { type: Boolean, default: false },
    /** Denormalised from the links collection so the inbox can filter by object with an index. */
    linkedObjectIds: { type: [Schema.Types.ObjectId], default: [] },
    /** When CRM association last ran (gateway/crm/link.ts); null inbox mail is picked up by the CRM worker's sweep after a crash. */
    linkedAt: { type: Date, default: null },
    /** Shared to other employees on object timelines (privacy rule). */
    shared: { type: Boolean, default: false },
    /**
     * Not opened by its owner yet. Only `true` means unread: mail stored before read state existed has no
     * such field and counts as read (no migration rewrites it). Ingest writes it with the document (arrival
     * read: sent mail, the owner's dropbox, IMAP mail already \Seen); one state for all of the owner's copies
     * of a mail (gateway/accounts/read-state.ts).
     */
    unread: { type: Boolean, default: false },
  },
  { timestamps: true, collection: 'messages' },
);

messageSchema.index({ mailboxKey: 1, dedupeKey: 1 }, { unique: true });
messageSchema.index({ ownerId: 1, receivedAt: -1, _id: -1 });
// An employee's Inbox and Quarantine views (admin/routes/emails.ts): owner + status, newest first.
messageSchema.index({ ownerId: 1, status: 1, receivedAt: -1, _id: -1 });
messageSchema.index({ accountId: 1, receivedAt: -1, _id: -1 });
messageSchema.index({ status: 1, receivedAt: -1, _id: -1 });
messageSchema.index({ receivedAt: -1, _id: -1 });
messageSchema.index({ addresses: 1, receivedAt: -1 });
messageSchema.index({ linkedObjectIds: 1, receivedAt: -1 });
// A message's conversation among its owner's mail (gateway/accounts/conversation.ts): the messages it names, and the
// replies that name its first message in References.
messageSchema.index({ ownerId: 1, messageId: 1 });
messageSchema.index({ ownerId: 1, references: 1 });
// The copies of one mail in an employee's several mailboxes (same de-duplication key): deleting one deletes them all.
messageSchema.index({ ownerId: 1, dedupeKey: 1 });
messageSchema.index({ status: 1, linkedAt: 1 });
// An owner's unread mail: the inbox's "Unread only" list (newest first) and its unread count, which groups by
// dedupeKey (one entry per mail): the index holds every field the count reads, so MongoDB can answer it without
// reading the documents (not measured here: the build machines have no MongoDB).
messageSchema.index({ ownerId: 1, status: 1, unread: 1, receivedAt: -1, _id: -1, dedupeKey: 1 });

export type MessageDoc = InferSchemaType<typeof messageSchema>;

/**
 * Remembers messages a user deleted so a later IMAP sync never brings them
 * back (same key as the message's de-duplication key).
 */
export const tombstoneSchema = new Schema(
  {
    mailboxKey: { type: String, required: true },
    dedupeKey: { type: String, required: true },
    /** The deleted message's content hash ('' before it was recorded): a copy of it without a Message-ID is the same mail (gateway/mail/ingest.ts). */
    contentHash: { type: String, default: '' },
    deletedAt: { type: Date, required: true },
    deletedBy: { type: Schema.Types.ObjectId, default: null },
    /**
     * Set for mail that mail retention removed: the message's receivedAt. Such a tombstone is only needed while
     * an IMAP first sync (or a re-read) could fetch the mail again, and is dropped once it is older than
     * IMAP_BACKFILL_DAYS (gateway/accounts/mail-retention.ts). Unset for mail a person deleted: kept for good.
     */
    expiredReceivedAt: { type: Date, default: null },
  },
  { collection: 'message_tombstones' },
);
tombstoneSchema.index({ mailboxKey: 1, dedupeKey: 1 }, { unique: true });
