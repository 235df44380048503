import { Schema, type InferSchemaType } from 'mongoose';

/**
 * Sync ledger of one IMAP folder. The cursor is (uidValidity, lastUid)
 * (RFC 3501 §2.3.1.1): UIDs are only comparable under the same UIDVALIDITY.
 * lastUid advances only after the batch up to it is stored. A first sync
 * (or one after a UIDVALIDITY change) hands the UIDs up to backfill.topUid
 * to the newest-first backfill cursor (backfill.belowUid) and lastUid starts
 * at topUid; the folder is fully synced once backfill.completed is true.
 */
export const folderStateSchema = new Schema(
  {
    accountId: { type: Schema.Types.ObjectId, required: true },
    folder: { type: String, required: true },
    specialUse: { type: String, default: '' },
    /** Stored as a string: imapflow reports it as a BigInt. */
    uidValidity: { type: String, default: '' },
    lastUid: { type: Number, default: 0 },
    uidNext: { type: Number, default: 0 },
    highestModSeq: { type: String, default: '' },
    messagesOnServer: { type: Number, default: 0 },
    lag: { type: Number, default: 0 },
    backfill: {
      total: { type: Number, default: 0 },
      done: { type: Number, default: 0 },
      completed: { type: Boolean, default: false },
      /** Start of the window (SEARCH SINCE), fixed when the backfill starts so a resumed one covers the same mail. */
      since: { type: Date, default: null },
      /** UIDNEXT − 1 when the backfill started: mail above it is the incremental cursor's (lastUid). */
      topUid: { type: Number, default: 0 },
      /** Backfill cursor (newest first): every window message with belowUid ≤ UID ≤ topUid is stored. */
      belowUid: { type: Number, default: 0 },
    },
    /**
     * When and why the folder was last read again from the backfill window although it had been synced:
     * 'uidvalidity-changed' (recreated, RFC 3501 §2.3.1.1) or 'uids-reused' (UIDNEXT went back: restored
     * from a backup). Shown while that re-read runs, so a first sync reappearing is explained.
     */
    resyncedAt: { type: Date, default: null },
    resyncReason: { type: String, default: '' },
    lastPassAt: { type: Date, default: null },
    lastPassStored: { type: Number, default: 0 },
    lastError: { type: String, default: '' },
    stalled: { type: Boolean, default: false },
    /**
     * Messages the server lists but returns without their content (a mail
     * file it cannot read): attempts per UID under this uidValidity. Retried
     * a few times, then skipped so the rest of the folder still syncs.
     */
    unreadable: { type: [{ _id: false, uid: { type: Number, required: true }, attempts: { type: Number, default: 1 } }], default: [] },
  },
  { timestamps: true, collection: 'sync_folders' },
);
folderStateSchema.index({ accountId: 1, folder: 1 }, { unique: true });

/**
 * One holder at a time per account (see gateway/sync/lease.ts): each
 * take-over inserts the next epoch `<key>#<epoch>`; the unique _id picks one
 * winner, the newest epoch is the lease; a crashed holder's lease expires.
 */
export const syncLeaseSchema = new Schema(
  {
    _id: { type: String, required: true },
    key: { type: String, required: true },
    epoch: { type: Number, required: true },
    holder: { type: String, required: true },
    expiresAt: { type: Date, required: true },
  },
  { collection: 'sync_leases' },
);
syncLeaseSchema.index({ key: 1, epoch: -1 });

export type FolderStateDoc = InferSchemaType<typeof folderStateSchema>;
