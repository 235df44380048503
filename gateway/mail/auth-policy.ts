import type { AuthFacts, DkimFact } from './auth-verdict';
import { domainOfAddress } from './auth-verdict';

/**
 * The authentication policy (DESIGN.md "Authentication policy"), as a pure
 * function of the facts mailauth established and the domains that count as
 * "ours" for the receiving mailbox.
 *
 * Mail reaches a forwarding address from the employee's own mailbox
 * provider, so what must be proven is that the *forwarder* is entitled to
 * speak for the mailbox's domain — not that the original author is. The
 * verdict is `pass` when
 *   1. SPF passes for an envelope domain that is one of ours (Gmail keeps
 *      the mailbox's domain in its `user+caf_=…@domain` envelope, Microsoft
 *      365 its SRS address in the tenant's domain), or
 *   2. a DKIM signature of one of our domains verifies, or
 *   3. a trusted forwarder's ARC chain validates (RFC 8617 §5.2) and the
 *      results it recorded on arrival show an authenticated original, or
 *   4. it is a provider notice (forwarding confirmation, bounce) carrying a
 *      valid DKIM signature of that provider.
 * Everything else is `fail`. DKIM `neutral` (mailauth's "body hash did not
 * verify", RFC 6376 §6.3 step 4.4) is not a pass.
 */

export type Verdict = 'pass' | 'fail';

/**
 * Is the author's domain (RFC5322.From) authenticated? A different question from the verdict, which
 * asks whether the mail came through the mailbox's provider: a forged From that the employee's own
 * provider forwarded passes the verdict, and the console must not let that look like a genuine sender.
 */
export interface SenderAuthentication {
  /** pass: DMARC passed (here, or at a trusted forwarder); fail: it failed; none: nothing to check it by. */
  result: 'pass' | 'fail' | 'none';
  /** One sentence for people. */
  note: string;
}

export interface PolicyDecision {
  verdict: Verdict;
  reason: string;
  sender: SenderAuthentication;
  /** Provider whose notice this is ('google', 'microsoft', 'yahoo'), when rule 4 applied. */
  providerNotice: string | null;
  /**
   * A failing verdict that a DNS temporary error on a lookup that could
   * have proven the path may have caused: answer 4xx so the sender retries
   * instead of quarantining legitimate mail during a DNS outage (RFC 7208 §2.6.6).
   */
  retryable: boolean;
  /** What failed temporarily when `retryable` ("SPF of acme.com", "the ARC seal key of google.com"); '' otherwise. */
  temporaryFailure: string;
}

/**
 * ARC sealers whose chains Postroom trusts (RFC 8617 §7.2 leaves the list
 * to the receiver): the mailbox providers employees forward from. Listed by
 * the d= they seal with.
 */
export const TRUSTED_ARC_SEALERS: readonly string[] = ['google.com', 'microsoft.com', 'yahoo.com', 'messagingengine.com'];

export interface NoticeSender {
  provider: string;
  /** Does this RFC5322.From address belong to the provider's notice senders? */
  matches(address: string): boolean;
  /** DKIM domains (d=) that authenticate the provider's notices. */
  dkimDomains: readonly string[];
}

/**
 * Senders of provider notices. Deliberately narrow: a consumer mailbox at
 * the provider (anyone@gmail.com) must not pass as a notice.
 */
export const NOTICE_SENDERS: readonly NoticeSender[] = [
  { provider: 'google', matches: (a) => a === 'forwarding-noreply@google.com', dkimDomains: ['google.com'] },
  {
    provider: 'microsoft',
    matches: (a) => /^(postmaster|microsoftexchange[0-9a-f]*)@(microsoft\.com|outlook\.com|([a-z0-9-]+\.)*prod\.outlook\.com)$/.test(a),
    dkimDomains: ['microsoft.com', 'outlook.com'],
  },
  { provider: 'yahoo', matches: (a) => /@([a-z0-9-]+\.)*yahoo-inc\.com$/.test(a), dkimDomains: ['yahoo-inc.com', 'yahoo.com'] },
];

/**
 * Does this signature vouch for the message as it arrived? A pass whose l= tag leaves part of the body
 * unsigned does not: anyone can append text to a signed message without breaking it (RFC 6376 §8.2),
 * such as new payment details under a genuine signature of the business.
 */
export function signatureProves(sig: DkimFact): boolean {
  return sig.result === 'pass' && !sig.unsignedBytes;
}

/**
 * `domain` is one of `ours` or a subdomain of one (DMARC relaxed alignment,
 * RFC 7489 §3.1, in the direction an outsider cannot exploit: nobody but
 * the owner of acme.com publishes keys or SPF under mail.acme.com).
 */
export function alignedWith(domain: string, ours: readonly string[]): boolean {
  const d = domain.toLowerCase().replace(/\.$/, '');
  if (!d) return false;
  return ours.some((own) => {
    const o = own.toLowerCase().replace(/\.$/, '');
    return Boolean(o) && (d === o || d.endsWith(`.${o}`));
  });
}

/**
 * The provider whose notice this is, when its From is a notice sender and a provider DKIM signature
 * verifies — here, or, for a notice relayed by a trusted forwarder whose changes (Microsoft 365's Safe
 * Links, a footer) broke the signature, when that forwarder's ARC set recorded it verifying on arrival
 * (RFC 8617 §7.2). `arcSealer` names the forwarder then.
 */
export function providerNotice(facts: AuthFacts): { provider: string; dkimDomain: string; arcSealer?: string } | null {
  if (facts.headerFrom.length !== 1) return null;
  const from = facts.headerFrom[0];
  for (const sender of NOTICE_SENDERS) {
    if (!sender.matches(from)) continue;
    const signature = facts.dkim.find((sig) => signatureProves(sig) && alignedWith(sig.domain, sender.dkimDomains));
    if (signature) return { provider: sender.provider, dkimDomain: signature.domain };
    const recorded = trustedArc(facts) ? facts.arc.inner?.dkim.find((sig) => sig.result === 'pass' && alignedWith(sig.domain, sender.dkimDomains)) : undefined;
    if (recorded) return { provider: sender.provider, dkimDomain: recorded.domain, arcSealer: facts.arc.sealers[0] };
  }
  return null;
}

/** Did the trusted sealer see an authenticated original (DMARC pass, or SPF/DKIM pass aligned with the From domain)? */
function arcInnerAuthenticated(facts: AuthFacts): string | null {
  const inner = facts.arc.inner;
  if (!inner) return null;
  if (inner.dmarc?.result === 'pass') return `dmarc=pass header.from=${inner.dmarc.fromDomain}`;
  const fromDomains = facts.headerFrom.map(domainOfAddress).filter(Boolean);
  if (fromDomains.length !== 1) return null;
  const aligned = inner.dkim.find((sig) => sig.result === 'pass' && alignedWith(sig.domain, fromDomains));
  if (aligned) return `dkim=pass header.d=${aligned.domain}`;
  if (inner.spf?.result === 'pass' && alignedWith(inner.spf.domain, fromDomains)) return `spf=pass smtp.mailfrom=${inner.spf.domain}`;
  return null;
}

function trustedArc(facts: AuthFacts): boolean {
  return facts.arc.result === 'pass' && facts.arc.sealers.length > 0 && facts.arc.sealers.every((sealer) => alignedWith(sealer, TRUSTED_ARC_SEALERS));
}

/** DMARC (RFC 7489) of the From domain, here or as a trusted forwarder recorded it on arrival (RFC 8617). */
export function senderAuthentication(facts: AuthFacts): SenderAuthentication {
  const fromDomains = [...new Set(facts.headerFrom.map(domainOfAddress).filter(Boolean))];
  if (fromDomains.length !== 1) return { result: 'none', note: 'the message has no single From address whose domain could be checked' };
  const from = fromDomains[0];
  if (facts.dmarc?.result === 'pass') return { result: 'pass', note: `the sender's domain ${from} is authenticated (DMARC pass)` };
  if (trustedArc(facts)) {
    const sealer = facts.arc.sealers[0];
    const inner = arcInnerAuthenticated(facts);
    if (inner) return { result: 'pass', note: `the sender's domain ${from} was authenticated when ${sealer} received it (${inner})` };
    if (facts.arc.inner?.dmarc?.result === 'fail') {
      return { result: 'fail', note: `the sender's domain ${from} failed DMARC when ${sealer} received it: the From address may be forged` };
    }
  }
  if (facts.dmarc?.result === 'fail') {
    return { result: 'fail', note: `the sender's domain ${from} is not authenticated (DMARC fail): the From address may be forged, or a forwarder changed the message` };
  }
  const dmarc = facts.dmarc?.result ?? 'none';
  if (dmarc !== 'none') return { result: 'none', note: `the sender's domain ${from} could not be checked (DMARC ${dmarc})` };
  return { result: 'none', note: `the sender's domain ${from} publishes no DMARC policy to check its From address by` };
}

function summary(facts: AuthFacts): string {
  const dkim = facts.dkim.length
    ? facts.dkim
        .map((sig) => {
          const unsigned = sig.unsignedBytes ? ` (${sig.unsignedBytes} bytes of the body after the signed part (l=))` : '';
          return `${sig.result}${sig.domain ? ` d=${sig.domain}` : ''}${sig.comment ? ` (${sig.comment})` : ''}${unsigned}`;
        })
        .join(', ')
    : 'none';
  const parts = [
    `spf=${facts.spf.result}${facts.spf.domain ? ` (${facts.spf.domain})` : ''}`,
    `dkim=${dkim}`,
    `dmarc=${facts.dmarc?.result ?? 'none'}`,
    `arc=${facts.arc.result}${facts.arc.sealers.length ? ` (${facts.arc.sealers.join(', ')})` : ''}`,
  ];
  return parts.join('; ');
}

const TEMPORARY = new Set(['temperror']);

/** Signing domain of a DKIM/ARC key name as looked up ("s1._domainkey.google.com TXT ESERVFAIL" → google.com). */
function keyDomain(dnsFailure: string): string {
  const name = dnsFailure.split(' ')[0] ?? '';
  const at = name.indexOf('._domainkey.');
  return at >= 0 ? name.slice(at + '._domainkey.'.length) : '';
}

/**
 * Would a lookup that failed temporarily have been able to prove the path? Then the failing verdict
 * is not final: the sender is asked to retry (RFC 7208 §2.6.6, RFC 6376 §6.1.2 TEMPFAIL) instead of
 * legitimate mail being quarantined — or refused — for a DNS outage. Those lookups are the SPF of one
 * of our envelope domains, the key of a DKIM signature of ours, the key of a provider's signature on
 * its notice (a forwarding confirmation held in quarantine never shows its code), and the key of a
 * trusted forwarder's ARC seal (mailauth reports a seal it could not fetch the key of as "fail").
 * Returns what failed, or '' when nothing that could pass failed temporarily.
 */
function temporaryFailure(facts: AuthFacts, ours: readonly string[]): string {
  if (TEMPORARY.has(facts.spf.result) && alignedWith(facts.spf.domain, ours)) return `SPF of ${facts.spf.domain}`;
  const own = facts.dkim.find((sig) => TEMPORARY.has(sig.result) && alignedWith(sig.domain, ours));
  if (own) return `the DKIM key of ${own.domain}`;
  const noticeSender = facts.headerFrom.length === 1 ? NOTICE_SENDERS.find((sender) => sender.matches(facts.headerFrom[0])) : undefined;
  const notice = noticeSender ? facts.dkim.find((sig) => TEMPORARY.has(sig.result) && alignedWith(sig.domain, noticeSender.dkimDomains)) : undefined;
  if (notice) return `the DKIM key of ${notice.domain}`;
  if (facts.arc.result === 'fail' && facts.arc.sealers.length > 0 && facts.arc.sealers.every((sealer) => alignedWith(sealer, TRUSTED_ARC_SEALERS))) {
    const sealKey = (facts.dnsFailures ?? []).map(keyDomain).find((domain) => domain && alignedWith(domain, TRUSTED_ARC_SEALERS));
    if (sealKey) return `the ARC seal key of ${sealKey}`;
  }
  return '';
}

/**
 * Decide pass/fail for mail to a mailbox whose own domains (its domain plus
 * the business domains) are `ours`.
 */
export function decideAuthVerdict(facts: AuthFacts, ours: readonly string[]): PolicyDecision {
  const sender = senderAuthentication(facts);
  const decision = (verdict: Verdict, reason: string, notice: string | null = null, temporary = ''): PolicyDecision => ({
    verdict,
    reason,
    sender,
    providerNotice: notice,
    retryable: Boolean(temporary),
    temporaryFailure: temporary,
  });
  // Each reason says what proved (or failed to prove) the path, then what is known of the author.
  const passed = (how: string) => decision('pass', `came through the mailbox's provider or the business: ${how}; ${sender.note}`);

  const notice = providerNotice(facts);
  if (notice) {
    const how = notice.arcSealer
      ? `DKIM signature of ${notice.dkimDomain} verified on arrival at trusted forwarder ${notice.arcSealer} (ARC i=${facts.arc.instance})`
      : `DKIM signature of ${notice.dkimDomain} verified`;
    return decision('pass', `provider notice (${notice.provider}): ${how}`, notice.provider);
  }

  if (facts.spf.result === 'pass' && alignedWith(facts.spf.domain, ours)) {
    return passed(`SPF pass for envelope domain ${facts.spf.domain}`);
  }

  const ownSignature = facts.dkim.find((sig) => signatureProves(sig) && alignedWith(sig.domain, ours));
  if (ownSignature) return passed(`DKIM signature of ${ownSignature.domain} verified`);

  if (trustedArc(facts) && arcInnerAuthenticated(facts)) {
    return passed(`ARC chain of trusted forwarder ${facts.arc.sealers[0]} validated (i=${facts.arc.instance})`);
  }

  const temporary = temporaryFailure(facts, ours);

  const why = facts.error ? `authentication could not be evaluated (${facts.error}); ` : '';
  // A sender who authenticates their own domain proves only who wrote the mail: anyone who learns a
  // forwarding address can send that from their own server, so it is said but does not pass.
  return decision(
    'fail',
    `${why}nothing shows it came through the mailbox's provider or the business: no SPF pass, DKIM signature or trusted forwarder's ARC seal ` +
      `for ${ours.length ? ours.join(', ') : '(no domains)'} (${summary(facts)}); ${sender.note}`,
    null,
    temporary,
  );
}
