import type { Readable } from 'node:stream';
import { authenticate, type MailauthArcResult, type MailauthDkimResult, type MailauthResult } from 'mailauth';
import { aLabelDomain } from '../core/idn';
import type { DnsResolveFn } from './dns-resolver';

/**
 * SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489) and ARC (RFC 8617) for
 * one message, evaluated by mailauth and boiled down to the facts the auth
 * policy (auth-policy.ts) decides on. mailauth reads the message as a
 * stream: headers are collected, bodies only flow through the body hashers,
 * so a 50 MB message is not held in memory here.
 */

export interface SpfFact {
  /** pass, fail, softfail, neutral, none, temperror, permerror */
  result: string;
  /** The domain SPF was checked for: the envelope sender's, or the HELO name for a null sender. */
  domain: string;
  /** mailauth's words on the result, e.g. why it is a permerror ("multiple SPF records found for …"). */
  comment?: string;
}

export interface DkimFact {
  /** pass, fail, neutral (e.g. "body hash did not verify"), policy, none, temperror, permerror */
  result: string;
  /** The signing domain (d=). */
  domain: string;
  comment: string;
  /** The selector (s=): the key is the TXT record <selector>._domainkey.<domain>. */
  selector?: string;
  /**
   * Body bytes after the part the signature covers (its l= tag, RFC 6376 §3.5): text anyone can have
   * appended (§8.2) without breaking it. 0 when the whole body is signed.
   */
  unsignedBytes?: number;
  /** Why the key, rather than the message, made the signature fail; '' when the key was fine or not the reason. */
  keyProblem?: '' | 'not found' | 'revoked' | 'invalid' | 'too weak' | 'lookup failed';
}

export interface DmarcFact {
  result: string;
  /** RFC5322.From domain. */
  fromDomain: string;
  policy: string;
}

/** What the sealer of the newest ARC set says it saw when the message reached it (the ARC-Authentication-Results). */
export interface ArcInnerResults {
  spf: { result: string; domain: string } | null;
  dkim: Array<{ result: string; domain: string }>;
  dmarc: { result: string; fromDomain: string } | null;
}

export interface ArcFact {
  /** pass, fail or none (no chain). */
  result: string;
  instance: number;
  /** Signing domains of the newest ARC-Seal and ARC-Message-Signature. */
  sealers: string[];
  comment: string;
  inner: ArcInnerResults | null;
}

export interface AuthFacts {
  envelopeFrom: string;
  /** RFC5322.From addresses, lower-cased (usually exactly one). */
  headerFrom: string[];
  spf: SpfFact;
  dkim: DkimFact[];
  dmarc: DmarcFact | null;
  arc: ArcFact;
  /** Value of the Authentication-Results header we computed (RFC 8601). */
  authResults: string;
  /** Trace header fields (Received-SPF, Authentication-Results) to prepend to the stored copy, CRLF-terminated. */
  traceHeaders: string;
  /** Set when the evaluation itself failed (the message is then judged as unauthenticated). */
  error?: string;
  /**
   * Lookups that failed temporarily (timeout, SERVFAIL, refused) during the evaluation, as
   * "name rrtype CODE": what a temperror is about, and whether a retry could change the verdict
   * (an ARC seal whose key could not be fetched reads as a plain "fail" in mailauth).
   */
  dnsFailures?: string[];
}

export interface SmtpEnvelope {
  /** Connecting client address. */
  ip: string;
  /** EHLO/HELO name. */
  helo: string;
  /** MAIL FROM address; '' for the null sender. */
  sender: string;
}

export interface EvaluateOptions {
  resolver: DnsResolveFn;
  /** authserv-id of our Authentication-Results (RFC 8601 §2.5): the gateway's domain. */
  authservId: string;
  /** Longest time one message waits on DNS, all lookups together (default DNS_BUDGET_MS). */
  dnsBudgetMs?: number;
}

/**
 * How long the lookups for one message may take together. mailauth asks for each DKIM and ARC key
 * one after the other, and each lookup of an unresponsive server waits out the resolver's timeout
 * and retry (about 9 s): a message with a few signatures held its SMTP transaction for over a
 * minute, and one with dozens for many. Past the budget a lookup ends as a timeout, which is a
 * temperror like any other (a 451 when it concerns one of our domains), so the sender gets a
 * bounded answer well inside its own wait for the reply to DATA (10 minutes, RFC 5321 §4.5.3.2.6).
 */
export const DNS_BUDGET_MS = 20_000;

/** Raised for lookups past the message's DNS budget: ETIMEOUT, as mailauth expects of a timeout. */
function budgetSpent(name: string): Error {
  return Object.assign(new Error(`DNS time budget of this message spent before ${name} answered`), { code: 'ETIMEOUT' });
}

const lower = (value: unknown): string => (typeof value === 'string' ? value.trim().toLowerCase().replace(/\.$/, '') : '');

/** Domain of an address or of a DKIM `i=` value such as "@acme.com". */
export function domainOfAddress(address: string): string {
  const at = address.lastIndexOf('@');
  return lower(at >= 0 ? address.slice(at + 1) : address);
}

function arcFacts(arc: MailauthArcResult | false): ArcFact {
  if (!arc) return { result: 'none', instance: 0, sealers: [], comment: '', inner: null };
  const chain = Array.isArray(arc.chain) ? arc.chain : [];
  const newest = chain.length > 0 ? chain[chain.length - 1] : undefined;
  const sealers = [lower(newest?.['arc-seal']?.parsed?.d?.value), lower(arc.signature ? arc.signature.signingDomain : '')].filter(Boolean);
  const aar = arc.authenticationResults;
  const inner: ArcInnerResults | null = aar
    ? {
        spf: aar.spf ? { result: lower(aar.spf.result), domain: domainOfAddress(aar.spf.smtp?.mailfrom ?? aar.spf.smtp?.helo ?? '') } : null,
        dkim: (aar.dkim ?? []).map((entry) => ({ result: lower(entry.result), domain: lower(entry.header?.d) || domainOfAddress(entry.header?.i ?? '') })),
        dmarc: aar.dmarc ? { result: lower(aar.dmarc.result), fromDomain: lower(aar.dmarc.header?.from) } : null,
      }
    : null;
  return {
    result: lower(arc.status?.result) || 'none',
    instance: typeof arc.i === 'number' ? arc.i : 0,
    sealers: [...new Set(sealers)],
    comment: arc.status?.comment ?? '',
    inner,
  };
}

/**
 * What was wrong with a signature's key, from mailauth's result row: no record ("no key"), an empty
 * p= — a key its owner revoked (RFC 6376 §3.6.1) — or another unusable record ("invalid public key",
 * "unknown key version/type"), an RSA key under 1024 bits (RFC 8301 §3.2; mailauth's "policy"
 * weak-key), or a lookup that failed (temperror).
 */
function keyProblem(row: MailauthDkimResult): NonNullable<DkimFact['keyProblem']> {
  const result = lower(row.status?.result);
  const comment = row.status?.comment ?? '';
  if (result === 'temperror') return 'lookup failed';
  if (result === 'policy') return 'too weak';
  if (result !== 'neutral') return '';
  if (comment === 'no key') return 'not found';
  if (comment === 'invalid public key' && /(?:^|;)\s*p=\s*(?:;|$)/i.test(row.rr ?? '')) return 'revoked';
  if (comment === 'invalid public key' || comment === 'unknown key version' || comment === 'unknown key type') return 'invalid';
  return '';
}

/** Pull the Authentication-Results value out of mailauth's trace header block. */
function authResultsValue(headers: string): string {
  const match = /(?:^|\r\n)Authentication-Results:[ \t]*([\s\S]*?)\r\n(?![ \t])/i.exec(headers);
  return match ? match[1] : '';
}

/** DMARC tags of a record (RFC 7489 §6.3), keys lower-cased. */
function dmarcTags(record: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const part of record.split(';')) {
    const at = part.indexOf('=');
    if (at > 0) tags.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  return tags;
}

/**
 * Why a DMARC record is not a policy, or '' when it is. mailauth applies any record that starts with
 * v=DMARC1, so one whose p= is missing or misspelt ("p=rejet") gave dmarc=fail for unaligned mail and the
 * sender read as forged. RFC 7489 §6.6.3: without a valid p= the record counts only when rua= names a
 * valid address (then as p=none); otherwise it is no policy — a permerror (RFC 7489 §11.2: "a
 * syntactically incorrect DMARC record").
 */
export function dmarcRecordProblem(record: string): string {
  const tags = dmarcTags(record);
  const policy = tags.get('p');
  if (policy !== undefined && ['none', 'quarantine', 'reject'].includes(policy.toLowerCase())) return '';
  const rua = (tags.get('rua') ?? '').split(',').some((uri) => /^mailto:[^@\s]+@[^@\s]+$/i.test(uri.trim().replace(/!\d+[kmgt]?$/i, '')));
  if (rua) return '';
  return policy === undefined ? 'no p= tag' : `p=${policy} is not none, quarantine or reject`;
}

/**
 * The strict alignment modes a DMARC pass did not meet, e.g. "adkim=s, aspf=s"; '' when it stands.
 * mailauth 4.9.5 passes its options object where its alignment check expects a boolean, so adkim=s and
 * aspf=s are read as relaxed: a signature of news.acme.com "aligned" with From acme.com although the
 * domain owner asked for the exact domain (RFC 7489 §3.1.1, §3.1.2).
 */
function strictAlignmentMiss(result: MailauthResult, record: string): string {
  const dmarc = result.dmarc;
  if (!dmarc) return '';
  const tags = dmarcTags(record);
  const adkim = (tags.get('adkim') ?? '').toLowerCase() === 's';
  const aspf = (tags.get('aspf') ?? '').toLowerCase() === 's';
  if (!adkim && !aspf) return '';
  const from = lower(dmarc.status?.header?.d);
  if (!from) return '';
  const dkimAligned = adkim
    ? (result.dkim.results ?? []).some((row) => lower(row.status?.result) === 'pass' && lower(row.signingDomain) === from)
    : Boolean(dmarc.alignment?.dkim?.result);
  const spfAligned = aspf
    ? Boolean(result.spf && lower(result.spf.status?.result) === 'pass' && lower(result.spf.domain) === from)
    : Boolean(dmarc.alignment?.spf?.result);
  if (dkimAligned || spfAligned) return '';
  return [adkim ? 'adkim=s' : '', aspf ? 'aspf=s' : ''].filter(Boolean).join(', ');
}

/**
 * mailauth's DMARC result where RFC 7489 says otherwise — a record that is no policy (permerror), a
 * pass that strict alignment does not allow (fail) — restated in the Authentication-Results it wrote.
 */
function correctedDmarc(result: MailauthResult): { headers: string; result: string } {
  const dmarc = result.dmarc;
  const found = dmarc ? lower(dmarc.status?.result) : '';
  const unchanged = { headers: result.headers, result: '' };
  if (!dmarc || !dmarc.rr || !['pass', 'fail'].includes(found)) return unchanged;
  const invalid = dmarcRecordProblem(dmarc.rr);
  const strictMiss = !invalid && found === 'pass' ? strictAlignmentMiss(result, dmarc.rr) : '';
  if (!invalid && !strictMiss) return unchanged;
  const corrected = invalid ? 'permerror' : 'fail';
  const comment = (invalid ? `invalid DMARC record: ${invalid}` : `strict alignment: ${strictMiss}`).replace(/[()\\\r\n]/g, ' ');
  const from = dmarc.status?.header?.from ? ` header.from=${dmarc.status.header.from}` : '';
  const info = `dmarc=${corrected} (${comment})${from}`;
  return { headers: dmarc.info && result.headers.includes(dmarc.info) ? result.headers.replace(dmarc.info, () => info) : result.headers, result: corrected };
}

export function factsFromMailauth(result: MailauthResult, envelope: SmtpEnvelope): AuthFacts {
  const spf = result.spf
    ? { result: lower(result.spf.status?.result) || 'none', domain: lower(result.spf.domain), comment: result.spf.status?.comment ?? '' }
    : { result: 'none', domain: '' };
  const dkim = (result.dkim.results ?? []).map((row) => ({
    result: lower(row.status?.result) || 'none',
    domain: lower(row.signingDomain),
    comment: row.status?.comment ?? '',
    selector: lower(row.selector),
    unsignedBytes: typeof row.status?.underSized === 'number' && row.status.underSized > 0 ? row.status.underSized : 0,
    keyProblem: keyProblem(row),
  }));
  const corrected = correctedDmarc(result);
  const dmarc = result.dmarc
    ? {
        result: corrected.result || lower(result.dmarc.status?.result) || 'none',
        fromDomain: lower(result.dmarc.status?.header?.from ?? result.dmarc.domain),
        policy: corrected.result === 'permerror' ? '' : lower(result.dmarc.policy ?? result.dmarc.p),
      }
    : null;
  return {
    envelopeFrom: envelope.sender.toLowerCase(),
    headerFrom: (result.dkim.headerFrom ?? []).map((address) => address.toLowerCase()),
    spf,
    dkim,
    dmarc,
    arc: arcFacts(result.arc),
    authResults: authResultsValue(corrected.headers),
    traceHeaders: corrected.headers,
  };
}

/** c-ares codes that state what the DNS holds (no such name / no such record), rather than that it could not be asked. */
const DEFINITIVE_DNS_ERRORS = new Set(['ENOTFOUND', 'ENODATA']);

/**
 * The resolver as mailauth is handed it. Any lookup that fails for another reason than "no such
 * name/record" (SERVFAIL, timeout, refused, a broken answer) is a temporary error, RFC 7208 §2.6.6.
 * mailauth's SPF evaluation only knows ETIMEOUT and EREFUSED as such: any other failure inside an
 * `include:` is skipped as if the include did not match, and inside a `redirect=` ends in "neutral",
 * so a provider's SERVFAIL turned SPF into a permanent-looking "fail" (RFC 7208 §5.2 and §6.1 say
 * temperror). mailauth keeps an error's `spfResult` as the result, so it is set here, once, for every
 * kind of temporary failure.
 */
function mailauthResolver(resolver: DnsResolveFn, failures: string[], budgetMs: number): DnsResolveFn {
  // From the first lookup: mailauth reads (and hashes) the whole message before it asks for a key, which
  // for a large message is time the DNS did not take.
  let deadline = 0;
  return async (name, rrtype) => {
    try {
      deadline ||= Date.now() + budgetMs;
      const left = deadline - Date.now();
      if (left <= 0) throw budgetSpent(name);
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(budgetSpent(name)), left);
      });
      try {
        return await Promise.race([resolver(name, rrtype), expired]);
      } finally {
        clearTimeout(timer);
      }
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      if (typeof code === 'string' && DEFINITIVE_DNS_ERRORS.has(code)) throw err;
      const codeName = typeof code === 'string' ? code : 'error';
      const entry = `${name.toLowerCase()} ${rrtype} ${codeName}`;
      if (!failures.includes(entry)) failures.push(entry);
      // A new error rather than the resolver's: one failed lookup on the wire answers every message waiting for it.
      throw Object.assign(new Error(`DNS lookup of ${name} (${rrtype}) failed: ${codeName}`, { cause: err }), {
        code: codeName,
        spfResult: { error: 'temperror', text: `DNS lookup of ${name} (${rrtype}) failed: ${codeName}` },
      });
    }
  };
}

/**
 * The A-label form (RFC 5890) of an address's or a HELO name's domain. SPF looks an internationalised
 * domain up under its A-labels (RFC 7208 §4.3, RFC 8616 §3), but mailauth only checks that the name is
 * ASCII: an SMTPUTF8 envelope such as `juergen@bücher.test` got SPF "none", so mail the mailbox's own
 * provider forwarded failed. The local part is left as it is (a UTF-8 local part is allowed, RFC 6531).
 */
function withAsciiDomain(value: string): string {
  const at = value.lastIndexOf('@');
  // Not a valid IDN: left as it is, for mailauth to report.
  return at >= 0 ? `${value.slice(0, at + 1)}${aLabelDomain(value.slice(at + 1))}` : aLabelDomain(value);
}

/**
 * Evaluate one message. Never throws for a message it cannot make sense of:
 * such a message gets `error` set and every mechanism at `none`, which the
 * policy judges as failing (quarantine/reject), never as passing.
 */
export async function evaluateAuthentication(raw: Readable | Buffer, envelope: SmtpEnvelope, options: EvaluateOptions): Promise<AuthFacts> {
  const dnsFailures: string[] = [];
  try {
    const result = await authenticate(raw, {
      ip: envelope.ip,
      helo: withAsciiDomain(envelope.helo) || envelope.ip,
      sender: withAsciiDomain(envelope.sender),
      mta: options.authservId,
      resolver: mailauthResolver(options.resolver, dnsFailures, options.dnsBudgetMs ?? DNS_BUDGET_MS),
      disableBimi: true,
    });
    return { ...factsFromMailauth(result, envelope), dnsFailures };
  } catch (err) {
    const reason = (err as Error).message || String(err);
    // RFC 8601 §2.2 "none": nothing could be evaluated; the comment says why.
    const value = `${options.authservId}; none (evaluation failed: ${reason.replace(/[()\r\n]/g, ' ').slice(0, 200)})`;
    return {
      envelopeFrom: envelope.sender.toLowerCase(),
      headerFrom: [],
      spf: { result: 'none', domain: '' },
      dkim: [],
      dmarc: null,
      arc: { result: 'none', instance: 0, sealers: [], comment: '', inner: null },
      authResults: value,
      traceHeaders: `Authentication-Results: ${value}\r\n`,
      error: reason,
      dnsFailures,
    };
  }
}
