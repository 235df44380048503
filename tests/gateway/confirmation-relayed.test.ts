import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { sealMessage } from 'mailauth';
import { createMailAccount } from '../../gateway/accounts';
import { buildApp, makeUser, signIn, type TestApp } from '../admin/fixtures';
import { startDns, type TestDns } from '../support/dns';
import { GATEWAY_DOMAIN, startTestGateway, type TestGateway } from '../support/gateway';
import { generateDkimKey, gmailConfirmationText, publishDkim, SELECTOR, signMessage, type DkimKey } from '../support/mail-auth';
import { sendMail } from '../support/smtp';
import { openTestStore } from '../support/store';

/**
 * A provider's forwarding confirmation that does not come straight from the
 * provider: the business routes its gateway domain through Microsoft 365
 * (or another trusted forwarder), which rewrites the envelope sender (SRS),
 * wraps every link in Safe Links — so Google's DKIM body hash no longer
 * verifies — and records what it saw on arrival in an ARC set sealed by
 * microsoft.com (RFC 8617). The employee must still see Gmail's code (and
 * the real link), and the confirmation must not count as the first
 * forwarded mail.
 */
describe('forwarding confirmations relayed by a trusted forwarder (ARC + SRS, links rewritten)', function () {
  this.timeout(60_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let testDns: TestDns;
  let gw: TestGateway;
  let testApp: TestApp;
  let key: DkimKey;
  let account: { id: string; forwardingAddress: string };

  before(async () => {
    store = await openTestStore('gw_confirmation_relayed');
    testDns = await startDns();
    key = generateDkimKey();
    testDns.setTxt('google.com', 'v=spf1 ip4:127.0.0.1 -all');
    testDns.setTxt('acme.test', 'v=spf1 ip4:127.0.0.1 -all');
    publishDkim(testDns, key, ['google.com', 'microsoft.com', 'relay.example']);
    const dana = await makeUser(store, 'dana@acme.test');
    const created = await createMailAccount(store, dana.id, 'dana.lee@gmail.com', { gatewayDomain: GATEWAY_DOMAIN });
    account = { id: created.id, forwardingAddress: created.forwardingAddress };
    gw = await startTestGateway({ dbName: store.dbName, dnsAddress: testDns.address });
    testApp = buildApp(store);
  });

  after(async () => {
    await gw?.close();
    await testDns?.stop();
    await store?.drop();
  });

  /** Safe Links: every URL becomes a redirect through Microsoft carrying the original, percent-encoded. */
  const safeLink = (url: string) =>
    `https://eur02.safelinks.protection.outlook.com/?url=${encodeURIComponent(url)}&data=05%7C02%7C%7Cc0ffee%7C72f988bf86f141af91ab2d7cd011db47%7C1%7C0&sdata=Zm9vYmFy%3D&reserved=0`;

  /** What Microsoft 365 hands on: links rewritten, then an ARC set recording Google's DKIM pass on arrival. */
  async function relayThroughMicrosoft(original: Buffer, sealer = 'microsoft.com'): Promise<Buffer> {
    const text = original.toString('utf8');
    const split = text.indexOf('\r\n\r\n');
    const rewritten = text.slice(0, split) + text.slice(split).replace(/https?:\/\/[^\s]+/g, (url) => safeLink(url));
    const seal = await sealMessage(Buffer.from(rewritten), {
      signingDomain: sealer,
      selector: SELECTOR,
      privateKey: key.privateKey,
      authResults: 'mx.microsoft.com; spf=pass (sender IP is 127.0.0.1) smtp.mailfrom=google.com; dkim=pass (signature was verified) header.d=google.com; dmarc=pass action=none header.from=google.com',
      cv: 'none',
    });
    return Buffer.concat([seal, Buffer.from(rewritten)]);
  }

  it('shows Gmail\'s code and the real confirmation link, and leaves forwarding waiting for real forwarded mail', async () => {
    const to = account.forwardingAddress;
    const code = '739104826';
    const link = 'https://mail-settings.google.com/mail/vf-%5BANGjdJ_5Xx0kq7%5D-hGq2W9fQk1LZ0sE7b3mV';
    const messageId = `${crypto.randomUUID()}@google.com`;
    const raw = [
      'From: Gmail Team <forwarding-noreply@google.com>', `To: ${to}`, `Subject: (#${code}) Gmail Forwarding Confirmation - Receive Mail from dana.lee@gmail.com`,
      `Date: ${new Date().toUTCString()}`, `Message-ID: <${messageId}>`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=UTF-8', '',
      gmailConfirmationText('dana.lee@gmail.com', code, to, link), '',
    ].join('\r\n');
    const relayed = await relayThroughMicrosoft(await signMessage(Buffer.from(raw), key, 'google.com'));
    // Microsoft 365's SRS address in the tenant's domain (RFC 7208 §1.2.2 leaves the scheme to the forwarder).
    const sent = await sendMail(gw.port, { from: 'SRS0=Hx4d=7Q=google.com=forwarding-noreply@acme.test', to: [to] }, relayed);
    assert.equal(sent.ok, true, sent.response);

    const doc = await store.models.Message.findOne({ messageId }).lean();
    assert.ok(doc, 'stored');
    assert.match(doc.auth?.results ?? '', /dkim=(neutral|fail)/, 'the relay did break Google\'s DKIM signature');
    assert.equal(doc.kind, 'forwarding-confirmation', 'recognised as Gmail\'s confirmation');
    assert.equal(doc.status, 'inbox', doc.quarantineReason);
    assert.equal(doc.confirmation?.code, code);
    assert.equal(doc.confirmation?.link, link, 'the link Gmail sent, not Microsoft\'s redirect');

    const stored = await store.models.MailAccount.findById(account.id).lean();
    assert.equal(stored?.forwarding?.status, 'code_received', 'the confirmation itself is not forwarded mail');
    assert.equal(stored?.forwarding?.confirmationCode, code);

    const { agent } = await signIn(testApp.app, 'dana@acme.test');
    const page = await agent.get(`/preferences/email/${account.id}`).expect(200);
    assert.match(page.text, new RegExp(`<span class="code" id="confirmation-code">${code}</span>`));
    assert.ok(page.text.includes(`href="${link}"`), 'the account page links to Gmail\'s own confirmation page');
  });

  it('takes no forwarder\'s word for Google\'s signature unless it is a trusted one', async () => {
    const to = account.forwardingAddress;
    const messageId = `${crypto.randomUUID()}@google.com`;
    const raw = [
      'From: Gmail Team <forwarding-noreply@google.com>', `To: ${to}`, 'Subject: (#552211887) Gmail Forwarding Confirmation - Receive Mail from dana.lee@gmail.com',
      `Date: ${new Date().toUTCString()}`, `Message-ID: <${messageId}>`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=UTF-8', '',
      gmailConfirmationText('dana.lee@gmail.com', '552211887', to, 'https://mail-settings.google.com/mail/vf-%5BANGjdJ_f0rg3d%5D-x'), '',
    ].join('\r\n');
    // Anyone can run a relay that seals "dkim=pass header.d=google.com" over a message Google never signed.
    const relayed = await relayThroughMicrosoft(Buffer.from(raw), 'relay.example');
    const sent = await sendMail(gw.port, { from: 'SRS0=Hx4d=7Q=google.com=forwarding-noreply@relay.example', to: [to] }, relayed);
    assert.equal(sent.ok, true, sent.response);
    const doc = await store.models.Message.findOne({ messageId }).lean();
    assert.notEqual(doc?.kind, 'forwarding-confirmation');
    assert.equal(doc?.status, 'quarantine');
    const stored = await store.models.MailAccount.findById(account.id).lean();
    assert.notEqual(stored?.forwarding?.confirmationCode, '552211887');
  });
});
