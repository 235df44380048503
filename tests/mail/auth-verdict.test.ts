import { strict as assert } from 'node:assert';
import { Readable } from 'node:stream';
import { decideAuthVerdict } from '../../gateway/mail/auth-policy';
import { evaluateAuthentication } from '../../gateway/mail/auth-verdict';
import { createDnsResolver } from '../../gateway/mail/dns-resolver';
import { startDns, type TestDns } from '../support/dns';
import { generateDkimKey, plainMessage, publishDkim, signMessage } from '../support/mail-auth';

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
    assert.deepEqual(facts.spf, { result: 'pass', domain: 'acme.test' });
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
});
