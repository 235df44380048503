import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { setPassword } from '../../gateway/accounts';
import { buildApp, PASSWORD, signIn } from '../admin/fixtures';
import { startDns, type TestDns } from '../support/dns';
import { createEmployeeAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { forwardLikeProvider, generateDkimKey, gmailConfirmationText, plainMessage, publishDkim, signMessage, type DkimKey } from '../support/mail-auth';
import { sendMail } from '../support/smtp';
import { openTestStore } from '../support/store';

/**
 * DNS faults during sender authentication, through the real gateway and the local DNS server, under
 * the business policy "reject": a lookup that fails for a while (SERVFAIL) must make the sender retry
 * (451 4.4.3 [AUTH01]) when it could have decided the verdict, never turn into a permanent "fail" —
 * a 550 bounce, or under "quarantine" a held message that says "most likely forged" — and the retry
 * after the DNS recovered is stored like any other mail.
 *
 *   acme.test      account and business domain; its SPF includes its provider's record
 *   provider.test  the mailbox provider: _spf.provider.test lists 127.0.0.1
 *   google.com / microsoft.com  providers: DKIM/ARC keys
 *   customer.test  an outside sender with a DKIM key
 */
describe('SMTP gateway: DNS faults during sender authentication', function () {
  this.timeout(30000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let testDns: TestDns;
  let gw: TestGateway;
  let bob: Awaited<ReturnType<typeof createEmployeeAccount>>;
  let key: DkimKey;

  before(async () => {
    store = await openTestStore('gw_auth_dns');
    testDns = await startDns();
    testDns.setTxt('acme.test', 'v=spf1 include:_spf.provider.test -all');
    testDns.setTxt('_spf.provider.test', 'v=spf1 ip4:127.0.0.1 -all');
    testDns.setTxt('customer.test', 'v=spf1 ip4:192.0.2.20 -all');
    testDns.setTxt('outbound.microsoft.com', 'v=spf1 ip4:192.0.2.30 -all');
    key = generateDkimKey();
    publishDkim(testDns, key, ['google.com', 'microsoft.com', 'customer.test', 'client.test']);
    bob = await createEmployeeAccount(store, 'bob@acme.test');
    // The stricter policy: what fails is refused with 550, so a DNS outage taken for a failure would bounce for good.
    await store.models.BusinessSettings.updateOne({ _id: 'business' }, { $set: { authPolicy: 'reject', domains: ['acme.test', 'redirected.test'] } }, { upsert: true });
    gw = await startTestGateway({ dbName: store.dbName, dnsAddress: testDns.address, env: { BUSINESS_DOMAINS: 'acme.test,redirected.test' } });
  });

  after(async () => {
    await gw?.close();
    await testDns?.stop();
    await store?.drop();
  });

  const id = () => `${crypto.randomUUID()}@test.example`;
  const gmailEnvelope = (domain: string) => `bob+caf_=${bob.forwardingAddress.split('@')[0]}=gw.test@${domain}`;

  /** Send while `name` answers SERVFAIL, then again once it answers: 451 first (saying `what` failed), stored in the inbox after. */
  async function retriedAfterOutage(name: string, envelopeFrom: string, raw: Buffer, what: RegExp) {
    const messageId = /Message-ID: <([^>]+)>/i.exec(raw.toString())![1];
    testDns.failing(name);
    try {
      const during = await sendMail(gw.port, { from: envelopeFrom, to: [bob.forwardingAddress] }, raw);
      assert.equal(during.ok, false, `answered during the outage: ${during.response}`);
      assert.equal(during.code, 451, during.response);
      assert.match(during.response, /^451 4\.4\.3 Temporary DNS failure while authenticating the sender \(.* could not be looked up\), please retry \[AUTH01\]/);
      assert.match(during.response, what);
      assert.equal(await store.models.Message.countDocuments({ messageId }), 0, 'nothing stored during the outage');
      // The admin greps the bounce's tag and finds which lookup failed.
      await gw.waitForLog((l) => l.tag === 'AUTH01' && JSON.stringify(l.err ?? '').includes(`${name} TXT ESERVFAIL`));
    } finally {
      testDns.failing(name, false);
    }
    const after = await sendMail(gw.port, { from: envelopeFrom, to: [bob.forwardingAddress] }, raw);
    assert.equal(after.ok, true, after.response);
    const doc = await store.models.Message.findOne({ messageId, mailboxKey: bob.accountId.toString() }).lean();
    assert.equal(doc?.status, 'inbox');
    assert.equal(doc?.auth?.verdict, 'pass');
    return doc!;
  }

  it('a failing SPF include of the provider makes the sender retry, not a quarantined "fail"', async () => {
    const raw = plainMessage({ from: 'carol@customer.test', to: 'bob@acme.test', subject: 'include outage', messageId: id() });
    const doc = await retriedAfterOutage('_spf.provider.test', gmailEnvelope('acme.test'), raw, /\(SPF of acme\.test could not be looked up\)/);
    assert.equal(doc.auth?.spf, 'pass');
  });

  it('a failing SPF redirect target makes the sender retry, not a quarantined "neutral"', async () => {
    testDns.setTxt('redirected.test', 'v=spf1 redirect=_spf.redirect-provider.test');
    testDns.setTxt('_spf.redirect-provider.test', 'v=spf1 ip4:127.0.0.1 -all');
    const raw = plainMessage({ from: 'carol@customer.test', to: 'bob@acme.test', subject: 'redirect outage', messageId: id() });
    const doc = await retriedAfterOutage('_spf.redirect-provider.test', gmailEnvelope('redirected.test'), raw, /\(SPF of redirected\.test could not be looked up\)/);
    assert.equal(doc.auth?.spf, 'pass');
  });

  it('a failing DKIM key lookup of Google makes its forwarding confirmation retry, and the code shows once it arrives', async () => {
    const raw = await signMessage(
      plainMessage({
        from: 'Gmail Team <forwarding-noreply@google.com>',
        to: bob.forwardingAddress,
        subject: '(#424242424) Gmail Forwarding Confirmation - Receive Mail from bob@acme.test',
        messageId: id(),
        body: gmailConfirmationText('bob@acme.test', '424242424', bob.forwardingAddress, 'https://mail-settings.google.com/mail/vf-%5Bx%5D-y'),
      }),
      key,
      'google.com',
    );
    const doc = await retriedAfterOutage('s1._domainkey.google.com', 'forwarding-noreply@google.com', raw, /\(the DKIM key of google\.com could not be looked up\)/);
    assert.equal(doc.kind, 'forwarding-confirmation');
    const account = await store.models.MailAccount.findById(bob.accountId).lean();
    assert.equal(account?.forwarding?.confirmationCode, '424242424');
  });

  it('a failing key lookup of a trusted forwarder\'s ARC seal makes the sender retry, not a quarantined "broken seal"', async () => {
    const original = await signMessage(plainMessage({ from: 'carol@customer.test', to: 'bob@acme.test', subject: 'arc outage', messageId: id() }), key, 'customer.test');
    const forwarded = await forwardLikeProvider(original, { testDns, key, sealer: 'microsoft.com', originIp: '192.0.2.20', originSender: 'carol@customer.test' });
    const doc = await retriedAfterOutage('s1._domainkey.microsoft.com', 'SRS0=x1Yz=AB=customer.test=carol@outbound.microsoft.com', forwarded, /\(the ARC seal key of microsoft\.com could not be looked up\)/);
    assert.equal(doc.auth?.arc, 'pass');
  });

  it('stores forwarded mail whose sender\'s DMARC lookup failed, and the message page says the check failed, not "no DMARC policy"', async () => {
    testDns.setTxt('_dmarc.client.test', 'v=DMARC1; p=reject');
    const raw = await signMessage(plainMessage({ from: 'carol@client.test', to: 'bob@acme.test', subject: 'dmarc outage', messageId: id() }), key, 'client.test');
    const messageId = /Message-ID: <([^>]+)>/i.exec(raw.toString())![1];
    testDns.failing('_dmarc.client.test');
    try {
      const sent = await sendMail(gw.port, { from: gmailEnvelope('acme.test'), to: [bob.forwardingAddress] }, raw);
      assert.equal(sent.ok, true, `the path is proven (SPF of acme.test): a lookup about the author does not hold it back: ${sent.response}`);
    } finally {
      testDns.failing('_dmarc.client.test', false);
    }
    const doc = (await store.models.Message.findOne({ messageId }).lean())!;
    assert.equal(doc.status, 'inbox');
    assert.equal(doc.auth?.dmarc, 'temperror');
    assert.equal(doc.auth?.sender, 'none');

    await setPassword(store, bob.userId, PASSWORD);
    const owner = (await store.models.User.findById(bob.userId).lean())!;
    const { agent } = await signIn(buildApp(store).app, owner.email);
    const page = await agent.get(`/messages/${doc._id.toString()}`).expect(200);
    const sender = /<dt>Sender<\/dt><dd>([^<]*)<\/dd>/.exec(page.text)?.[1] ?? '';
    assert.match(sender, /cannot be checked now: the DMARC lookup of client\.test failed \(DNS\)/);
    assert.doesNotMatch(sender, /no DMARC policy/);
  });
});
