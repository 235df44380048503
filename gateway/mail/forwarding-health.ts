import type mongoose from 'mongoose';
import type { Store } from '../store';
import { M365_BLOCKED_PROBLEM } from './confirmations';

type ObjectId = mongoose.Types.ObjectId;

/**
 * The forwarding state of a mail account (MailAccount.forwarding), moved by
 * what arrives at its forwarding address:
 *
 *   waiting ──confirmation──▶ code_received ──forwarded mail──▶ verified
 *      └────────────────────────forwarded mail──────────────────▶ verified
 *   any ──5.7.520 bounce──▶ blocked ──forwarded mail──▶ verified
 *
 * 'broken' is set by the IMAP syncer (mail in the mailbox that never came
 * by forwarding); only the syncer clears it. Each update is one idempotent
 * write, so a retried delivery repeats it harmlessly. "Last forwarded mail"
 * (forwarding.lastForwardedAt) is written by ingest with the message
 * counter (Classification.accountSet), not here.
 */

export type ForwardingEvent =
  | { type: 'confirmation'; provider: string; code: string; link: string }
  | { type: 'blocked'; problem?: string }
  | { type: 'forwarded' }
  /** A provider's confirmation that another mailbox asked for, stored in Quarantine as `messageId`. */
  | { type: 'held'; provider: string; requester: string; forOtherAccount: boolean; messageId: ObjectId | null }
  /** Mail to the address quarantined (authentication failed) while forwarding is unverified: maybe forwarded mail that fails. */
  | { type: 'quarantined'; reason: string; messageId: ObjectId | null };

export async function recordForwardingEvent(store: Store, accountId: ObjectId, event: ForwardingEvent, now: Date = new Date()): Promise<void> {
  const { MailAccount } = store.models;
  switch (event.type) {
    case 'confirmation':
      await MailAccount.updateOne(
        { _id: accountId },
        {
          $set: {
            'forwarding.status': 'code_received',
            'forwarding.provider': event.provider,
            'forwarding.confirmationCode': event.code,
            'forwarding.confirmationLink': event.link,
            'forwarding.confirmationAt': now,
          },
        },
      );
      return;
    case 'blocked':
      await MailAccount.updateOne(
        { _id: accountId },
        { $set: { 'forwarding.status': 'blocked', 'forwarding.problem': event.problem ?? M365_BLOCKED_PROBLEM, 'forwarding.problemAt': now } },
      );
      return;
    case 'held':
      if (!event.messageId) return;
      await MailAccount.updateOne(
        { _id: accountId },
        { $set: { 'forwarding.heldAt': now, 'forwarding.heldRequester': event.requester, 'forwarding.heldProvider': event.provider, 'forwarding.heldMessageId': event.messageId, 'forwarding.heldForOtherAccount': event.forOtherAccount } },
      );
      return;
    case 'quarantined':
      if (!event.messageId) return;
      await MailAccount.updateOne(
        { _id: accountId },
        { $set: { 'forwarding.quarantinedAt': now, 'forwarding.quarantinedReason': event.reason, 'forwarding.quarantinedMessageId': event.messageId } },
      );
      return;
    case 'forwarded':
      await MailAccount.updateOne({ _id: accountId, 'forwarding.verifiedAt': null }, { $set: { 'forwarding.verifiedAt': now } });
      await MailAccount.updateOne(
        { _id: accountId, 'forwarding.status': { $in: ['waiting', 'code_received', 'blocked'] } },
        { $set: { 'forwarding.status': 'verified', 'forwarding.problem': '', 'forwarding.problemAt': null } },
      );
      return;
  }
}
