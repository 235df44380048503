import { strict as assert } from 'node:assert';
import { checkedLookup } from '../../gateway/core/checked-host';
import { checkWebhookTarget, isPrivateAddress, parseWebhookUrl } from '../../gateway/crm/webhook-target';
import { computeSignature, signatureHeader, verifySignature } from '../../gateway/crm/webhook-signature';

describe('crm/webhook-target: SSRF guard', () => {
  const cases: Array<[string, boolean]> = [
    ['127.0.0.1', true], ['127.9.9.9', true], ['10.1.2.3', true], ['172.16.0.1', true], ['172.31.255.255', true], ['172.32.0.1', false],
    ['192.168.1.1', true], ['169.254.169.254', true], ['100.64.0.1', true], ['0.0.0.0', true], ['224.0.0.1', true], ['255.255.255.255', true],
    ['8.8.8.8', false], ['93.184.216.34', false],
    ['::1', true], ['::', true], ['fe80::1', true], ['fc00::1', true], ['fd12:3456::1', true], ['ff02::1', true],
    ['::ffff:127.0.0.1', true], ['::ffff:7f00:1', true], ['::ffff:8.8.8.8', false], ['64:ff9b::10.0.0.1', true],
    ['2606:4700:4700::1111', false], ['not-an-ip', true],
    // IPv6 forms that embed an IPv4 address: IPv4-compatible, IPv4-translated, local-use NAT64, 6to4.
    ['::7f00:1', true], ['::127.0.0.1', true], ['::ffff:0:a9fe:a9fe', true], ['64:ff9b:1::a9fe:a9fe', true], ['2002:a9fe:a9fe::', true], ['2002:7f00:1::1', true],
  ];
  for (const [ip, blocked] of cases) {
    it(`${ip} is ${blocked ? 'private' : 'public'}`, () => assert.equal(isPrivateAddress(ip), blocked));
  }

  it('accepts only http(s) URLs without credentials', () => {
    assert.equal(parseWebhookUrl('https://crm.example.test/hook#frag').toString(), 'https://crm.example.test/hook');
    for (const bad of ['ftp://x.test/', 'file:///etc/passwd', 'javascript:alert(1)', 'not a url', 'https://user:pw@x.test/']) {
      assert.throws(() => parseWebhookUrl(bad), (err: Error & { code?: string }) => err.code === 'WEBHOOK_URL_REFUSED', bad);
    }
  });

  it('refuses loopback and private targets unless allowed, by IP literal or by name', async () => {
    const lookup = async (host: string) => (host === 'sneaky.test' ? [{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.5', family: 4 }] : [{ address: '127.0.0.1', family: 4 }]);
    await assert.rejects(checkWebhookTarget(new URL('http://127.0.0.1:9/x'), { allowPrivate: false }), /private or loopback/);
    await assert.rejects(checkWebhookTarget(new URL('http://[::1]:9/x'), { allowPrivate: false }), /private or loopback/);
    await assert.rejects(checkWebhookTarget(new URL('http://localhost:9/x'), { allowPrivate: false }), /private or loopback/);
    await assert.rejects(checkWebhookTarget(new URL('http://sneaky.test/x'), { allowPrivate: false, lookup }), /10\.0\.0\.5/);
    assert.deepEqual((await checkWebhookTarget(new URL('http://127.0.0.1:9/x'), { allowPrivate: true })).addresses, [{ address: '127.0.0.1', family: 4 }]);
  });

  it('connects to the addresses checked, never to what DNS answers later (DNS rebinding)', async () => {
    const answers = [[{ address: '93.184.216.34', family: 4 }], [{ address: '127.0.0.1', family: 4 }]];
    let asked = 0;
    const target = await checkWebhookTarget(new URL('http://hooks.test/x'), { allowPrivate: false, lookup: async () => answers[Math.min(asked++, 1)]! });
    const lookup = checkedLookup(target);
    const all = await new Promise((resolve) => lookup('hooks.test', { all: true }, (_e, a) => resolve(a)));
    const one = await new Promise((resolve) => lookup('hooks.test', {}, (_e, a) => resolve(a)));
    assert.deepEqual(all, [{ address: '93.184.216.34', family: 4 }]);
    assert.equal(one, '93.184.216.34');
    assert.equal(asked, 1, 'DNS is asked once, at the check');
    await assert.rejects(checkWebhookTarget(new URL('http://nowhere.test/x'), { allowPrivate: false, lookup: async () => [] }), /host nowhere\.test has no address/);
    await assert.rejects(checkWebhookTarget(new URL('http://nowhere.test/x'), { allowPrivate: false, lookup: async () => { throw Object.assign(new Error('x'), { code: 'ENOTFOUND' }); } }), /host nowhere\.test cannot be resolved \(ENOTFOUND\)/);
  });
});

describe('crm/webhook-signature', () => {
  const secret = 'whsec_test';
  const body = '{"id":"evt_1"}';

  it('signs t.body with HMAC-SHA256 and verifies within the tolerance', () => {
    const header = signatureHeader(secret, body, 1_800_000_000);
    assert.match(header, /^t=1800000000,v1=[0-9a-f]{64}$/);
    assert.equal(verifySignature(secret, body, header, { now: 1_800_000_100 }), true);
    assert.equal(verifySignature(secret, body + ' ', header, { now: 1_800_000_100 }), false, 'body changed');
    assert.equal(verifySignature('whsec_other', body, header, { now: 1_800_000_100 }), false, 'other secret');
    assert.equal(verifySignature(secret, body, header, { now: 1_800_000_301 }), false, 'too old (replay)');
    assert.equal(verifySignature(secret, body, header.replace('t=1800000000', 't=1800000050'), { now: 1_800_000_100 }), false, 'timestamp is signed');
    assert.equal(verifySignature(secret, body, 'garbage', { now: 1_800_000_100 }), false);
    const rotated = `t=1800000000,v1=${'0'.repeat(64)},v1=${computeSignature(secret, 1_800_000_000, body)}`;
    assert.equal(verifySignature(secret, body, rotated, { now: 1_800_000_000 }), true, 'any v1 may match');
  });
});
