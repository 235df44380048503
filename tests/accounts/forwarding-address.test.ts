import { strict as assert } from 'node:assert';
import { buildForwardingAddress, dropboxAddress, findPreset, readablePart, SERVICE_PRESETS, suggestPreset } from '../../gateway/accounts';

describe('accounts: forwarding addresses (shared contract)', () => {
  const cases: Array<[string, string]> = [
    ['bob@acme.com', 'bob-acme-com'],
    ['Bob.Smith+sales@Acme.co.uk', 'bob-smith-sales-acme-co-uk'],
    ['o\'neil@acme.com', 'o-neil-acme-com'],
    ['a'.repeat(60) + '@acme.com', 'a'.repeat(47)],
  ];
  for (const [email, readable] of cases) {
    it(`${email.slice(0, 30)} → ${readable.slice(0, 30)}`, () => assert.equal(readablePart(email), readable));
  }

  it('is <readable>.<16-character token>@<GATEWAY_DOMAIN>, lower-case, local part within 64 octets (RFC 5321 §4.5.3.1.1)', () => {
    const { forwardingAddress, forwardingToken } = buildForwardingAddress('Bob@Acme.com', 'In.Postroom.Example');
    assert.match(forwardingToken, /^[a-z2-9]{16}$/);
    assert.equal(forwardingAddress, `bob-acme-com.${forwardingToken}@in.postroom.example`);
    const long = buildForwardingAddress('x'.repeat(200) + '@acme.com', 'in.test').forwardingAddress;
    assert.ok(long.split('@')[0].length <= 64);
  });

  it('never repeats a token (random, unguessable)', () => {
    const tokens = new Set(Array.from({ length: 2000 }, () => buildForwardingAddress('bob@acme.com', 'in.test').forwardingToken));
    assert.equal(tokens.size, 2000);
  });

  it('builds the dropbox address', () => {
    assert.equal(dropboxAddress('k7f3q9abcdefghij', 'in.test'), 'dropbox.k7f3q9abcdefghij@in.test');
  });
});

describe('accounts: service presets', () => {
  const expected: Record<string, [string, number]> = {
    gmail: ['imap.gmail.com', 993], outlook: ['outlook.office365.com', 993], yahoo: ['imap.mail.yahoo.com', 993], icloud: ['imap.mail.me.com', 993],
    zoho: ['imap.zoho.com', 993], fastmail: ['imap.fastmail.com', 993], aol: ['imap.aol.com', 993],
  };
  for (const [id, [host, port]] of Object.entries(expected)) {
    it(`${id}: IMAP ${host}:${port} over implicit TLS, plus SMTP for sending`, () => {
      const preset = findPreset(id)!;
      assert.deepEqual(preset.imap, { host, port, tls: 'implicit' });
      assert.ok(preset.smtp && preset.smtp.host.length > 0 && [465, 587].includes(preset.smtp.port));
      assert.ok(preset.forwardingSteps.length >= 2);
    });
  }
  it('promises a confirmation "on this page" only for providers whose notices Postroom reads (gateway/mail/confirmations.ts)', () => {
    const readHere = ['gmail', 'yahoo'];
    for (const preset of SERVICE_PRESETS) {
      const promises = preset.forwardingSteps.some((step) => /appears on this page/.test(step));
      assert.equal(promises, readHere.includes(preset.id), `${preset.id}: ${preset.forwardingSteps.join(' ')}`);
    }
    assert.ok(findPreset('zoho')!.forwardingSteps.some((step) => /Quarantine/.test(step)), 'Zoho\'s own notice waits in Quarantine');
  });

  it('tells a first-timer where forwarding or passwords will not work, and what to do instead', () => {
    assert.match(findPreset('yahoo')!.forwardingSteps[0], /needs Yahoo Mail Plus.*IMAP Support/, 'free Yahoo accounts have no forwarding since 2021');
    assert.ok(findPreset('gmail')!.forwardingSteps.some((step) => /Google Workspace admin has turned automatic forwarding off/.test(step)));
    assert.match(findPreset('outlook')!.passwordHint, /no longer accept a password \(not even an app password\).*Sign in with Microsoft/);
  });

  it('has Custom with no fixed server, and suggests presets from the mailbox domain', () => {
    assert.equal(findPreset('custom')!.imap, null);
    assert.deepEqual(SERVICE_PRESETS.map((p) => p.id), ['gmail', 'outlook', 'yahoo', 'icloud', 'zoho', 'fastmail', 'aol', 'custom']);
    assert.equal(suggestPreset('bob@gmail.com').id, 'gmail');
    assert.equal(suggestPreset('bob@HOTMAIL.com').id, 'outlook');
    assert.equal(suggestPreset('bob@acme.com').id, 'custom');
  });
});
