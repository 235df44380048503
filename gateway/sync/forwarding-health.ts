import type mongoose from 'mongoose';
import type { Logger } from '../core/log';
import type { Store } from '../store';

type ObjectId = mongoose.Types.ObjectId;

/**
 * Forwarding health, seen from IMAP. Providers stop forwarding silently (a
 * changed password, a disabled rule, an admin policy such as Microsoft 365's
 * 5.7.520); the user only notices weeks later. IMAP sees the inbox itself:
 * a message that reached INBOX after forwarding was verified, and that
 * forwarding has not delivered within the grace period, is evidence that
 * forwarding is broken. (The forwarded copy and the IMAP copy share one
 * de-duplicated document, so "delivered" = the document has a 'forward'
 * source.)
 */

/** How far back each check looks, beyond the grace period: newer evidence is what matters. */
const LOOKBACK_MS = 24 * 60 * 60_000;
/** Enough recent mail to find evidence without reading a whole inbox. */
const SCAN_LIMIT = 200;

export interface ForwardingHealth {
  broken: boolean;
  evidence?: string;
}

interface AccountForHealth {
  _id: ObjectId;
  forwarding?: { status?: string | null; verifiedAt?: Date | null } | null;
}

export async function checkForwardingHealth(
  deps: { store: Store; log: Logger },
  account: AccountForHealth,
  options: { inboxPath: string; graceMs: number; now: Date },
): Promise<ForwardingHealth> {
  const forwarding = account.forwarding;
  if (forwarding?.status !== 'verified') return { broken: false };
  const cutoff = new Date(options.now.getTime() - options.graceMs);
  const lookbackStart = new Date(cutoff.getTime() - LOOKBACK_MS);
  // Mail older than verification was never expected to be forwarded.
  const from = forwarding.verifiedAt && forwarding.verifiedAt > lookbackStart ? forwarding.verifiedAt : lookbackStart;
  if (from >= cutoff) return { broken: false };

  const recent = await deps.store.models.Message.find(
    { accountId: account._id, receivedAt: { $gte: from, $lte: cutoff }, 'sources.kind': 'imap' },
    { sources: 1, subject: 1, from: 1, messageId: 1, receivedAt: 1 },
  )
    .sort({ receivedAt: -1 })
    .limit(SCAN_LIMIT)
    .lean();
  const undelivered = recent.filter(
    (message) =>
      message.sources.some((source) => source.kind === 'imap' && source.folder === options.inboxPath) &&
      !message.sources.some((source) => source.kind === 'forward'),
  );
  if (undelivered.length === 0) return { broken: false };

  const example = undelivered[0];
  const minutes = Math.round(options.graceMs / 60_000);
  const evidence =
    `${undelivered.length} message${undelivered.length === 1 ? '' : 's'} reached ${options.inboxPath} (seen by IMAP sync) but did not arrive by forwarding within ${minutes} min; ` +
    `latest: "${example.subject || '(no subject)'}" from ${example.from?.address || 'unknown sender'}, received ${example.receivedAt.toISOString()}` +
    (example.messageId ? ` (Message-ID <${example.messageId}>)` : '') +
    '. Check the forwarding rule at the mail provider.';
  const updated = await deps.store.models.MailAccount.updateOne(
    { _id: account._id, 'forwarding.status': 'verified' },
    { $set: { 'forwarding.status': 'broken', 'forwarding.problem': evidence, 'forwarding.problemAt': options.now } },
  );
  if (updated.modifiedCount === 1) deps.log.warn({ accountId: account._id.toHexString(), undelivered: undelivered.length }, 'forwarding marked broken: IMAP saw mail that forwarding never delivered');
  return { broken: true, evidence };
}
