import { strict as assert } from 'node:assert';
import { Readable } from 'node:stream';
import { decideAuthVerdict } from '../../gateway/mail/auth-policy';
import { dmarcRecordProblem, evaluateAuthentication } from '../../gateway/mail/auth-verdict';
import { createDnsResolver } from '../../gateway/mail/dns-resolver';
import { startDns, type TestDns } from '../support/dns';
import { forwardLikeProvider, generateDkimKey, plainMessage, publishDkim, signMessage } from '../support/mail-auth';

/** mailauth through the resolver built from DNS_SERVERS, against the local DNS server. */
describe('authentication facts (mailauth + DNS_SERVERS resolver)', () => {
  let testDns: TestDns;
  before(async () => {
    testDns = await startDns();
    testDns.setTxt('acme.test', 'v=spf1 ip4:127.0.0.1 -all');
    testDns.setTxt('soft.test', 'v=spf1 ip4:192.0.2.1 ~all');
    testDns.setTxt('_dmarc.acme.test', 'v=DMARC1; p=reject');
  });
  after(async () => testDns?.stop());

  const envelope = (sender: string) => ({ ip: '127.0.0.1', helo: 'client.test', sender });
  const options = () => ({ resolver: createDnsResolver([testDns.address]), authservId: 'gw.test' });

  it('reports SPF, DKIM and DMARC with the Authentication-Results value and trace headers', async () => {
    const key = generateDkimKey();
    publishDkim(testDns, key, ['acme.test']);
    const raw = await signMessage(plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'facts' }), key, 'acme.test');
    const facts = await evaluateAuthentication(raw, envelope('alice@acme.test'), options());
    assert.deepEqual([facts.spf.result, facts.spf.domain], ['pass', 'acme.test']);
    assert.deepEqual(facts.dkim.map((d) => [d.result, d.domain]), [['pass', 'acme.test']]);
    assert.deepEqual([facts.dmarc?.result, facts.dmarc?.fromDomain, facts.dmarc?.policy], ['pass', 'acme.test', 'reject']);
    assert.deepEqual(facts.headerFrom, ['alice@acme.test']);
    assert.equal(facts.arc.result, 'none');
    assert.match(facts.authResults, /^gw\.test;\r\n dkim=pass header\.i=@acme\.test/);
    assert.match(facts.traceHeaders, /^Received-SPF: pass .*\r\nAuthentication-Results: gw\.test;/s);
    assert.ok(facts.traceHeaders.endsWith('\r\n'));
  });

  it('reads a stream (as the gateway does) and reports softfail', async () => {
    const raw = plainMessage({ from: 'x@soft.test', to: 'bob@acme.test', subject: 'soft' });
    const facts = await evaluateAuthentication(Readable.from([raw.subarray(0, 10), raw.subarray(10)]), envelope('x@soft.test'), options());
    assert.equal(facts.spf.result, 'softfail');
    assert.equal(decideAuthVerdict(facts, ['soft.test']).verdict, 'fail');
  });

  it('turns an unreachable DNS server into a retryable failure for our own domain', async () => {
    const facts = await evaluateAuthentication(plainMessage({ from: 'a@acme.test', to: 'b@acme.test', subject: 'no dns' }), envelope('a@acme.test'), {
      resolver: createDnsResolver(['127.0.0.1:9'], { timeoutMs: 300, tries: 1 }),
      authservId: 'gw.test',
    });
    assert.equal(facts.spf.result, 'temperror');
    const decision = decideAuthVerdict(facts, ['acme.test']);
    assert.equal(decision.verdict, 'fail');
    assert.equal(decision.retryable, true);
  });

  it('bounds the time one message spends waiting on an unresponsive DNS, however many signatures it carries', async function () {
    // Six signatures and an ARC seal whose keys never answer: mailauth asks for them one after the other,
    // each lookup waiting out the resolver's timeouts — over a minute in the gateway before the budget.
    const key = generateDkimKey();
    const signers = ['k1.test', 'k2.test', 'k3.test', 'k4.test', 'k5.test', 'k6.test'];
    publishDkim(testDns, key, [...signers, 'google.com']);
    let raw = plainMessage({ from: 'carol@k1.test', to: 'bob@acme.test', subject: 'many signatures' });
    for (const signer of signers) raw = await signMessage(raw, key, signer);
    raw = await forwardLikeProvider(raw, { testDns, key, sealer: 'google.com', originIp: '192.0.2.20', originSender: 'carol@k1.test' });
    for (const signer of [...signers, 'google.com']) testDns.silent(`s1._domainkey.${signer}`);
    testDns.silent('acme.test');
    this.timeout(10000);
    try {
      const started = Date.now();
      const facts = await evaluateAuthentication(raw, envelope('bob+caf_=x@acme.test'), {
        resolver: createDnsResolver([testDns.address], { timeoutMs: 1000, tries: 1 }),
        authservId: 'gw.test',
        dnsBudgetMs: 1500,
      });
      assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`);
      assert.equal(facts.spf.result, 'temperror', 'our own SPF could not be looked up in time: retried, not failed');
      assert.equal(facts.dkim.length, signers.length);
      assert.ok(facts.dkim.every((d) => d.result === 'temperror'), JSON.stringify(facts.dkim));
      assert.ok(facts.dnsFailures?.some((f) => f.startsWith('acme.test TXT ETIMEOUT')), String(facts.dnsFailures));
      assert.equal(decideAuthVerdict(facts, ['acme.test']).retryable, true);
    } finally {
      for (const signer of [...signers, 'google.com']) testDns.silent(`s1._domainkey.${signer}`, false);
      testDns.silent('acme.test', false);
    }
  });

  it('counts the DNS budget from the first lookup, not while a slow message is still being read', async () => {
    const raw = plainMessage({ from: 'a@acme.test', to: 'b@acme.test', subject: 'slow stream' });
    const slow = Readable.from((async function* () {
      for (let i = 0; i < 4; i++) {
        yield raw.subarray((i * raw.length) / 4, ((i + 1) * raw.length) / 4);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })());
    const facts = await evaluateAuthentication(slow, envelope('a@acme.test'), { ...options(), dnsBudgetMs: 300 });
    assert.equal(facts.spf.result, 'pass', String(facts.dnsFailures));
  });

  it('never throws: a stream that fails yields failing facts with the reason', async () => {
    const broken = new Readable({
      read() {
        this.destroy(new Error('spool read failed'));
      },
    });
    const facts = await evaluateAuthentication(broken, envelope('a@acme.test'), options());
    assert.equal(facts.error, 'spool read failed');
    assert.match(facts.authResults, /^gw\.test; none \(evaluation failed: spool read failed\)$/);
    const decision = decideAuthVerdict(facts, ['acme.test']);
    assert.equal(decision.verdict, 'fail');
    assert.match(decision.reason, /could not be evaluated/);
  });

  describe('DMARC records that are no policy (RFC 7489 §6.6.3)', () => {
    const cases: Array<[string, string]> = [
      ['v=DMARC1; p=reject', ''],
      ['v=DMARC1; p=REJECT; sp=none', ''],
      ['v=DMARC1; p=none; rua=mailto:d@acme.test', ''],
      ['v=DMARC1; rua=mailto:dmarc@acme.test', ''],
      ['v=DMARC1; p=rejet; rua=mailto:dmarc@acme.test!10m', ''],
      ['v=DMARC1; p=rejet', 'p=rejet is not none, quarantine or reject'],
      ['v=DMARC1; adkim=s', 'no p= tag'],
      ['v=DMARC1; p=bogus; rua=https://report.test/', 'p=bogus is not none, quarantine or reject'],
    ];
    for (const [record, problem] of cases) {
      it(`${record} → ${problem || 'a policy'}`, () => assert.equal(dmarcRecordProblem(record), problem));
    }
  });
});
