import { PassThrough, type Readable } from 'node:stream';
import type mongoose from 'mongoose';
import { AppError } from '../core/errors';
import type { Logger } from '../core/log';
import type { Store } from '../store';
import { explainFailure } from './auth-explain';
import { alignedWith, decideAuthVerdict, TRUSTED_ARC_SEALERS, type PolicyDecision } from './auth-policy';
import { evaluateAuthentication, type AuthFacts, type SmtpEnvelope } from './auth-verdict';
import type { BusinessPolicy } from './business-policy';
import { isRequesterMailbox, recognizeConfirmation, recognizeForwardingBlocked } from './confirmations';
import type { DnsResolveFn } from './dns-resolver';
import { recordForwardingEvent, type ForwardingEvent } from './forwarding-health';
import { ingest, type Associator, type AuthVerdict, type Classification, type IngestOutcome } from './ingest';
import type { ParsedMessage } from './parse';
import { readOnce } from './read-once';
import type { RecipientResolution } from './recipients';

type ObjectId = mongoose.Types.ObjectId;

/**
 * One message received over SMTP, from end of DATA to "stored": evaluate
 * SPF/DKIM/DMARC/ARC once, decide the verdict per receiving mailbox (the
 * domains that count as "ours" differ per account), then store one copy per
 * mailbox through THE ingest pipeline and move the accounts' forwarding
 * state. Resolves only after every copy is acknowledged; throws AppError
 * for the SMTP edge to translate (STORE_UNAVAILABLE 451, MESSAGE_TOO_LARGE
 * 552, AUTH_REJECTED 550, AUTH_TEMPFAIL 451).
 */

export type DeliverableRecipient = Extract<RecipientResolution, { kind: 'account' | 'dropbox' }>;

export interface InboundDeps {
  store: Store;
  log: Logger;
  resolver: DnsResolveFn;
  /** authserv-id of our Authentication-Results: the gateway domain. */
  authservId: string;
  /** Gateway domain(s): addresses there are never a confirmation's requester. */
  gatewayDomains: readonly string[];
  businessPolicy: () => Promise<BusinessPolicy>;
  associate?: Associator;
  /** Limit on the stored copy (the SMTP size limit plus room for our trace headers). */
  maxBytes?: number;
}

export interface InboundMessage {
  /** A fresh stream of the message as received, each call (read once for auth, once per stored copy). */
  openRaw: () => Readable;
  /** Bytes received, when known: mail up to WHOLE_READ_MAX is then read once, whole, for all of that (read-once.ts). */
  size?: number;
  envelope: SmtpEnvelope;
  recipients: DeliverableRecipient[];
  queueId: string;
}

export interface Delivery {
  mailboxKey: string;
  accountId: ObjectId | null;
  outcome: IngestOutcome;
  id: ObjectId | null;
  status: 'inbox' | 'quarantine';
  kind: string;
  verdict: PolicyDecision['verdict'];
}

export interface InboundResult {
  facts: AuthFacts;
  deliveries: Delivery[];
  size: number;
}

export function toAuthVerdict(facts: AuthFacts, decision: PolicyDecision, ours: readonly string[]): AuthVerdict {
  const dkim = facts.dkim.find((sig) => sig.result === 'pass')?.result ?? facts.dkim[0]?.result ?? 'none';
  return {
    verdict: decision.verdict,
    reason: decision.reason,
    results: facts.authResults,
    spf: facts.spf.result,
    dkim,
    dmarc: facts.dmarc?.result ?? 'none',
    arc: facts.arc.result,
    sender: decision.sender.result,
    explanation: explainFailure(facts, decision, ours),
  };
}

/** Remove RFC 5233 sub-addressing: Gmail's `bob+caf_=…@acme.com`, Microsoft's `bob+SRS=…@acme.com`. */
function baseMailbox(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address.toLowerCase();
  return `${address.slice(0, at).split('+')[0]}@${address.slice(at + 1)}`.toLowerCase();
}

/**
 * Headers a provider adds to mail its automatic forwarding sent on: Exchange / Outlook inbox rules
 * (X-MS-Exchange-Inbox-Rules-Loop), Gmail (X-Forwarded-To / X-Forwarded-For), RFC 3834 §5
 * Auto-Submitted: auto-forwarded.
 */
function autoForwarded(parsed: ParsedMessage): boolean {
  return parsed.headers.some(({ name, value }) => {
    const lower = name.toLowerCase();
    return lower === 'x-ms-exchange-inbox-rules-loop' || lower === 'x-forwarded-to' || lower === 'x-forwarded-for' ||
      (lower === 'auto-submitted' && /^\s*auto-forwarded\b/i.test(value));
  });
}

/**
 * Was the message sent straight to the forwarding address (in To/Cc), by a person? Forwarding keeps the
 * headers the mail was written with — addressed to the mailbox, never to Postroom — except an Outlook
 * rule's "Forward to", which writes a new message but marks it. Unmarked, it is typically the employee's
 * own test message, which proves nothing about forwarding (it may not even be set up yet).
 */
function sentStraightTo(parsed: ParsedMessage, forwardingAddress: string): boolean {
  const target = forwardingAddress.toLowerCase();
  return [...parsed.to, ...parsed.cc].some((entry) => entry.address.trim().toLowerCase() === target) && !autoForwarded(parsed);
}

/** Did this mail come through the account's own mailbox (so forwarding evidently works)? */
export function arrivedThroughForwarding(facts: AuthFacts, decision: PolicyDecision, account: { email: string; domain: string }): boolean {
  if (decision.verdict !== 'pass' || decision.providerNotice) return false;
  if (facts.envelopeFrom && baseMailbox(facts.envelopeFrom) === account.email.toLowerCase()) return true;
  if (facts.spf.result === 'pass' && alignedWith(facts.spf.domain, [account.domain])) return true;
  return facts.arc.result === 'pass' && facts.arc.sealers.length > 0 && facts.arc.sealers.every((s) => alignedWith(s, TRUSTED_ARC_SEALERS));
}

/** The stored copy: our trace headers (RFC 8601 §5: added at the top by the receiving MTA), then the message. */
function withTraceHeaders(traceHeaders: string, body: Readable | Buffer): Readable | Buffer {
  if (Buffer.isBuffer(body)) return Buffer.concat([Buffer.from(traceHeaders, 'utf8'), body]);
  const out = new PassThrough();
  out.write(Buffer.from(traceHeaders, 'utf8'));
  body.on('error', (err) => out.destroy(err));
  body.pipe(out);
  return out;
}

function uniqueByMailbox(recipients: DeliverableRecipient[]): DeliverableRecipient[] {
  const seen = new Map<string, DeliverableRecipient>();
  for (const recipient of recipients) if (!seen.has(recipient.mailboxKey)) seen.set(recipient.mailboxKey, recipient);
  return [...seen.values()];
}

/**
 * Accounts this process marked verified a moment ago. The recipient lookup
 * is cached for a few seconds, so without this every message of a burst to
 * a newly verified mailbox would repeat the (no-op) state transition.
 */
const VERIFIED_MEMO_MS = 5000;
const verifiedMemos = new WeakMap<InboundDeps, Map<string, number>>();

function verifiedHere(deps: InboundDeps): Map<string, number> {
  let memo = verifiedMemos.get(deps);
  if (!memo) {
    memo = new Map();
    verifiedMemos.set(deps, memo);
  }
  return memo;
}

function recentlyVerified(deps: InboundDeps, accountId: ObjectId): boolean {
  const at = verifiedHere(deps).get(accountId.toString());
  return at !== undefined && Date.now() - at < VERIFIED_MEMO_MS;
}

async function otherMailboxes(deps: InboundDeps, recipient: Extract<DeliverableRecipient, { kind: 'account' }>): Promise<string[]> {
  try {
    const accounts = await deps.store.models.MailAccount.find({ ownerId: recipient.ownerId, _id: { $ne: recipient.accountId } }, { email: 1 }).lean();
    return accounts.map((account) => account.email);
  } catch (err) {
    // Only a better explanation is lost: the confirmation is still held back.
    deps.log.warn({ err, accountId: recipient.accountId.toString() }, 'could not read the owner\'s other mail accounts');
    return [];
  }
}

export async function receiveMessage(deps: InboundDeps, message: InboundMessage): Promise<InboundResult> {
  // Never answer 250 for a message that is stored nowhere.
  if (message.recipients.length === 0) {
    throw new AppError('NO_RECIPIENTS', 'No valid recipients', { status: 400, smtpCode: 554, enhancedCode: '5.5.1' });
  }
  const policy = await deps.businessPolicy();
  const source = await readOnce(message.openRaw, message.size);
  try {
    return await deliver(deps, message, policy, source.open);
  } finally {
    source.release();
  }
}

async function deliver(deps: InboundDeps, message: InboundMessage, policy: BusinessPolicy, raw: () => Readable | Buffer): Promise<InboundResult> {
  const log = deps.log.child({ component: 'inbound', queueId: message.queueId });
  const facts = await evaluateAuthentication(raw(), message.envelope, { resolver: deps.resolver, authservId: deps.authservId });

  const mailboxes = uniqueByMailbox(message.recipients).map((recipient) => {
    const ours = recipient.kind === 'account' ? [recipient.domain, ...policy.domains] : [...recipient.domains, ...policy.domains];
    const domains = [...new Set(ours)];
    return { recipient, domains, decision: decideAuthVerdict(facts, domains) };
  });

  const failing = mailboxes.filter((m) => m.decision.verdict === 'fail');
  const temporary = failing.find((m) => m.decision.retryable);
  if (temporary) {
    // The reply says what could not be looked up: a provider quotes it in its delay notice to the employee whose
    // forwarded mail waits. The log line also names each lookup (pino appends the cause's message to the error's).
    const lookups = facts.dnsFailures?.length ? facts.dnsFailures.join(', ') : 'none recorded';
    const what = temporary.decision.temporaryFailure.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
    throw new AppError('AUTH_TEMPFAIL', `Temporary DNS failure while authenticating the sender (${what} could not be looked up), please retry`, {
      status: 503,
      smtpCode: 451,
      enhancedCode: '4.4.3',
      tag: 'AUTH01',
      cause: new Error(`${temporary.decision.temporaryFailure} could not be looked up (failed DNS lookups: ${lookups})`),
    });
  }
  // Per-business policy "reject" (RFC 7372 §3.2: X.7.26 multiple authentication checks failed). With
  // several mailboxes of which some pass, one reply cannot reject only some: the failing copies are
  // quarantined instead, so nothing is silently dropped.
  if (policy.authPolicy === 'reject' && failing.length === mailboxes.length) {
    throw new AppError('AUTH_REJECTED', 'Message rejected: sender authentication failed (SPF/DKIM/DMARC/ARC)', {
      status: 403,
      smtpCode: 550,
      enhancedCode: '5.7.26',
    });
  }

  const deliveries: Delivery[] = [];
  let size = 0;
  for (const { recipient, domains, decision } of mailboxes) {
    const events: ForwardingEvent[] = [];
    // Only for provider notices (rare): the owner's other mailboxes, to explain a confirmation meant for one of them.
    const ownerMailboxes = recipient.kind === 'account' && decision.providerNotice ? await otherMailboxes(deps, recipient) : [];
    let classified: Classification = {};
    const classify = (parsed: ParsedMessage): Classification => {
      classified = classifyFor(parsed);
      return classified;
    };
    const classifyFor = (parsed: ParsedMessage): Classification => {
      if (recipient.kind !== 'account') return {};
      if (decision.providerNotice) {
        const confirmation = recognizeConfirmation(parsed, decision.providerNotice, deps.gatewayDomains);
        if (!confirmation) return { kind: 'provider-notice' };
        if (isRequesterMailbox(confirmation.requester, recipient.email)) {
          events.push({ type: 'confirmation', provider: confirmation.provider, code: confirmation.code, link: confirmation.link });
          return { kind: 'forwarding-confirmation', status: 'inbox', confirmation };
        }
        // Someone else asks to forward their mail here: never show the code as if it were ours.
        const sibling = ownerMailboxes.find((email) => isRequesterMailbox(confirmation.requester, email));
        // ...but say on the account page that it came, and where it waits: the requester may be the primary
        // address of an alias the employee added, who would otherwise wait for a code for ever.
        events.push({ type: 'held', provider: confirmation.provider, requester: sibling ?? confirmation.requester, forOtherAccount: Boolean(sibling), messageId: null });
        return {
          kind: 'forwarding-confirmation',
          status: 'quarantine',
          // The owner's own other mailbox is the usual case: the forwarding address of the wrong account was pasted.
          quarantineReason: sibling
            ? `forwarding confirmation for your other mail account ${sibling}, sent to the forwarding address of ${recipient.email}: ` +
              `in the provider's settings, use the forwarding address that Preferences → Email shows for ${sibling} instead`
            : `suspicious forwarding confirmation: requested by ${confirmation.requester || 'an unnamed mailbox'}, not by this account's mailbox ${recipient.email}`,
          confirmation: { ...confirmation, code: '', link: '' },
        };
      }
      // Forwarded mail that fails authentication (the mailbox domain's SPF leaves out its provider, say) would
      // leave forwarding "waiting" with no word why: the account page points to the latest one.
      if (decision.verdict === 'fail' && !recipient.forwardingVerified) {
        events.push({ type: 'quarantined', reason: decision.reason, messageId: null });
        return {};
      }
      if (decision.verdict === 'pass' && recognizeForwardingBlocked(parsed)) {
        events.push({ type: 'blocked' });
        return { kind: 'forwarding-blocked' };
      }
      if (!arrivedThroughForwarding(facts, decision, recipient) || sentStraightTo(parsed, recipient.address)) return {};
      // "Last forwarded" goes with the message counter (one grouped write); the state moves only if not verified yet.
      if (!recipient.forwardingVerified && !recentlyVerified(deps, recipient.accountId)) events.push({ type: 'forwarded' });
      return { accountSet: { 'forwarding.lastForwardedAt': new Date() } };
    };

    const result = await ingest(
      { store: deps.store, log: deps.log, associate: deps.associate },
      {
        raw: withTraceHeaders(facts.traceHeaders, raw()),
        mailboxKey: recipient.mailboxKey,
        accountId: recipient.kind === 'account' ? recipient.accountId : null,
        ownerId: recipient.ownerId,
        source: {
          kind: recipient.kind === 'account' ? 'forward' : 'mx',
          queueId: message.queueId,
          remoteIp: message.envelope.ip,
          envelopeFrom: message.envelope.sender,
          envelopeTo: [recipient.address],
        },
        auth: toAuthVerdict(facts, decision, domains),
        status: decision.verdict === 'pass' ? 'inbox' : 'quarantine',
        quarantineReason: decision.verdict === 'pass' ? '' : `authentication failed: ${decision.reason}`,
        maxBytes: deps.maxBytes,
        // The dropbox logs mail the owner sent from another client (a Bcc, a transport rule): already read.
        read: recipient.kind === 'dropbox',
        classify,
      },
    );
    size = result.size;

    if (recipient.kind === 'account' && result.outcome !== 'tombstoned') {
      for (const pending of events) {
        const event: ForwardingEvent = pending.type === 'held' || pending.type === 'quarantined' ? { ...pending, messageId: result.id } : pending;
        await recordForwardingEvent(deps.store, recipient.accountId, event)
          .then(() => {
            if (event.type === 'forwarded') verifiedHere(deps).set(recipient.accountId.toString(), Date.now());
          })
          .catch((err: Error) =>
            log.error({ err, accountId: recipient.accountId.toString(), event: event.type }, 'could not record the forwarding state; the message is stored'),
          );
      }
    }
    deliveries.push({
      mailboxKey: recipient.mailboxKey,
      accountId: recipient.kind === 'account' ? recipient.accountId : null,
      outcome: result.outcome,
      id: result.id,
      status: result.status,
      kind: classified.kind ?? 'message',
      verdict: decision.verdict,
    });
  }
  return { facts, deliveries, size };
}
