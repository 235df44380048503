import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { createMailAccount } from '../../gateway/accounts';
import { buildApp, makeUser, signIn, type TestApp } from '../admin/fixtures';
import { startDns, type TestDns } from '../support/dns';
import { GATEWAY_DOMAIN, startTestGateway, type TestGateway } from '../support/gateway';
import { generateDkimKey, publishDkim, signMessage, type DkimKey } from '../support/mail-auth';
import { sendMail } from '../support/smtp';
import { openTestStore } from '../support/store';

/**
 * A provider's forwarding confirmation from the employee's side: the real
 * gateway receives it, the console shows what to do with it. Yahoo (and
 * Gmail when it sends no code) confirm by link only; the account page, the
 * inbox and the message must then show that link, not an empty "code
 * received".
 */
describe('forwarding confirmations in the console (real gateway)', function () {
  this.timeout(60_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let testDns: TestDns;
  let gw: TestGateway;
  let testApp: TestApp;
  let key: DkimKey;
  const accounts: Record<string, { id: string; forwardingAddress: string }> = {};

  before(async () => {
    store = await openTestStore('gw_confirmation_console');
    testDns = await startDns();
    key = generateDkimKey();
    testDns.setTxt('cc.yahoo-inc.com', 'v=spf1 ip4:127.0.0.1 -all');
    testDns.setTxt('google.com', 'v=spf1 ip4:127.0.0.1 -all');
    publishDkim(testDns, key, ['yahoo-inc.com', 'google.com']);
    const carol = await makeUser(store, 'carol@acme.test');
    for (const email of ['carol.ops@yahoo.com', 'carol@acme.test', 'carolsmith@gmail.com']) {
      const account = await createMailAccount(store, carol.id, email, { gatewayDomain: GATEWAY_DOMAIN });
      accounts[email] = { id: account.id, forwardingAddress: account.forwardingAddress };
    }
    gw = await startTestGateway({ dbName: store.dbName, dnsAddress: testDns.address });
    testApp = buildApp(store);
  });

  after(async () => {
    await gw?.close();
    await testDns?.stop();
    await store?.drop();
  });

  async function deliver(envelopeFrom: string, raw: string, domain: string, to: string): Promise<string> {
    const signed = await signMessage(Buffer.from(raw), key, domain);
    const sent = await sendMail(gw.port, { from: envelopeFrom, to: [to] }, signed);
    assert.equal(sent.ok, true, sent.response);
    const messageId = /Message-ID: <([^>]+)>/i.exec(raw)![1];
    const doc = await store.models.Message.findOne({ messageId }).lean();
    assert.equal(doc?.kind, 'forwarding-confirmation', 'recognised as a forwarding confirmation');
    return doc._id.toString();
  }

  it('shows Yahoo\'s link-only verification (HTML only) on the account page, in the inbox and on the message', async () => {
    const to = accounts['carol.ops@yahoo.com'].forwardingAddress;
    const link = `https://mail.yahoo.com/forward/verify?token=${crypto.randomBytes(8).toString('hex')}&lang=en-US`;
    const html = `<table><tr><td><h1>Verify your forwarding address</h1><p>A request was made to forward email from <b>carol.ops@yahoo.com</b> to this address.</p>` +
      `<p><a href="${link.replace(/&/g, '&amp;')}">Verify</a></p><p><a href="https://help.yahoo.com/kb/SLN22028.html">Help</a></p></td></tr></table>`;
    const raw = [
      'From: Yahoo <no-reply@cc.yahoo-inc.com>', `To: ${to}`, 'Subject: Verify your forwarding address', `Date: ${new Date().toUTCString()}`,
      `Message-ID: <${crypto.randomUUID()}@yahoo-inc.com>`, 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', '', html, '',
    ].join('\r\n');
    const id = await deliver('no-reply@cc.yahoo-inc.com', raw, 'yahoo-inc.com', to);
    const href = link.replace(/&/g, '&amp;');

    const { agent } = await signIn(testApp.app, 'carol@acme.test');
    const accountPage = await agent.get(`/preferences/email/${accounts['carol.ops@yahoo.com'].id}`).expect(200);
    assert.ok(accountPage.text.includes(`href="${href}"`), 'the account page links to the verification');
    assert.match(accountPage.text, /Latest confirmation link from Yahoo Mail \(/);
    const inbox = await agent.get('/').expect(200);
    assert.ok(inbox.text.includes(`href="${href}"`), 'the inbox shows the pending verification');
    const message = await agent.get(`/messages/${id}`).expect(200);
    assert.ok(message.text.includes(`href="${href}"`), 'the message page shows the link outside the sandboxed frame');
  });

  it('shows the code when Gmail names the mailbox as the Google account spells it (dots, googlemail.com), but not for another mailbox', async () => {
    const to = accounts['carolsmith@gmail.com'].forwardingAddress;
    const confirmation = (requester: string, code: string) => [
      'From: Gmail Team <forwarding-noreply@google.com>', `To: ${to}`, `Subject: (#${code}) Gmail Forwarding Confirmation - Receive Mail from ${requester}`,
      `Date: ${new Date().toUTCString()}`, `Message-ID: <${crypto.randomUUID()}@google.com>`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '',
      `${requester} has requested to automatically forward mail to your email address ${to}.`, `Confirmation code: ${code}`, '',
      'https://mail-settings.google.com/mail/vf-%5BANGjdJ8xK2%5D-c4Rl0tTe', '',
    ].join('\r\n');
    const id = await deliver('forwarding-noreply@google.com', confirmation('Carol.Smith@googlemail.com', '482913657'), 'google.com', to);
    const stored = await store.models.Message.findById(id).lean();
    assert.equal(stored?.status, 'inbox', stored?.quarantineReason);
    const { agent } = await signIn(testApp.app, 'carol@acme.test');
    const accountPage = await agent.get(`/preferences/email/${accounts['carolsmith@gmail.com'].id}`).expect(200);
    assert.match(accountPage.text, /<span class="code" id="confirmation-code">482913657<\/span>/);

    const other = await deliver('forwarding-noreply@google.com', confirmation('carol.smith.jr@gmail.com', '271828182'), 'google.com', to);
    const suspicious = await store.models.Message.findById(other).lean();
    assert.equal(suspicious?.status, 'quarantine', 'another Gmail mailbox is still not this account');
    assert.equal(suspicious?.confirmation?.code, '');
    assert.match(suspicious?.quarantineReason ?? '', /^suspicious forwarding confirmation: requested by carol\.smith\.jr@gmail\.com/);
    // The account page says it came and where it waits (the requester may be the mailbox behind an alias), without its code.
    const after = await agent.get(`/preferences/email/${accounts['carolsmith@gmail.com'].id}`).expect(200);
    assert.match(after.text, /<span class="code" id="confirmation-code">482913657<\/span>/, 'the genuine code stays');
    const held = /<div class="flash info" role="status" id="forwarding-held">([\s\S]*?)<\/div>/.exec(after.text)?.[1] ?? '';
    assert.match(held, /Gmail sent a forwarding confirmation here \([^)]*\), asked for by <strong>carol\.smith\.jr@gmail\.com<\/strong> rather than carolsmith@gmail\.com/);
    assert.ok(held.includes(`href="/messages/${other}"`), 'links to the held message in Quarantine');
    assert.doesNotMatch(after.text, /271828182/, 'never its code');
  });

  it('says which of the owner\'s accounts a confirmation sent to the wrong forwarding address is for', async () => {
    // Carol pasted the forwarding address of carolsmith@gmail.com into the settings of her carol@acme.test mailbox.
    const to = accounts['carolsmith@gmail.com'].forwardingAddress;
    const raw = [
      'From: Gmail Team <forwarding-noreply@google.com>', `To: ${to}`, 'Subject: (#161803398) Gmail Forwarding Confirmation - Receive Mail from carol@acme.test',
      `Date: ${new Date().toUTCString()}`, `Message-ID: <${crypto.randomUUID()}@google.com>`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '',
      `carol@acme.test has requested to automatically forward mail to your email address ${to}.`, 'Confirmation code: 161803398', '',
      'https://mail-settings.google.com/mail/vf-%5BANGjdJ7wr0ng%5D-Adr3ss', '',
    ].join('\r\n');
    const id = await deliver('forwarding-noreply@google.com', raw, 'google.com', to);
    const held = await store.models.Message.findById(id).lean();
    assert.equal(held?.status, 'quarantine');
    assert.equal(held?.confirmation?.code, '', 'the code still does not confirm forwarding into the wrong account');
    assert.match(held?.quarantineReason ?? '', /forwarding confirmation for your other mail account carol@acme\.test, sent to the forwarding address of carolsmith@gmail\.com: in the provider's settings, use the forwarding address that Preferences → Email shows for carol@acme\.test instead/);
    const { agent } = await signIn(testApp.app, 'carol@acme.test');
    const page = await agent.get(`/messages/${id}`).expect(200);
    assert.match(page.text, /use the forwarding address that Preferences → Email shows for carol@acme\.test instead/);
    // The account page says the same, and never "open it and use its code": that would file carol@acme.test's mail here.
    const accountPage = await agent.get(`/preferences/email/${accounts['carolsmith@gmail.com'].id}/forwarding-state`).expect(200);
    const notice = /id="forwarding-held">([\s\S]*?)<\/div>/.exec(accountPage.text)?.[1] ?? '';
    assert.match(notice, /for your other account <strong>carol@acme\.test<\/strong>:\s+this account's forwarding address was pasted into the settings of carol@acme\.test/);
    assert.doesNotMatch(notice, /use its code/);
  });

  it('shows Gmail\'s confirmation by its provider name, and its link when Gmail sent no code', async () => {
    const to = accounts['carol@acme.test'].forwardingAddress;
    const link = 'https://mail-settings.google.com/mail/vf-%5BANGjdJ9e4eXp5h%5D-158Amv9LHmEse';
    const raw = [
      'From: Gmail Team <forwarding-noreply@google.com>', `To: ${to}`, 'Subject: Gmail Forwarding Confirmation - Receive Mail from carol@acme.test',
      `Date: ${new Date().toUTCString()}`, `Message-ID: <${crypto.randomUUID()}@google.com>`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '',
      'carol@acme.test has requested to automatically forward mail to your', `email address ${to}.`,
      'To allow it, please click the link below to confirm the request:', link,
      'If you do not approve of this request, click:', 'https://mail-settings.google.com/mail/uf-%5BANGjdJ_7_PEARZ%5D-158Amv9LHmEse',
      'Learn more at http://support.google.com/mail/bin/answer.py?answer=184973.', '',
    ].join('\r\n');
    const id = await deliver('forwarding-noreply@google.com', raw, 'google.com', to);

    const { agent } = await signIn(testApp.app, 'carol@acme.test');
    const accountPage = await agent.get(`/preferences/email/${accounts['carol@acme.test'].id}`).expect(200);
    assert.ok(accountPage.text.includes(`href="${link}"`), 'the account page links to the confirmation');
    assert.doesNotMatch(accountPage.text, /uf-%5B/, 'never the link that cancels the request');
    const message = await agent.get(`/messages/${id}`).expect(200);
    assert.match(message.text, /<strong>Gmail<\/strong> sent a forwarding confirmation/, 'the provider by name, not its id "google"');
    assert.ok(message.text.includes(`href="${link}"`));
  });
});
