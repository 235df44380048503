import { Schema, type InferSchemaType } from 'mongoose';

export const OBJECT_TYPES = ['customer', 'contact', 'lead'] as const;
export type ObjectType = (typeof OBJECT_TYPES)[number];

/** A CRM record: customer (company), contact (person) or lead. */
export const crmObjectSchema = new Schema(
  {
    type: { type: String, enum: OBJECT_TYPES, required: true },
    name: { type: String, required: true, trim: true },
    /** Lower-case name for prefix search without $text (FerretDB has none). */
    nameLower: { type: String, required: true },
    /** Normalised addresses (see gateway/crm/normalize). */
    emails: { type: [String], default: [] },
    /** Customers only: punycode, lower-case domains. */
    domains: { type: [String], default: [] },
    customerId: { type: Schema.Types.ObjectId, default: null, ref: 'CrmObject' },
    company: { type: String, default: '' },
    /** Id in the CRM that pushes records; `local:<_id>` for records made here, so the unique index never sees nulls. */
    externalId: { type: String, required: true },
    rules: {
      /** Link bulk/automated mail (newsletters) too. */
      linkBulk: { type: Boolean, default: false },
      /** Addresses never linked to this object (added by unlinking). */
      neverLink: { type: [String], default: [] },
    },
    createdBy: { type: Schema.Types.ObjectId, default: null },
    /**
     * Lower-case words of the name, the addresses, their local parts and the
     * domains: search matches a prefix of any term through the multikey
     * index, without $text (gateway/crm/objects.ts computes it).
     */
    searchTerms: { type: [String], default: [] },
  },
  { timestamps: true, collection: 'crm_objects' },
);
crmObjectSchema.index({ type: 1, externalId: 1 }, { unique: true });
crmObjectSchema.index({ emails: 1 });
crmObjectSchema.index({ domains: 1 });
crmObjectSchema.index({ type: 1, nameLower: 1 });
crmObjectSchema.index({ nameLower: 1 });
crmObjectSchema.index({ searchTerms: 1 });
crmObjectSchema.index({ customerId: 1 });

export type CrmObjectDoc = InferSchemaType<typeof crmObjectSchema>;

/** Why and how a message is linked to an object. */
export const linkSchema = new Schema(
  {
    messageId: { type: Schema.Types.ObjectId, required: true, ref: 'Message' },
    objectId: { type: Schema.Types.ObjectId, required: true, ref: 'CrmObject' },
    ownerId: { type: Schema.Types.ObjectId, required: true },
    /** The address that matched and the rule ('address' | 'domain' | 'manual'). */
    address: { type: String, required: true },
    rule: { type: String, required: true },
    receivedAt: { type: Date, required: true },
    createdAt: { type: Date, required: true },
    /** Every match that supports the link (gateway/crm/rules.ts LinkReason); address/rule above are the first. */
    reasons: {
      type: [
        new Schema(
          {
            address: { type: String, required: true },
            rule: { type: String, required: true },
            /** Header the address was in: from, sender, reply-to, to, cc ('' for manual). */
            role: { type: String, default: '' },
            /** The object's email or domain that matched, so removing it removes exactly its links. */
            matched: { type: String, default: '' },
          },
          { _id: false },
        ),
      ],
      default: [],
    },
    /** Set when a user unlinked the message: the pair is never linked again automatically. */
    removedAt: { type: Date, default: null },
    removedBy: { type: Schema.Types.ObjectId, default: null },
    /** When the link.created webhook events were queued (null: not yet; re-queued idempotently after a crash). */
    eventQueuedAt: { type: Date, default: null },
  },
  { collection: 'links' },
);
linkSchema.index({ messageId: 1, objectId: 1 }, { unique: true });
linkSchema.index({ objectId: 1, receivedAt: -1 });
linkSchema.index({ objectId: 1, address: 1 });
linkSchema.index({ objectId: 1, 'reasons.matched': 1 });
linkSchema.index({ eventQueuedAt: 1 });

export type LinkDoc = InferSchemaType<typeof linkSchema>;
