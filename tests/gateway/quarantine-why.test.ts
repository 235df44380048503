import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import request from 'supertest';
import { createApiToken, createMailAccount, setPassword } from '../../gateway/accounts';
import { buildApp, PASSWORD, signIn } from '../admin/fixtures';
import { GATEWAY_DOMAIN, useGatewayWorld } from '../support/gateway';
import { generateDkimKey, plainMessage, publishDkim, signMessage } from '../support/mail-auth';
import { sendMail } from '../support/smtp';

/**
 * An employee opens Quarantine and must decide, message by message, what to release. Each held message
 * has to say why it was held in words that need no SPF/DKIM/DMARC knowledge — in the list, without
 * opening it (there may be hundreds), on the message page, and in the API — for the realistic cases:
 * a forged From of the business's own domain, mail sent straight to the forwarding address, forwarded
 * mail whose mailbox domain's SPF leaves out the provider, and a mailing list footer that broke the
 * business's own DKIM signature.
 */
describe('quarantine: why each message was held, in plain words', function () {
  this.timeout(90_000);
  const world = useGatewayWorld('gw_quarantine_why');
  const id = () => `${crypto.randomUUID()}@mail.test`;
  const key = generateDkimKey();

  async function send(envelopeFrom: string, raw: Buffer, to: string) {
    const sent = await sendMail(world.gw.port, { from: envelopeFrom, to: [to] }, raw);
    assert.equal(sent.ok, true, sent.response);
    const messageId = /Message-ID: <([^>]+)>/i.exec(raw.toString())![1];
    return (await world.store.models.Message.findOne({ messageId }).lean())!;
  }

  it('explains the forged own domain, the direct send, the SPF gap and the broken list signature, in the list, on the page and in the API', async () => {
    const { bob, dns } = world;
    dns.setTxt('_dmarc.acme.test', 'v=DMARC1; p=reject');
    dns.setTxt('evil.test', 'v=spf1 ip4:127.0.0.1 -all');
    dns.setTxt('customer.test', 'v=spf1 ip4:127.0.0.1 -all');
    dns.setTxt('_dmarc.customer.test', 'v=DMARC1; p=reject');
    dns.setTxt('lists.test', 'v=spf1 ip4:127.0.0.1 -all');
    publishDkim(dns, key, ['acme.test', 'customer.test']);

    // 1. "CEO" writing from the business's own domain, from someone else's server.
    const forged = await send('billing@evil.test',
      plainMessage({ from: 'CEO <ceo@acme.test>', to: 'bob@acme.test', subject: 'Urgent wire transfer', messageId: id() }), bob.forwardingAddress);
    // 2. A customer who learnt the forwarding address and writes to it directly (authenticated as customer.test).
    const direct = await send('sales@customer.test',
      await signMessage(plainMessage({ from: 'Sales <sales@customer.test>', to: bob.forwardingAddress, subject: 'Our offer', messageId: id() }), key, 'customer.test'),
      bob.forwardingAddress);
    // 3. Carol's mailbox domain beta.test forgot to list its provider in SPF: Gmail's forwarded copy fails.
    const owner = (await world.store.models.User.findById(bob.userId).lean())!;
    const carol = await createMailAccount(world.store, owner._id.toString(), 'carol@beta.test', { gatewayDomain: GATEWAY_DOMAIN });
    dns.setTxt('beta.test', 'v=spf1 ip4:192.0.2.10 -all');
    const local = carol.forwardingAddress.split('@')[0];
    const spfGap = await send(`carol+caf_=${local}=${GATEWAY_DOMAIN}@beta.test`,
      plainMessage({ from: 'Alice <alice@customer.test>', to: 'carol@beta.test', subject: 'Invoice 42', messageId: id() }), carol.forwardingAddress);
    // 4. A colleague's signed post to a mailing list, which appended its footer (body hash no longer matches).
    const signed = await signMessage(plainMessage({ from: 'Dev <dev@acme.test>', to: 'team@lists.test', subject: 'Release notes', messageId: id(), body: 'Notes.' }), key, 'acme.test');
    const listed = await send('team-bounces@lists.test', Buffer.concat([signed, Buffer.from('--\r\nteam mailing list\r\n')]), bob.forwardingAddress);

    for (const held of [forged, direct, spfGap, listed]) assert.equal(held.status, 'quarantine', held.subject ?? '');
    const expected: Array<[typeof forged, RegExp]> = [
      [forged, /claims to come from your own domain acme\.test, but it was not sent through your mail provider: it is most likely forged/],
      [direct, /sent straight to the Postroom forwarding address\. The sender&#39;s domain customer\.test did authenticate it/],
      [spfGap, /the SPF record of beta\.test probably leaves out your mail provider/],
      [listed, /carries the signature of your domain acme\.test, but the message was changed after it was signed \(a mailing list footer/],
    ];

    await setPassword(world.store, owner._id, PASSWORD);
    const app = buildApp(world.store).app;
    const { agent, csrf } = await signIn(app, owner.email);
    const list = await agent.get('/?status=quarantine').expect(200);
    for (const [held, why] of expected) {
      const row = new RegExp(`href="/messages/${held._id.toString()}">([\\s\\S]*?)</a>`).exec(list.text)?.[1] ?? '';
      assert.match(row, why, `the Quarantine row of "${held.subject}" says why it was held`);
      const page = await agent.get(`/messages/${held._id.toString()}`).expect(200);
      const box = /id="why-held">([\s\S]*?)<\/div>/.exec(page.text)?.[1] ?? '';
      assert.match(box, why, `the page of "${held.subject}" says why`);
      assert.match(box, /Technical details: authentication failed: /, 'with the exact grounds after it');
    }

    const token = (await createApiToken(world.store, owner.email, { name: 'why' }, {})).token;
    const api = await request(app).get('/api/v1/messages?status=quarantine').set('Authorization', `Bearer ${token}`).expect(200);
    const rows = (api.body as { messages: Array<{ id: string; whyHeld: string }> }).messages;
    for (const [held, why] of expected) {
      const row = rows.find((m) => m.id === held._id.toString());
      assert.match(row?.whyHeld.replace(/'/g, '&#39;') ?? '', why, 'the API list says the same');
    }
    const one = await request(app).get(`/api/v1/messages/${forged._id.toString()}`).set('Authorization', `Bearer ${token}`).expect(200);
    assert.match((one.body as { auth: { explanation: string } }).auth.explanation, /most likely forged/);

    // Released, it is an inbox message: the list no longer calls it held.
    await agent.post(`/messages/${direct._id.toString()}/release`).type('form').send({ _csrf: csrf }).expect(303);

    // The account page's "held in Quarantine: open it" goes once that message is released or deleted (it was false, its link dead).
    const notice = async (accountId: string) => /id="forwarding-quarantined">([\s\S]*?)<\/div>/.exec((await agent.get(`/preferences/email/${accountId}/forwarding-state`).expect(200)).text)?.[1] ?? '';
    assert.ok((await notice(carol.id)).includes(`href="/messages/${spfGap._id.toString()}"`), 'Carol\'s page points to the held message');
    assert.ok((await notice(bob.accountId.toString())).includes(`href="/messages/${listed._id.toString()}"`), 'Bob\'s page points to his latest held message');
    await agent.post(`/messages/${spfGap._id.toString()}/release`).type('form').send({ _csrf: csrf }).expect(303);
    await agent.post(`/messages/${listed._id.toString()}/delete`).type('form').send({ _csrf: csrf }).expect(303);
    assert.equal(await notice(carol.id), '', 'released: no longer "held in Quarantine"');
    assert.equal(await notice(bob.accountId.toString()), '', 'deleted: no link to a message that is gone');
    const inbox = await agent.get('/').expect(200);
    const row = new RegExp(`href="/messages/${direct._id.toString()}">([\\s\\S]*?)</a>`).exec(inbox.text)?.[1] ?? '';
    assert.match(row, /Our offer/);
    assert.doesNotMatch(row, /why-held/);
  });

  it('says that a broken or missing SPF record of the mailbox domain, or a missing or revoked DKIM key of ours, held it — not that it was sent straight or altered', async () => {
    const { bob, dns } = world;
    const owner = (await world.store.models.User.findById(bob.userId).lean())!;
    // Dana's mailbox domain publishes two SPF records (RFC 7208 §4.5: permerror): every forwarded copy fails.
    const dana = await createMailAccount(world.store, owner._id.toString(), 'dana@delta.test', { gatewayDomain: GATEWAY_DOMAIN });
    dns.setTxt('delta.test', ['v=spf1 ip4:127.0.0.1 -all', 'v=spf1 include:_spf.provider.test -all']);
    const local = dana.forwardingAddress.split('@')[0];
    const brokenSpf = await send(`dana+caf_=${local}=${GATEWAY_DOMAIN}@delta.test`,
      plainMessage({ from: 'Alice <alice@customer.test>', to: 'dana@delta.test', subject: 'Order 7', messageId: id() }), dana.forwardingAddress);
    // The newsletter system signs as news.acme.test with a key whose DNS record was revoked (empty p=, RFC 6376 §3.6.1), or was never published.
    dns.setTxt('s1._domainkey.news.acme.test', 'v=DKIM1; k=rsa; p=');
    dns.setTxt('lists.test', 'v=spf1 ip4:127.0.0.1 -all');
    const revoked = await send('news@lists.test',
      await signMessage(plainMessage({ from: 'News <news@customer.test>', to: 'bob@acme.test', subject: 'Newsletter', messageId: id() }), key, 'news.acme.test'), bob.forwardingAddress);
    const unpublished = await send('news@lists.test',
      await signMessage(plainMessage({ from: 'News <news@customer.test>', to: 'bob@acme.test', subject: 'Newsletter 2', messageId: id() }), key, 'letters.acme.test'), bob.forwardingAddress);

    // Erin's mailbox domain publishes no SPF record at all; Frank's lists neither his provider nor a verdict for others (?all).
    const forwardedFrom = async (email: string, subject: string) => {
      const account = await createMailAccount(world.store, owner._id.toString(), email, { gatewayDomain: GATEWAY_DOMAIN });
      const [localPart, domain] = email.split('@');
      return send(`${localPart}+caf_=${account.forwardingAddress.split('@')[0]}=${GATEWAY_DOMAIN}@${domain}`,
        plainMessage({ from: 'Alice <alice@customer.test>', to: email, subject, messageId: id() }), account.forwardingAddress);
    };
    dns.setA('echo.test', '192.0.2.50');
    const noSpf = await forwardedFrom('erin@echo.test', 'Order 8');
    dns.setTxt('foxtrot.test', 'v=spf1 ip4:192.0.2.51 ?all');
    const neutralSpf = await forwardedFrom('frank@foxtrot.test', 'Order 9');

    const cases: Array<[typeof brokenSpf, RegExp]> = [
      [noSpf, /^The domain echo\.test publishes no SPF record, so nothing shows that the server that passed it on may send mail for echo\.test/],
      [neutralSpf, /^The SPF record of foxtrot\.test neither allows nor refuses the server that passed it on \(SPF neutral\)/],
      [brokenSpf, /^The SPF record of delta\.test is broken \(multiple SPF records found for delta\.test\)/],
      [revoked, /^It carries the signature of your domain news\.acme\.test, but news\.acme\.test publishes no usable key for it \(s1\._domainkey\.news\.acme\.test: revoked\)/],
      [unpublished, /^It carries the signature of your domain letters\.acme\.test, but letters\.acme\.test publishes no usable key for it \(s1\._domainkey\.letters\.acme\.test: not found\)/],
    ];
    for (const [held, why] of cases) {
      assert.equal(held.status, 'quarantine', held.subject ?? '');
      assert.match(held.auth?.explanation ?? '', why, held.subject ?? '');
      assert.doesNotMatch(held.auth?.explanation ?? '', /sent straight|changed after it was signed|forged/);
    }
  });
});
