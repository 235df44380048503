import mongoose from 'mongoose';
import { recordAudit, SYSTEM_ACTOR } from '../accounts/audit';
import { changeHeldMessage, forgetHeldNotice } from '../accounts/mailbox';
import type { Logger } from '../core/log';
import type { SourceKind } from '../models/message';
import type { Store } from '../store';
import type { AssociableMessage, Associator } from './ingest';

type ObjectId = mongoose.Types.ObjectId;

/** What the release reads of the stored copy. */
interface HeldMessage {
  _id: ObjectId;
  ownerId?: ObjectId | null;
  dedupeKey?: string | null;
  accountId?: ObjectId | null;
  status?: string | null;
  kind?: string | null;
  quarantineReason?: string | null;
  subject?: string | null;
  from?: { address?: string | null } | null;
}

/** The reason gateway/mail/inbound.ts gives mail whose forwarding path failed authentication. */
const PATH_NOT_PROVEN = /^authentication failed/;

/**
 * Whether this copy proves what held the stored one: forwarded mail is
 * quarantined when nothing showed it came through the mailbox's provider
 * (README, authentication policy). The same mail read from the mailbox by
 * the IMAP sync, or sent from it, did: had that copy come first, the mail
 * would be in the inbox. Held for another reason (a forwarding confirmation
 * for another mailbox), it stays held.
 */
export function provesHeldPath(kind: SourceKind, existing: HeldMessage): boolean {
  return (kind === 'imap' || kind === 'sent') && existing.status === 'quarantine' && (existing.kind ?? 'message') === 'message' && PATH_NOT_PROVEN.test(existing.quarantineReason ?? '');
}

type ReleaseDeps = { store: Store; log: Logger; associate?: Associator };

/**
 * Move the held copy to the inbox, linked to its CRM objects like any inbox
 * mail, and say so in the audit log; the owner's copies of the same mail in
 * their other mailboxes, held the same way, go with it (the inbox lists them
 * as one: gateway/accounts/mailbox.ts). Resolves with the status the message
 * has afterwards; a failure is logged and leaves it held (it is stored).
 */
export async function releaseFoundInMailbox(deps: ReleaseDeps, existing: HeldMessage & Record<string, unknown>, source: { kind: SourceKind; folder?: string }): Promise<'inbox' | 'quarantine'> {
  const status = await releaseOne(deps, existing, source);
  if (status === 'inbox' && existing.ownerId && existing.dedupeKey) {
    const copies = await deps.store.models.Message.find({ ownerId: existing.ownerId, dedupeKey: existing.dedupeKey, status: 'quarantine', _id: { $ne: existing._id } })
      .lean()
      .catch((err: Error) => {
        deps.log.error({ err, id: existing._id }, 'could not look for held copies of a released message');
        return [];
      });
    for (const copy of copies) if (provesHeldPath(source.kind, copy)) await releaseOne(deps, copy as HeldMessage & Record<string, unknown>, source);
  }
  return status;
}

async function releaseOne(deps: ReleaseDeps, existing: HeldMessage & Record<string, unknown>, source: { kind: SourceKind; folder?: string }): Promise<'inbox' | 'quarantine'> {
  const { store, log } = deps;
  try {
    const now = new Date();
    const asInbox = { ...existing, status: 'inbox' } as AssociableMessage;
    const planned = deps.associate ? await deps.associate.plan(asInbox).catch(() => null) : null;
    // Under the held message's lease, as the console's Release and Quarantine's page delete: a page deleted
    // meanwhile must not take the mail this release puts in the inbox.
    const released = await changeHeldMessage(store, existing._id, () => store.models.Message.updateOne(
      { _id: existing._id, status: 'quarantine' },
      // Unplanned (no associator, or planning failed): linkedAt null lets the CRM sweep link it.
      { $set: { status: 'inbox', linkedObjectIds: planned?.objectIds ?? [], linkedAt: planned ? now : null } },
    ));
    if (released.modifiedCount === 0) return 'quarantine';
    if (planned && deps.associate) {
      await deps.associate.commit({ ...asInbox, linkedObjectIds: planned.objectIds, linkedAt: now }, planned).catch((err: Error) => log.error({ err, id: existing._id }, 'could not write the links of a released message'));
    }
    await forgetHeldNotice(store, existing);
    const where = source.kind === 'imap' ? `the IMAP sync found it in the mailbox${source.folder ? ` (${source.folder})` : ''}` : 'it was sent from the mailbox';
    await recordAudit(store, SYSTEM_ACTOR, {
      action: 'message.release', targetType: 'message', targetId: existing._id.toString(),
      details: { subject: existing.subject ?? '', from: existing.from?.address ?? '', reason: `${where}: it came through the mailbox's provider`, heldFor: existing.quarantineReason ?? '' },
    }, now);
    log.info({ id: existing._id, source: source.kind }, 'held message found in the mailbox: released to the inbox');
    return 'inbox';
  } catch (err) {
    log.error({ err, id: existing._id }, 'could not release a held message found in the mailbox; it stays in Quarantine');
    return 'quarantine';
  }
}
