import { strict as assert } from 'node:assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { evaluateAuthentication } from '../../gateway/mail/auth-verdict';
import { createDnsResolver } from '../../gateway/mail/dns-resolver';
import { startDns, type TestDns } from '../support/dns';
import { generateDkimKey, plainMessage, publishDkim, signMessage } from '../support/mail-auth';

/** The gateway's DNS answers cache (DNS_CACHE_SECONDS), against the local DNS server. */
describe('DNS resolver cache (DNS_CACHE_SECONDS)', () => {
  let testDns: TestDns;
  before(async () => {
    testDns = await startDns();
  });
  after(async () => testDns?.stop());

  const rejection = (promise: Promise<unknown>) => promise.then(() => null, (err: { code?: string }) => err.code ?? 'no code');

  it('reuses an answer within the window, then asks again', async () => {
    testDns.setTxt('reuse.test', 'v=spf1 ip4:192.0.2.1 -all');
    const resolve = createDnsResolver([testDns.address], { cacheSeconds: 1 });
    const before = testDns.questions;
    assert.deepEqual(await resolve('reuse.test', 'TXT'), [['v=spf1 ip4:192.0.2.1 -all']]);
    testDns.setTxt('reuse.test', 'v=spf1 ip4:192.0.2.2 -all');
    assert.deepEqual(await resolve('Reuse.TEST', 'TXT'), [['v=spf1 ip4:192.0.2.1 -all']], 'same answer within the window, whatever the case of the name');
    assert.equal(testDns.questions - before, 1);
    await sleep(1100);
    assert.deepEqual(await resolve('reuse.test', 'TXT'), [['v=spf1 ip4:192.0.2.2 -all']], 'the changed record once the window is over');
    assert.equal(testDns.questions - before, 2);
  });

  it('asks every time with 0', async () => {
    testDns.setTxt('nocache.test', 'first');
    const resolve = createDnsResolver([testDns.address], { cacheSeconds: 0 });
    assert.deepEqual(await resolve('nocache.test', 'TXT'), [['first']]);
    testDns.setTxt('nocache.test', 'second');
    assert.deepEqual(await resolve('nocache.test', 'TXT'), [['second']]);
  });

  it('sends one question for lookups made while it is on the wire', async () => {
    testDns.setTxt('burst.test', 'v=DMARC1; p=reject');
    const resolve = createDnsResolver([testDns.address], { cacheSeconds: 60 });
    const before = testDns.questions;
    const answers = await Promise.all(Array.from({ length: 20 }, () => resolve('burst.test', 'TXT')));
    assert.equal(answers.length, 20);
    for (const answer of answers) assert.deepEqual(answer, [['v=DMARC1; p=reject']]);
    assert.equal(testDns.questions - before, 1);
  });

  it('keeps "no such name" and "no such record" like answers', async () => {
    testDns.setA('nodata.test', '192.0.2.7');
    const resolve = createDnsResolver([testDns.address], { cacheSeconds: 60 });
    const before = testDns.questions;
    assert.equal(await rejection(resolve('_dmarc.absent.test', 'TXT')), 'ENOTFOUND');
    assert.equal(await rejection(resolve('nodata.test', 'TXT')), 'ENODATA');
    testDns.setTxt('_dmarc.absent.test', 'v=DMARC1; p=none');
    assert.equal(await rejection(resolve('_dmarc.absent.test', 'TXT')), 'ENOTFOUND');
    assert.equal(await rejection(resolve('nodata.test', 'TXT')), 'ENODATA');
    assert.equal(testDns.questions - before, 2);
  });

  it('never keeps a server failure: the next lookup asks again and gets the record', async () => {
    testDns.setTxt('flaky.test', 'v=spf1 -all');
    testDns.failing('flaky.test');
    const resolve = createDnsResolver([testDns.address], { cacheSeconds: 60, tries: 1, timeoutMs: 500 });
    assert.equal(await rejection(resolve('flaky.test', 'TXT')), 'ESERVFAIL');
    testDns.failing('flaky.test', false);
    assert.deepEqual(await resolve('flaky.test', 'TXT'), [['v=spf1 -all']]);
  });

  it('gives each caller its own copy of a cached answer', async () => {
    testDns.setTxt('copy.test', ['one', 'two']);
    const resolve = createDnsResolver([testDns.address], { cacheSeconds: 60 });
    const first = (await resolve('copy.test', 'TXT')) as string[][];
    first.pop();
    first[0][0] = 'changed';
    assert.deepEqual(await resolve('copy.test', 'TXT'), [['one'], ['two']]);
  });

  it('authenticates a burst of signed mail with one lookup per record', async () => {
    const key = generateDkimKey();
    testDns.setTxt('burst-sender.test', 'v=spf1 ip4:127.0.0.1 -all');
    testDns.setTxt('_dmarc.burst-sender.test', 'v=DMARC1; p=reject');
    publishDkim(testDns, key, ['burst-sender.test']);
    const resolver = createDnsResolver([testDns.address], { cacheSeconds: 60 });
    const envelope = { ip: '127.0.0.1', helo: 'client.test', sender: 'alice@burst-sender.test' };
    const before = testDns.questions;
    for (let i = 0; i < 10; i++) {
      const raw = await signMessage(plainMessage({ from: 'alice@burst-sender.test', to: 'bob@acme.test', subject: `burst ${i}` }), key, 'burst-sender.test');
      const facts = await evaluateAuthentication(raw, envelope, { resolver, authservId: 'gw.test' });
      assert.equal(facts.spf.result, 'pass');
      assert.deepEqual(facts.dkim.map((d) => d.result), ['pass']);
      assert.equal(facts.dmarc?.result, 'pass');
    }
    const asked = testDns.questions - before;
    assert.ok(asked >= 3 && asked <= 5, `10 messages asked ${asked} questions; the first message's lookups (SPF, DKIM key, DMARC) should be all`);
  });
});
