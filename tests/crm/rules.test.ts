import { strict as assert } from 'node:assert';
import { freemailChecker } from '../../gateway/crm/freemail';
import { messageParticipants, planAssociation, type AssociationContext, type MatchableObject, type Participant } from '../../gateway/crm/rules';

/** The association rules, table-driven: participants + objects + context → links with reasons. */
describe('crm/rules: planAssociation', () => {
  const context = (over: Partial<AssociationContext> = {}): AssociationContext => ({
    ownAddresses: ['bob@acme.test'],
    businessDomains: ['acme.test'],
    isFreemail: freemailChecker(['freemail.test']),
    stripSubaddress: true,
    bulk: false,
    ...over,
  });
  const objects: MatchableObject[] = [
    { id: 'jane', type: 'contact', emails: ['jane@globex.test'], domains: [] },
    { id: 'globex', type: 'customer', emails: ['billing@globex.test'], domains: ['globex.test'] },
    { id: 'lead-gmail', type: 'lead', emails: ['sam@gmail.com'], domains: [] },
    { id: 'gmail-customer', type: 'customer', emails: [], domains: ['gmail.com'] },
    { id: 'idn', type: 'contact', emails: ['anna@xn--bcher-kva.test'], domains: [] },
    { id: 'bob-as-contact', type: 'contact', emails: ['bob@acme.test'], domains: [] },
    { id: 'news', type: 'customer', emails: [], domains: ['news.test'], rules: { linkBulk: true } },
    { id: 'blocked', type: 'customer', emails: [], domains: ['initech.test'], rules: { neverLink: ['noreply@initech.test'] } },
    { id: 'blocked-domain', type: 'customer', emails: [], domains: ['umbrella.test'], rules: { neverLink: ['eu.umbrella.test'] } },
    // Stored before public suffixes were refused (or written around the service): must still never match.
    { id: 'suffix-customer', type: 'customer', emails: [], domains: ['co.uk', 'github.io'] },
    { id: 'initrode-uk', type: 'customer', emails: [], domains: ['initrode.co.uk'] },
  ];
  const p = (role: Participant['role'], address: string): Participant => ({ role, address });

  type Case = { name: string; participants: Participant[]; ctx?: Partial<AssociationContext>; links: Record<string, string[]>; internal?: boolean; skipped?: Record<string, string> };
  const cases: Case[] = [
    {
      name: 'exact address links the contact; its domain links the customer',
      participants: [p('from', 'Jane@Globex.test'), p('to', 'bob@acme.test')],
      links: { jane: ['address:jane@globex.test:from'], globex: ['domain:jane@globex.test:from'] },
    },
    {
      name: 'a customer listing the exact address gets an address reason first',
      participants: [p('cc', 'jane@globex.test'), p('from', 'billing@globex.test')],
      links: { jane: ['address:jane@globex.test:cc'], globex: ['address:billing@globex.test:from', 'domain:billing@globex.test:from', 'domain:jane@globex.test:cc'] },
    },
    {
      name: 'subdomains of a customer domain match',
      participants: [p('from', 'ops@eu.globex.test')],
      links: { globex: ['domain:ops@eu.globex.test:from'] },
    },
    {
      name: 'free-mail domains never link a customer, but exact addresses still link',
      participants: [p('from', 'sam@gmail.com'), p('to', 'bob@acme.test')],
      links: { 'lead-gmail': ['address:sam@gmail.com:from'] },
    },
    {
      name: 'business-extended free-mail list is honoured',
      participants: [p('from', 'x@freemail.test')],
      links: {},
    },
    {
      name: "the owner's own address never links (even when it is a contact)",
      participants: [p('from', 'Bob+Sent@acme.test'), p('to', 'jane@globex.test')],
      links: { jane: ['address:jane@globex.test:to'], globex: ['domain:jane@globex.test:to'] },
    },
    {
      name: 'internal-only mail links nothing, even a contact in the business domain',
      participants: [p('from', 'alice@acme.test'), p('to', 'bob@acme.test'), p('cc', 'ops@eu.acme.test')],
      links: {},
      internal: true,
    },
    {
      name: 'a colleague set up as a contact links when outsiders are on the mail',
      participants: [p('from', 'jane@globex.test'), p('cc', 'bob@acme.test')],
      ctx: { ownAddresses: ['alice@acme.test'] },
      links: { jane: ['address:jane@globex.test:from'], globex: ['domain:jane@globex.test:from'], 'bob-as-contact': ['address:bob@acme.test:cc'] },
    },
    {
      name: 'sub-addresses are stripped before matching',
      participants: [p('reply-to', 'jane+support@globex.test')],
      links: { jane: ['address:jane+support@globex.test:reply-to'], globex: ['domain:jane+support@globex.test:reply-to'] },
    },
    {
      name: 'without stripping a sub-address does not match the contact',
      participants: [p('from', 'jane+support@globex.test')],
      ctx: { stripSubaddress: false },
      links: { globex: ['domain:jane+support@globex.test:from'] },
    },
    {
      name: 'IDN: a Unicode domain matches the A-label stored address',
      participants: [p('from', 'anna@Bücher.test')],
      links: { idn: ['address:anna@xn--bcher-kva.test:from'] },
    },
    {
      name: 'bulk mail links only objects whose rule says so',
      participants: [p('from', 'jane@globex.test'), p('from', 'letters@news.test')],
      ctx: { bulk: true },
      links: { news: ['domain:letters@news.test:from'] },
      skipped: { jane: 'bulk', globex: 'bulk' },
    },
    {
      name: 'neverLink addresses are ignored, other addresses of the domain still link',
      participants: [p('from', 'noreply@initech.test'), p('cc', 'peter@initech.test')],
      links: { blocked: ['domain:peter@initech.test:cc'] },
    },
    {
      name: 'neverLink only match → skipped with the reason',
      participants: [p('from', 'NoReply@initech.test')],
      links: {},
      skipped: { blocked: 'never-link' },
    },
    {
      name: 'a neverLink domain blocks its subdomains',
      participants: [p('from', 'x@eu.umbrella.test'), p('to', 'y@umbrella.test')],
      links: { 'blocked-domain': ['domain:y@umbrella.test:to'] },
    },
    {
      name: 'a public suffix (co.uk, github.io) never links a customer; the domain registered under it does',
      participants: [p('from', 'ann@sales.initrode.co.uk'), p('cc', 'joe@other.co.uk'), p('cc', 'dev@someone.github.io')],
      links: { 'initrode-uk': ['domain:ann@sales.initrode.co.uk:from'] },
    },
    {
      name: 'invalid addresses are ignored',
      participants: [p('from', 'undisclosed-recipients:;'), p('to', 'jane@globex.test')],
      links: { jane: ['address:jane@globex.test:to'], globex: ['domain:jane@globex.test:to'] },
    },
    {
      name: 'no business domains configured: nothing is internal',
      participants: [p('from', 'alice@acme.test'), p('to', 'jane@globex.test')],
      ctx: { businessDomains: [], ownAddresses: [] },
      links: { jane: ['address:jane@globex.test:to'], globex: ['domain:jane@globex.test:to'], 'bob-as-contact': [] },
    },
  ];
  // The last case: bob-as-contact has no reason (bob@ is not on the mail) — drop empty expectations.
  for (const c of cases) for (const [k, v] of Object.entries(c.links)) if (v.length === 0) delete c.links[k];

  for (const c of cases) {
    it(c.name, () => {
      const plan = planAssociation(c.participants, objects, context(c.ctx));
      const got = Object.fromEntries(plan.links.map((l) => [l.objectId, l.reasons.map((r) => `${r.rule}:${r.address}:${r.role}`)]));
      assert.deepEqual(got, c.links);
      assert.equal(plan.internal, c.internal ?? false);
      const skipped = Object.fromEntries(plan.skipped.map((s) => [s.objectId, s.why]));
      assert.deepEqual(skipped, c.skipped ?? {});
    });
  }

  it('records which object email or domain matched (so removing it removes exactly its links)', () => {
    const plan = planAssociation([p('from', 'jane+x@globex.test'), p('to', 'a@eu.globex.test')], objects, context());
    const jane = plan.links.find((l) => l.objectId === 'jane')!;
    assert.equal(jane.reasons[0].matched, 'jane@globex.test');
    const globex = plan.links.find((l) => l.objectId === 'globex')!;
    assert.deepEqual(globex.reasons.map((r) => r.matched), ['globex.test', 'globex.test']);
  });

  it('reads From, Sender, Reply-To, To and Cc from a message, never Bcc', () => {
    const participants = messageParticipants({
      from: { address: 'a@x.test' }, sender: { address: 'b@x.test' }, replyTo: [{ address: 'c@x.test' }],
      to: [{ address: 'd@x.test' }, { address: '' }], cc: [{ address: 'e@x.test' }], bcc: [{ address: 'f@x.test' }],
    } as never);
    assert.deepEqual(participants.map((x) => `${x.role}:${x.address}`), ['from:a@x.test', 'sender:b@x.test', 'reply-to:c@x.test', 'to:d@x.test', 'cc:e@x.test']);
  });
});
