import { strict as assert } from 'node:assert';
import { domainAndParents, normalizeAddress, normalizeDomain, unicodeDomain } from '../../gateway/crm/address';
import { builtinFreemailDomains, freemailChecker } from '../../gateway/crm/freemail';

describe('crm/address: normalisation', () => {
  const cases: Array<[string, boolean, string | null]> = [
    ['Bob@Acme.COM', false, 'bob@acme.com'],
    ['  bob@acme.com  ', false, 'bob@acme.com'],
    ['Bob Smith <Bob@Acme.com>', false, 'bob@acme.com'],
    ['mailto:bob@acme.com', false, 'bob@acme.com'],
    ['bob+crm@acme.com', false, 'bob+crm@acme.com'],
    ['bob+crm@acme.com', true, 'bob@acme.com'],
    ['Bob+Tag+More@acme.com', true, 'bob@acme.com'],
    ['+only@acme.com', true, '+only@acme.com'],
    ['bob@Bücher.DE', false, 'bob@xn--bcher-kva.de'],
    ['bob@xn--bcher-kva.de', false, 'bob@xn--bcher-kva.de'],
    ['info@例え.テスト', false, 'info@xn--r8jz45g.xn--zckzah'],
    ['bob@acme.com.', false, 'bob@acme.com'],
    // A Unicode local part typed decomposed (macOS) or composed is one address (NFC).
    ['Zoe\u0308@x.test', false, 'zo\u00eb@x.test'],
    ['ZO\u00cb@x.test', false, 'zo\u00eb@x.test'],
    ['"bob smith"@acme.com', true, '"bob smith"@acme.com'],
    ['bob@localhost', false, null],
    ['bob@', false, null],
    ['@acme.com', false, null],
    ['not an address', false, null],
    ['bob@-acme.com', false, null],
    ['bob@acme..com', false, null],
    ['bob@1.2.3.4', false, null],
    ['', false, null],
  ];
  for (const [input, strip, expected] of cases) {
    it(`${JSON.stringify(input)}${strip ? ' (stripping)' : ''} → ${expected}`, () => {
      assert.equal(normalizeAddress(input, { stripSubaddress: strip }), expected);
      if (expected) assert.equal(normalizeAddress(expected, { stripSubaddress: strip }), expected, 'normalising is idempotent');
    });
  }

  it('normalises domains to A-labels and back to Unicode for display', () => {
    assert.equal(normalizeDomain('Bücher.de'), 'xn--bcher-kva.de');
    assert.equal(normalizeDomain('@Acme.com'), 'acme.com');
    assert.equal(normalizeDomain('acme'), null);
    assert.equal(normalizeDomain('acme .com'), null);
    assert.equal(unicodeDomain('xn--bcher-kva.de'), 'bücher.de');
  });

  it('lists a domain with its parents but never a bare TLD', () => {
    assert.deepEqual(domainAndParents('eu.mail.acme.com'), ['eu.mail.acme.com', 'mail.acme.com', 'acme.com']);
    assert.deepEqual(domainAndParents('acme.com'), ['acme.com']);
  });
});

describe('crm/freemail', () => {
  it('knows the big providers and a few the package misses, in A-label form', () => {
    const list = builtinFreemailDomains();
    for (const domain of ['gmail.com', 'outlook.com', 'yahoo.com', 'hotmail.com', 'icloud.com', 'gmx.de', 'proton.me', 'fastmail.com']) {
      assert.ok(list.has(domain), domain);
    }
    assert.ok(list.size > 1000, `only ${list.size} domains`);
    for (const domain of list) assert.match(domain, /^[a-z0-9.-]+$/, `${domain} is not an A-label domain`);
    assert.ok(!list.has('acme.test'));
  });

  it('is extended per business', () => {
    const isFree = freemailChecker(['Mail.Example-Isp.test']);
    assert.equal(isFree('mail.example-isp.test'), true);
    assert.equal(isFree('gmail.com'), true);
    assert.equal(isFree('acme.test'), false);
  });
});
