import { strict as assert } from 'node:assert';
import { alignedWith, decideAuthVerdict, providerNotice, senderAuthentication } from '../../gateway/mail/auth-policy';
import type { AuthFacts } from '../../gateway/mail/auth-verdict';

/** Facts of a message with nothing authenticated; each case overrides what it needs. */
function facts(overrides: Partial<AuthFacts> = {}): AuthFacts {
  return {
    envelopeFrom: 'someone@elsewhere.test',
    headerFrom: ['someone@elsewhere.test'],
    spf: { result: 'none', domain: 'elsewhere.test' },
    dkim: [],
    dmarc: null,
    arc: { result: 'none', instance: 0, sealers: [], comment: '', inner: null },
    authResults: 'gw.test; spf=none',
    traceHeaders: '',
    ...overrides,
  };
}

const OURS = ['acme.com', 'acme.co.uk'];

const gmailArc = (inner: NonNullable<AuthFacts['arc']['inner']>, sealers = ['google.com']): AuthFacts['arc'] => ({
  result: 'pass',
  instance: 1,
  sealers,
  comment: '',
  inner,
});

describe('auth policy', () => {
  describe('alignedWith', () => {
    const cases: Array<[string, boolean]> = [
      ['acme.com', true],
      ['ACME.com.', true],
      ['mail.acme.com', true],
      ['eu.mail.acme.co.uk', true],
      ['notacme.com', false],
      ['acme.com.evil.test', false],
      ['com', false],
      ['', false],
    ];
    for (const [domain, expected] of cases) {
      it(`${JSON.stringify(domain)} → ${expected}`, () => assert.equal(alignedWith(domain, OURS), expected));
    }
  });

  const table: Array<{ name: string; facts: AuthFacts; verdict: 'pass' | 'fail'; reason: RegExp; notice?: string; retryable?: boolean }> = [
    {
      name: 'SPF pass for the account domain (Gmail +caf_ envelope)',
      facts: facts({ envelopeFrom: 'bob+caf_=bob-acme-com.tok=in.postroom.test@acme.com', spf: { result: 'pass', domain: 'acme.com' } }),
      verdict: 'pass',
      reason: /SPF pass for envelope domain acme\.com/,
    },
    {
      name: 'SPF pass for a subdomain of a business domain',
      facts: facts({ spf: { result: 'pass', domain: 'bounces.acme.co.uk' } }),
      verdict: 'pass',
      reason: /SPF pass/,
    },
    {
      name: 'SPF pass for a foreign domain is not enough',
      facts: facts({ spf: { result: 'pass', domain: 'evil.test' }, headerFrom: ['ceo@acme.com'] }),
      verdict: 'fail',
      reason: /spf=pass \(evil\.test\)/,
    },
    {
      name: 'SPF softfail for our domain fails',
      facts: facts({ spf: { result: 'softfail', domain: 'acme.com' } }),
      verdict: 'fail',
      reason: /spf=softfail \(acme\.com\)/,
    },
    {
      name: 'SPF fail for our domain fails',
      facts: facts({ spf: { result: 'fail', domain: 'acme.com' } }),
      verdict: 'fail',
      reason: /spf=fail/,
    },
    {
      name: 'DKIM pass by our domain',
      facts: facts({ spf: { result: 'fail', domain: 'acme.com' }, dkim: [{ result: 'pass', domain: 'acme.com', comment: '' }] }),
      verdict: 'pass',
      reason: /DKIM signature of acme\.com verified/,
    },
    {
      name: 'DKIM neutral (body hash did not verify) is not a pass',
      facts: facts({ dkim: [{ result: 'neutral', domain: 'acme.com', comment: 'body hash did not verify' }] }),
      verdict: 'fail',
      reason: /dkim=neutral d=acme\.com \(body hash did not verify\)/,
    },
    {
      name: 'DKIM pass by a foreign domain is not enough',
      facts: facts({ dkim: [{ result: 'pass', domain: 'mailer.evil.test', comment: '' }], headerFrom: ['ceo@acme.com'] }),
      verdict: 'fail',
      reason: /dkim=pass d=mailer\.evil\.test/,
    },
    {
      name: 'trusted forwarder ARC chain with an authenticated original',
      facts: facts({
        spf: { result: 'pass', domain: 'outbound.microsoft.com' },
        headerFrom: ['carol@customer.test'],
        arc: gmailArc({ spf: null, dkim: [], dmarc: { result: 'pass', fromDomain: 'customer.test' } }, ['microsoft.com']),
      }),
      verdict: 'pass',
      reason: /ARC chain of trusted forwarder microsoft\.com validated .*dmarc=pass/,
    },
    {
      name: 'trusted ARC chain whose inner DKIM is aligned with From',
      facts: facts({
        headerFrom: ['carol@customer.test'],
        arc: gmailArc({ spf: { result: 'fail', domain: 'customer.test' }, dkim: [{ result: 'pass', domain: 'mail.customer.test' }], dmarc: null }),
      }),
      verdict: 'pass',
      reason: /dkim=pass header\.d=mail\.customer\.test/,
    },
    {
      name: 'trusted ARC chain whose inner results do not authenticate the From',
      facts: facts({
        headerFrom: ['ceo@acme.com'],
        arc: gmailArc({ spf: { result: 'pass', domain: 'evil.test' }, dkim: [{ result: 'pass', domain: 'evil.test' }], dmarc: { result: 'fail', fromDomain: 'acme.com' } }),
      }),
      verdict: 'fail',
      reason: /arc=pass \(google\.com\)/,
    },
    {
      name: 'a validating ARC chain from an untrusted sealer',
      facts: facts({ headerFrom: ['carol@customer.test'], arc: gmailArc({ spf: null, dkim: [], dmarc: { result: 'pass', fromDomain: 'customer.test' } }, ['evil.test']) }),
      verdict: 'fail',
      reason: /arc=pass \(evil\.test\)/,
    },
    {
      name: 'a broken ARC chain from a trusted sealer',
      facts: facts({ arc: { result: 'fail', instance: 1, sealers: ['google.com'], comment: 'i=1 no valid signature', inner: null } }),
      verdict: 'fail',
      reason: /arc=fail/,
    },
    {
      name: 'Gmail forwarding confirmation with a google.com signature',
      facts: facts({ headerFrom: ['forwarding-noreply@google.com'], dkim: [{ result: 'pass', domain: 'google.com', comment: '' }] }),
      verdict: 'pass',
      reason: /provider notice \(google\)/,
      notice: 'google',
    },
    {
      name: 'Gmail confirmation look-alike without a google.com signature',
      facts: facts({ headerFrom: ['forwarding-noreply@google.com'], dkim: [{ result: 'pass', domain: 'evil.test', comment: '' }] }),
      verdict: 'fail',
      reason: /nothing shows it came through/,
    },
    {
      name: 'a consumer Gmail user is not a provider notice',
      facts: facts({ headerFrom: ['someone@gmail.com'], dkim: [{ result: 'pass', domain: 'gmail.com', comment: '' }] }),
      verdict: 'fail',
      reason: /nothing shows it came through/,
    },
    {
      name: 'Microsoft 365 postmaster notice with a microsoft.com signature',
      facts: facts({ headerFrom: ['postmaster@outlook.com'], dkim: [{ result: 'pass', domain: 'microsoft.com', comment: '' }] }),
      verdict: 'pass',
      reason: /provider notice \(microsoft\)/,
      notice: 'microsoft',
    },
    {
      name: 'DNS temporary error on our own SPF domain is retryable',
      facts: facts({ spf: { result: 'temperror', domain: 'acme.com' } }),
      verdict: 'fail',
      reason: /spf=temperror/,
      retryable: true,
    },
    {
      name: 'DNS temporary error on a foreign domain is not retryable',
      facts: facts({ spf: { result: 'temperror', domain: 'evil.test' } }),
      verdict: 'fail',
      reason: /spf=temperror/,
      retryable: false,
    },
    {
      name: 'DNS temporary error on the key of Google\'s signature on its forwarding confirmation is retryable',
      facts: facts({ headerFrom: ['forwarding-noreply@google.com'], dkim: [{ result: 'temperror', domain: 'google.com', comment: 'DNS failure: ESERVFAIL' }] }),
      verdict: 'fail',
      reason: /dkim=temperror d=google\.com/,
      retryable: true,
    },
    {
      name: 'DNS temporary error on google.com\'s key for an ordinary From is not retryable',
      facts: facts({ headerFrom: ['someone@gmail.com'], dkim: [{ result: 'temperror', domain: 'google.com', comment: 'DNS failure: ESERVFAIL' }] }),
      verdict: 'fail',
      reason: /dkim=temperror/,
      retryable: false,
    },
    {
      name: 'a trusted forwarder\'s ARC seal whose key lookup failed is retryable',
      facts: facts({ arc: { result: 'fail', instance: 1, sealers: ['google.com'], comment: '', inner: null }, dnsFailures: ['arc-20240605._domainkey.google.com TXT ETIMEOUT'] }),
      verdict: 'fail',
      reason: /arc=fail \(google\.com\)/,
      retryable: true,
    },
    {
      name: 'a broken ARC seal of a trusted forwarder without a DNS failure is not retryable',
      facts: facts({ arc: { result: 'fail', instance: 1, sealers: ['google.com'], comment: '', inner: null }, dnsFailures: ['_dmarc.elsewhere.test TXT ETIMEOUT'] }),
      verdict: 'fail',
      reason: /arc=fail/,
      retryable: false,
    },
    {
      name: 'an untrusted sealer whose key lookup failed is not retryable',
      facts: facts({ arc: { result: 'fail', instance: 1, sealers: ['evil.test'], comment: '', inner: null }, dnsFailures: ['s1._domainkey.evil.test TXT ESERVFAIL'] }),
      verdict: 'fail',
      reason: /arc=fail/,
      retryable: false,
    },
    {
      name: 'nothing evaluable (evaluation error)',
      facts: facts({ error: 'unexpected end of input', spf: { result: 'none', domain: '' }, headerFrom: [] }),
      verdict: 'fail',
      reason: /could not be evaluated \(unexpected end of input\)/,
    },
  ];

  for (const row of table) {
    it(`${row.name} → ${row.verdict}`, () => {
      const decision = decideAuthVerdict(row.facts, OURS);
      assert.equal(decision.verdict, row.verdict, decision.reason);
      assert.match(decision.reason, row.reason);
      assert.equal(decision.providerNotice, row.notice ?? null);
      assert.equal(decision.retryable, row.retryable ?? false);
    });
  }

  it('names the domains it checked against when failing', () => {
    const decision = decideAuthVerdict(facts(), OURS);
    assert.match(decision.reason, /no SPF pass, DKIM signature or trusted forwarder's ARC seal for acme\.com, acme\.co\.uk/);
  });

  describe('the sender (From domain), apart from the path', () => {
    const spoofForwarded = facts({
      headerFrom: ['ceo@customer.test'],
      envelopeFrom: 'bob+caf_=x@acme.com',
      spf: { result: 'pass', domain: 'acme.com' },
      dmarc: { result: 'fail', fromDomain: 'customer.test', policy: 'reject' },
      arc: gmailArc({ spf: { result: 'fail', domain: 'customer.test' }, dkim: [], dmarc: { result: 'fail', fromDomain: 'customer.test' } }),
    });

    it('a forged From forwarded by the employee\'s own provider passes the path, but the sender is "fail" and the reason says so', () => {
      const decision = decideAuthVerdict(spoofForwarded, OURS);
      assert.equal(decision.verdict, 'pass');
      assert.deepEqual(decision.sender.result, 'fail');
      assert.match(decision.reason, /SPF pass for envelope domain acme\.com; the sender's domain customer\.test failed DMARC when google\.com received it: the From address may be forged/);
      assert.deepEqual(senderAuthentication(spoofForwarded), decision.sender);
    });

    it('a sender authenticating their own domain is said, but does not make the path pass', () => {
      const decision = decideAuthVerdict(facts({
        headerFrom: ['jane@customer.test'], spf: { result: 'fail', domain: 'gmail.test' },
        dkim: [{ result: 'pass', domain: 'customer.test', comment: '' }], dmarc: { result: 'pass', fromDomain: 'customer.test', policy: 'reject' },
      }), OURS);
      assert.equal(decision.verdict, 'fail');
      assert.equal(decision.sender.result, 'pass');
      assert.match(decision.reason, /^nothing shows it came through the mailbox's provider or the business: .*; the sender's domain customer\.test is authenticated \(DMARC pass\)$/);
    });

    const senders: Array<[string, AuthFacts, 'pass' | 'fail' | 'none', RegExp]> = [
      ['DMARC pass here', facts({ headerFrom: ['a@customer.test'], dmarc: { result: 'pass', fromDomain: 'customer.test', policy: 'none' } }), 'pass', /authenticated \(DMARC pass\)/],
      ['DMARC broken by a forwarder, but a trusted sealer saw it pass', facts({ headerFrom: ['a@customer.test'], dmarc: { result: 'fail', fromDomain: 'customer.test', policy: 'reject' }, arc: gmailArc({ spf: null, dkim: [], dmarc: { result: 'pass', fromDomain: 'customer.test' } }) }), 'pass', /authenticated when google\.com received it/],
      ['DMARC fail here, no trusted ARC', facts({ headerFrom: ['a@customer.test'], dmarc: { result: 'fail', fromDomain: 'customer.test', policy: 'reject' } }), 'fail', /may be forged, or a forwarder changed the message/],
      ['an untrusted sealer\'s word does not count', facts({ headerFrom: ['a@customer.test'], dmarc: { result: 'fail', fromDomain: 'customer.test', policy: 'reject' }, arc: gmailArc({ spf: null, dkim: [], dmarc: { result: 'pass', fromDomain: 'customer.test' } }, ['evil.test']) }), 'fail', /DMARC fail/],
      ['no DMARC record', facts({ headerFrom: ['a@customer.test'], dmarc: { result: 'none', fromDomain: 'customer.test', policy: '' } }), 'none', /publishes no DMARC policy/],
      ['no single From', facts({ headerFrom: [] }), 'none', /no single From address/],
      ['DMARC lookup failed', facts({ headerFrom: ['a@customer.test'], dmarc: { result: 'temperror', fromDomain: 'customer.test', policy: '' } }), 'none', /could not be checked \(DMARC temperror\)/],
    ];
    for (const [name, input, result, note] of senders) {
      it(`${name} → ${result}`, () => {
        const sender = senderAuthentication(input);
        assert.equal(sender.result, result);
        assert.match(sender.note, note);
      });
    }
  });

  it('requires exactly one From address for a provider notice', () => {
    const twoFroms = facts({ headerFrom: ['forwarding-noreply@google.com', 'x@evil.test'], dkim: [{ result: 'pass', domain: 'google.com', comment: '' }] });
    assert.equal(providerNotice(twoFroms), null);
  });
});
