import { alignedWith, TRUSTED_ARC_SEALERS, type PolicyDecision } from './auth-policy';
import { domainOfAddress, type AuthFacts } from './auth-verdict';

/**
 * Why a message failed the authentication policy, in words for the employee who decides whether to
 * release it. The policy's own reason (auth-policy.ts) is exact but reads "no SPF pass, DKIM signature or
 * trusted forwarder's ARC seal … (spf=softfail; dkim=none; dmarc=fail; arc=none)": true, and of no help
 * to someone who does not know what SPF is. This says what most likely happened and what to do; the
 * exact reason stays beside it for whoever does.
 */
export function explainFailure(facts: AuthFacts, decision: PolicyDecision, ours: readonly string[]): string {
  if (decision.verdict === 'pass') return '';
  if (facts.error) return 'Postroom could not check where this message came from (it is malformed), so it is held until you look at it.';

  const fromDomains = [...new Set(facts.headerFrom.map(domainOfAddress).filter(Boolean))];
  const from = fromDomains.length === 1 ? fromDomains[0] : '';
  const sender = decision.sender.result;

  // Our own SPF record is unusable (RFC 7208 §2.6.7 permerror): every mail forwarded with an envelope of
  // that domain is held, whoever sent it, until the record is fixed — the cause to name, not the path.
  const brokenSpf = facts.spf.result === 'permerror' && alignedWith(facts.spf.domain, ours) ? facts.spf : null;
  if (brokenSpf) {
    return `The SPF record of ${brokenSpf.domain} is broken (${spfProblem(brokenSpf.comment ?? '')}), so Postroom cannot tell whether the server ` +
      `that passed it on may send mail for ${brokenSpf.domain}, and holds mail forwarded from its mailboxes. Ask whoever manages the DNS of ` +
      `${brokenSpf.domain} to fix the record (one SPF record, at most 10 DNS lookups), then release what is genuine.`;
  }

  // A signature of ours whose key is missing, revoked or unusable: the key, not the message, is the problem.
  const badOwnKey = facts.dkim.find((sig) => alignedWith(sig.domain, ours) && sig.result !== 'pass' && sig.keyProblem);
  if (badOwnKey) {
    const record = badOwnKey.selector ? `${badOwnKey.selector}._domainkey.${badOwnKey.domain}` : `the key of ${badOwnKey.domain}`;
    return `It carries the signature of your domain ${badOwnKey.domain}, but ${badOwnKey.domain} publishes no usable key for it (${record}: ${badOwnKey.keyProblem}), ` +
      'so the signature proves nothing. If that system signs your mail, whoever manages your DNS should publish its key; ' +
      'a revoked key may have been withdrawn because it leaked. Release it only if you expected it.';
  }

  // A genuine signature of ours that covers only the start of the body (l=): what follows is anyone's.
  const partlySigned = facts.dkim.find((sig) => alignedWith(sig.domain, ours) && sig.result === 'pass' && sig.unsignedBytes);
  if (partlySigned) {
    return `It carries a genuine signature of your domain ${partlySigned.domain}, but the signature covers only the start of the message: ` +
      `${partlySigned.unsignedBytes} bytes at its end were added afterwards, by a mailing list footer or by anyone who wanted to slip text under ` +
      'your signature (new payment details, a link). Read it to the end; release it only if you expected all of it.';
  }

  // A signature of ours that no longer verifies: altered on the way (a list footer), whoever wrote it.
  const brokenOwnSignature = facts.dkim.find((sig) => alignedWith(sig.domain, ours) && sig.result !== 'pass');
  if (brokenOwnSignature) {
    return `It carries the signature of your domain ${brokenOwnSignature.domain}, but the message was changed after it was signed ` +
      '(a mailing list footer or a forwarding rule can do that), so it cannot be told apart from a forgery. Release it only if you expected it.';
  }

  // Our own name, sent from outside: the classic CEO fraud.
  if (from && alignedWith(from, ours) && sender !== 'pass') {
    return `It claims to come from your own domain ${from}, but it was not sent through your mail provider: it is most likely forged. ` +
      'Do not release it, reply to it or follow its links unless you have checked with the sender another way.';
  }

  const ownSpf = facts.spf.domain && alignedWith(facts.spf.domain, ours) ? facts.spf : null;
  if (ownSpf && (ownSpf.result === 'fail' || ownSpf.result === 'softfail')) {
    return `It arrived from a server that the domain ${ownSpf.domain} does not list as allowed to send its mail (SPF ${ownSpf.result}). ` +
      `If it is mail your provider forwarded, the SPF record of ${ownSpf.domain} probably leaves out your mail provider: ` +
      'ask whoever manages that domain to add it, then release what is genuine.';
  }
  // Forwarded with our domain in the envelope, but that domain says nothing for or against the provider's server.
  if (ownSpf && ownSpf.result === 'none') {
    return `The domain ${ownSpf.domain} publishes no SPF record, so nothing shows that the server that passed it on may send mail for ${ownSpf.domain}. ` +
      `If it is mail your provider forwarded, ask whoever manages the DNS of ${ownSpf.domain} to publish an SPF record that lists your mail provider, ` +
      'then release what is genuine.';
  }
  if (ownSpf && ownSpf.result === 'neutral') {
    return `The SPF record of ${ownSpf.domain} neither allows nor refuses the server that passed it on (SPF neutral), so nothing shows it may send mail ` +
      `for ${ownSpf.domain}. If it is mail your provider forwarded, ask whoever manages the DNS of ${ownSpf.domain} to list your mail provider in its ` +
      'SPF record, then release what is genuine.';
  }

  if (facts.arc.result === 'fail') {
    return 'It was forwarded, but the forwarder\'s seal (ARC) is broken, so what the forwarder saw cannot be trusted.';
  }
  const untrusted = facts.arc.result === 'pass' ? facts.arc.sealers.filter((sealer) => !alignedWith(sealer, TRUSTED_ARC_SEALERS)) : [];
  if (untrusted.length > 0) {
    return `It was forwarded by ${untrusted.join(', ')}, which Postroom does not trust to vouch for forwarded mail.`;
  }

  const senderWords = !from
    ? 'It names no single sender that could be checked.'
    : sender === 'pass'
      ? `The sender's domain ${from} did authenticate it, so it is probably really from ${from}; anyone can send to a forwarding address, so release it only if you expected it.`
      : sender === 'fail'
        ? `The sender's domain ${from} did not authenticate it either: the From address is probably forged.`
        : `The domain ${from} publishes no way to check its senders, so who sent it cannot be confirmed.`;
  if (facts.arc.result === 'pass') {
    return `Your mail provider forwarded it, but the original sender could not be authenticated when it arrived there. ${senderWords}`;
  }
  return `It was not forwarded by your mailbox provider: it was sent straight to the Postroom forwarding address. ${senderWords}`;
}

/** mailauth's reason for an SPF permerror, in words ("Too many DNS requests" is RFC 7208 §4.6.4's limit of 10). */
function spfProblem(comment: string): string {
  const detail = /permanent error in processing during lookup of [^:]*: (.+)$/.exec(comment)?.[1]?.trim() ?? '';
  if (/^too many dns requests$/i.test(detail)) return 'it needs more than 10 DNS lookups';
  if (/^too many void dns results$/i.test(detail)) return 'it names more than 2 hosts that do not exist';
  return detail || 'permanent error';
}
