import { domainAndParents, domainOf, inDomains, isPublicSuffix, normalizeAddress, normalizeDomainList } from './address';

/**
 * The association rules as one pure function: which CRM objects a message
 * concerns and why. Everything impure (loading objects, the owner's
 * addresses, settings; writing links) lives in link.ts, so the rules are
 * tested table-driven without a store.
 */

/** Header fields whose addresses are matched, in the order reasons are reported (Bcc is private to the sender). */
export const ADDRESS_ROLES = ['from', 'sender', 'reply-to', 'to', 'cc'] as const;
export type AddressRole = (typeof ADDRESS_ROLES)[number];

export const LINK_RULES = ['address', 'domain', 'manual'] as const;
export type LinkRule = (typeof LINK_RULES)[number];

export interface Participant {
  /** As it appears in the message (any case, Unicode or A-label domain, with sub-address). */
  address: string;
  role: AddressRole;
}

export interface MatchableObject {
  id: string;
  type: 'customer' | 'contact' | 'lead';
  /** Normalised addresses. */
  emails: readonly string[];
  /** A-label, lower-case domains (customers). */
  domains: readonly string[];
  rules?: { linkBulk?: boolean | null; neverLink?: readonly string[] | null } | null;
}

export interface AssociationContext {
  /** The account owner's own addresses: they never create links. */
  ownAddresses: readonly string[];
  /** The business's own domains: never matched by domain; mail among them only is internal. */
  businessDomains: readonly string[];
  isFreemail: (asciiDomain: string) => boolean;
  /** Strip `+detail` (RFC 5233) before matching. */
  stripSubaddress: boolean;
  /** The message is bulk/automated (see bulk.ts). */
  bulk: boolean;
}

/** Why a link exists: the address in the message, the rule, the header, and the object's email/domain it matched. */
export interface LinkReason {
  address: string;
  rule: LinkRule;
  role: AddressRole;
  matched: string;
}

export interface PlannedLink {
  objectId: string;
  reasons: LinkReason[];
}

export type SkipWhy = 'bulk' | 'never-link';

export interface AssociationPlan {
  /** Every participant is in the business domains: stored, not linked. */
  internal: boolean;
  bulk: boolean;
  links: PlannedLink[];
  /** Objects that matched but were not linked, and why (shown by the console's "why not linked"). */
  skipped: Array<{ objectId: string; why: SkipWhy }>;
}

/** A participant prepared for matching. */
interface Candidate {
  role: AddressRole;
  /** Normalised without sub-address stripping: what the reason shows. */
  exact: string;
  /** Normalised with stripping (equal to exact when stripping is off). */
  stripped: string;
  domain: string;
  own: boolean;
  /** The domain may link customers (not free-mail, not a business domain). */
  domainEligible: boolean;
}

export interface MatchKeys {
  internal: boolean;
  /** Normalised addresses to look up in CrmObject.emails. */
  addresses: string[];
  /** Domains (and parent domains) to look up in CrmObject.domains. */
  domains: string[];
}

/** The domain and its parents a customer may be linked by: never a free-mail domain or a public suffix (co.uk). */
function linkableDomains(domain: string, context: AssociationContext): string[] {
  return domainAndParents(domain).filter((candidate) => !context.isFreemail(candidate) && !isPublicSuffix(candidate));
}

function prepare(participants: readonly Participant[], context: AssociationContext): { candidates: Candidate[]; internal: boolean } {
  const business = new Set(normalizeDomainList(context.businessDomains));
  const own = new Set<string>();
  for (const address of context.ownAddresses) {
    for (const strip of [false, true]) {
      const normalized = normalizeAddress(address, { stripSubaddress: strip });
      if (normalized) own.add(normalized);
    }
  }
  const candidates: Candidate[] = [];
  for (const participant of participants) {
    const exact = normalizeAddress(participant.address);
    if (!exact) continue;
    const stripped = context.stripSubaddress ? normalizeAddress(participant.address, { stripSubaddress: true })! : exact;
    const domain = domainOf(exact);
    const isBusiness = inDomains(domain, business);
    candidates.push({
      role: participant.role,
      exact,
      stripped,
      domain,
      own: own.has(exact) || own.has(stripped),
      domainEligible: !isBusiness && !context.isFreemail(domain),
    });
  }
  const internal = business.size > 0 && candidates.length > 0 && candidates.every((c) => inDomains(c.domain, business));
  return { candidates, internal };
}

/** What to look up in the store for this message (empty for internal mail). */
export function matchKeys(participants: readonly Participant[], context: AssociationContext): MatchKeys {
  const { candidates, internal } = prepare(participants, context);
  if (internal) return { internal, addresses: [], domains: [] };
  const addresses = new Set<string>();
  const domains = new Set<string>();
  for (const candidate of candidates) {
    if (candidate.own) continue;
    addresses.add(candidate.exact);
    addresses.add(candidate.stripped);
    if (candidate.domainEligible) {
      for (const domain of linkableDomains(candidate.domain, context)) domains.add(domain);
    }
  }
  return { internal, addresses: [...addresses], domains: [...domains] };
}

function neverLinked(candidate: Candidate, neverLink: ReadonlySet<string>): boolean {
  if (neverLink.size === 0) return false;
  if (neverLink.has(candidate.exact) || neverLink.has(candidate.stripped)) return true;
  // An entry without '@' is a domain rule: never link anyone at that domain (or below it).
  return domainAndParents(candidate.domain).some((domain) => neverLink.has(domain));
}

/**
 * Decide the links for one message:
 * - internal-only mail (every participant in a business domain) links nothing;
 * - the owner's own addresses never link;
 * - an exact (normalised) address links any object holding it — contacts and
 *   leads, and customers that list the address;
 * - a domain links customers holding it (or a parent of it), except
 *   free-mail and business domains and public suffixes (co.uk);
 * - an object's neverLink entries (addresses or domains) drop those matches;
 * - bulk/automated mail links only objects whose rule says linkBulk.
 * One link per object, with every reason, address matches first, in header
 * order From, Sender, Reply-To, To, Cc.
 */
export function planAssociation(
  participants: readonly Participant[],
  objects: readonly MatchableObject[],
  context: AssociationContext,
): AssociationPlan {
  const { candidates, internal } = prepare(participants, context);
  const plan: AssociationPlan = { internal, bulk: context.bulk, links: [], skipped: [] };
  if (internal) return plan;
  const roleOrder = (role: AddressRole) => ADDRESS_ROLES.indexOf(role);
  const sorted = candidates.filter((c) => !c.own).sort((a, b) => roleOrder(a.role) - roleOrder(b.role));

  for (const object of objects) {
    const emails = new Set(object.emails);
    const domains = new Set(object.type === 'customer' ? object.domains : []);
    const neverLink = new Set(object.rules?.neverLink ?? []);
    const reasons: LinkReason[] = [];
    const seen = new Set<string>();
    let blocked = false;
    const add = (reason: LinkReason) => {
      const key = `${reason.rule}|${reason.address}`;
      if (seen.has(key)) return;
      seen.add(key);
      reasons.push(reason);
    };
    for (const candidate of sorted) {
      const matchedEmail = emails.has(candidate.exact) ? candidate.exact : emails.has(candidate.stripped) ? candidate.stripped : null;
      const matchedDomain = candidate.domainEligible
        ? linkableDomains(candidate.domain, context).find((domain) => domains.has(domain)) ?? null
        : null;
      if (!matchedEmail && !matchedDomain) continue;
      if (neverLinked(candidate, neverLink)) {
        blocked = true;
        continue;
      }
      if (matchedEmail) add({ address: candidate.exact, rule: 'address', role: candidate.role, matched: matchedEmail });
      if (matchedDomain) add({ address: candidate.exact, rule: 'domain', role: candidate.role, matched: matchedDomain });
    }
    if (reasons.length === 0) {
      if (blocked) plan.skipped.push({ objectId: object.id, why: 'never-link' });
      continue;
    }
    if (context.bulk && !object.rules?.linkBulk) {
      plan.skipped.push({ objectId: object.id, why: 'bulk' });
      continue;
    }
    const ruleOrder = (rule: LinkRule) => (rule === 'address' ? 0 : 1);
    reasons.sort((a, b) => ruleOrder(a.rule) - ruleOrder(b.rule) || roleOrder(a.role) - roleOrder(b.role));
    plan.links.push({ objectId: object.id, reasons });
  }
  return plan;
}

/** The participants of a stored message (From, Sender, Reply-To, To, Cc). */
export function messageParticipants(message: {
  from?: { address?: string | null } | null;
  sender?: { address?: string | null } | null;
  replyTo?: ReadonlyArray<{ address?: string | null }> | null;
  to?: ReadonlyArray<{ address?: string | null }> | null;
  cc?: ReadonlyArray<{ address?: string | null }> | null;
}): Participant[] {
  const result: Participant[] = [];
  const push = (role: AddressRole, entry: { address?: string | null } | null | undefined) => {
    if (entry?.address) result.push({ address: entry.address, role });
  };
  push('from', message.from);
  push('sender', message.sender);
  for (const entry of message.replyTo ?? []) push('reply-to', entry);
  for (const entry of message.to ?? []) push('to', entry);
  for (const entry of message.cc ?? []) push('cc', entry);
  return result;
}
