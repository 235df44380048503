import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { startDns, type TestDns } from '../support/dns';
import { createEmployeeAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { plainMessage } from '../support/mail-auth';
import { sendMail } from '../support/smtp';
import { openTestStore } from '../support/store';

/**
 * DNS faults during sender authentication, through the real gateway and the local DNS server: a
 * lookup that fails for a while (SERVFAIL) must make the sender retry (451 4.4.3 [AUTH01]) when it
 * could have decided the verdict, never turn into a permanent "fail" — a quarantine that says
 * "most likely forged", or a 550 under the reject policy — and the retry after the DNS recovered
 * is stored like any other mail.
 *
 *   acme.test      account and business domain; its SPF includes its provider's record
 *   provider.test  the mailbox provider: _spf.provider.test lists 127.0.0.1
 */
describe('SMTP gateway: DNS faults during sender authentication', function () {
  this.timeout(30000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let testDns: TestDns;
  let gw: TestGateway;
  let bob: Awaited<ReturnType<typeof createEmployeeAccount>>;

  before(async () => {
    store = await openTestStore('gw_auth_dns');
    testDns = await startDns();
    testDns.setTxt('acme.test', 'v=spf1 include:_spf.provider.test -all');
    testDns.setTxt('_spf.provider.test', 'v=spf1 ip4:127.0.0.1 -all');
    bob = await createEmployeeAccount(store, 'bob@acme.test');
    gw = await startTestGateway({ dbName: store.dbName, dnsAddress: testDns.address, env: { BUSINESS_DOMAINS: 'acme.test,redirected.test' } });
  });

  after(async () => {
    await gw?.close();
    await testDns?.stop();
    await store?.drop();
  });

  const id = () => `${crypto.randomUUID()}@test.example`;
  const gmailEnvelope = (domain: string) => `bob+caf_=${bob.forwardingAddress.split('@')[0]}=gw.test@${domain}`;

  /** Send while `name` answers SERVFAIL, then again once it answers: 451 first, stored in the inbox after. */
  async function retriedAfterOutage(name: string, envelopeFrom: string, raw: Buffer) {
    const messageId = /Message-ID: <([^>]+)>/i.exec(raw.toString())![1];
    testDns.failing(name);
    try {
      const during = await sendMail(gw.port, { from: envelopeFrom, to: [bob.forwardingAddress] }, raw);
      assert.equal(during.ok, false, `answered during the outage: ${during.response}`);
      assert.equal(during.code, 451, during.response);
      assert.match(during.response, /^451 4\.4\.3 .*\[AUTH01\]/);
      assert.equal(await store.models.Message.countDocuments({ messageId }), 0, 'nothing stored during the outage');
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
    const doc = await retriedAfterOutage('_spf.provider.test', gmailEnvelope('acme.test'), raw);
    assert.equal(doc.auth?.spf, 'pass');
  });

  it('a failing SPF redirect target makes the sender retry, not a quarantined "neutral"', async () => {
    testDns.setTxt('redirected.test', 'v=spf1 redirect=_spf.redirect-provider.test');
    testDns.setTxt('_spf.redirect-provider.test', 'v=spf1 ip4:127.0.0.1 -all');
    const raw = plainMessage({ from: 'carol@customer.test', to: 'bob@acme.test', subject: 'redirect outage', messageId: id() });
    const doc = await retriedAfterOutage('_spf.redirect-provider.test', gmailEnvelope('redirected.test'), raw);
    assert.equal(doc.auth?.spf, 'pass');
  });
});
