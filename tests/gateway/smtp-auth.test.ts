import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { M365_BLOCKED_PROBLEM } from '../../gateway/mail/confirmations';
import { WHOLE_READ_MAX } from '../../gateway/mail/read-once';
import { startDns, type TestDns } from '../support/dns';
import { createEmployeeAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { forwardLikeProvider, generateDkimKey, gmailConfirmationText, plainMessage, publishDkim, signMessage, type DkimKey } from '../support/mail-auth';
import { sendMail, SmtpSession } from '../support/smtp';
import { openTestStore, storedRaw } from '../support/store';

/**
 * SPF, DKIM, DMARC and ARC through the real gateway: a local authoritative
 * DNS server publishes the records, messages are signed at run time with
 * keys generated here, and the verdict, its reasons and the stored
 * Authentication-Results are checked in the database.
 *
 * All test mail comes from 127.0.0.1, so "authorised to send" means "SPF
 * lists ip4:127.0.0.1". The world:
 *   acme.test    account and business domain; SPF allows 127.0.0.1 (its provider)
 *   strict.test  business domain; SPF -all elsewhere; DMARC p=reject; DKIM key
 *   soft.test    business domain; SPF ~all elsewhere
 *   customer.test  an outside sender: SPF 192.0.2.20, DMARC p=reject, DKIM key
 *   evil.test    an attacker's own domain: SPF allows 127.0.0.1
 *   google.com / microsoft.com  providers: DKIM/ARC keys (published by the test DNS)
 */
describe('SMTP gateway: sender authentication and provider notices', function () {
  this.timeout(60000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let testDns: TestDns;
  let gw: TestGateway;
  let key: DkimKey;
  let bob: Awaited<ReturnType<typeof createEmployeeAccount>>;

  before(async () => {
    store = await openTestStore('gw_auth');
    testDns = await startDns();
    key = generateDkimKey();
    testDns.setTxt('acme.test', 'v=spf1 ip4:127.0.0.1 -all');
    testDns.setTxt('_dmarc.acme.test', 'v=DMARC1; p=quarantine');
    testDns.setTxt('strict.test', 'v=spf1 ip4:192.0.2.10 -all');
    testDns.setTxt('_dmarc.strict.test', 'v=DMARC1; p=reject');
    testDns.setTxt('soft.test', 'v=spf1 ip4:192.0.2.10 ~all');
    testDns.setTxt('customer.test', 'v=spf1 ip4:192.0.2.20 -all');
    testDns.setTxt('_dmarc.customer.test', 'v=DMARC1; p=reject');
    testDns.setTxt('evil.test', 'v=spf1 ip4:127.0.0.1 -all');
    testDns.setTxt('other.test', 'v=spf1 ip4:127.0.0.1 -all');
    testDns.setTxt('google.com', 'v=spf1 ip4:127.0.0.1 -all');
    testDns.setTxt('outbound.microsoft.com', 'v=spf1 ip4:127.0.0.1 -all');
    publishDkim(testDns, key, ['acme.test', 'strict.test', 'mail.strict.test', 'customer.test', 'other.test', 'evil.test', 'google.com', 'microsoft.com']);
    bob = await createEmployeeAccount(store, 'bob@acme.test');
    gw = await startTestGateway({ dbName: store.dbName, dnsAddress: testDns.address, env: { BUSINESS_DOMAINS: 'acme.test,strict.test,soft.test' } });
  });

  after(async () => {
    await gw?.close();
    await testDns?.stop();
    await store?.drop();
  });

  /** Send to Bob's forwarding address and return the stored document. */
  async function deliver(envelopeFrom: string, raw: Buffer) {
    const messageId = /Message-ID: <([^>]+)>/i.exec(raw.toString())![1];
    const sent = await sendMail(gw.port, { from: envelopeFrom, to: [bob.forwardingAddress] }, raw);
    assert.equal(sent.ok, true, sent.response);
    const doc = await store.models.Message.findOne({ messageId, mailboxKey: bob.accountId.toString() }).lean();
    assert.ok(doc?.auth, 'stored, with its authentication results');
    return { ...doc, auth: doc.auth };
  }

  const id = () => `${crypto.randomUUID()}@test.example`;

  describe('SPF', () => {
    it('pass: the envelope domain (a business domain) authorises the client → inbox', async () => {
      const doc = await deliver('alice@acme.test', plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'spf pass', messageId: id() }));
      assert.equal(doc.auth.spf, 'pass');
      assert.equal(doc.auth.verdict, 'pass');
      assert.equal(doc.status, 'inbox');
    });

    it('fail: -all for our domain → quarantined, with the reason', async () => {
      const doc = await deliver('alice@strict.test', plainMessage({ from: 'alice@strict.test', to: 'bob@acme.test', subject: 'spf fail', messageId: id() }));
      assert.equal(doc.auth.spf, 'fail');
      assert.equal(doc.auth.verdict, 'fail');
      assert.equal(doc.status, 'quarantine');
      assert.match(doc.quarantineReason, /^authentication failed: nothing shows it came through the mailbox's provider or the business: no SPF pass, DKIM signature or trusted forwarder's ARC seal for acme\.test, strict\.test, soft\.test \(spf=fail \(strict\.test\)/);
      assert.match(doc.auth.results, /spf=fail/);
    });

    it('pass: an internationalised envelope domain (SMTPUTF8, U-label) is checked in its A-label form', async () => {
      // RFC 8616 §3 / RFC 7208 §4.3: SPF is looked up under the A-label. The provider of jürgen@bücher.test forwards with
      // the mailbox's own domain in the envelope, written as the user wrote it.
      testDns.setTxt('xn--bcher-kva.test', 'v=spf1 ip4:127.0.0.1 -all');
      const juergen = await createEmployeeAccount(store, 'juergen@bücher.test');
      const messageId = id();
      const { session } = await SmtpSession.open(gw.port);
      try {
        assert.equal((await session.command('EHLO mail.bücher.test')).code, 250);
        assert.equal((await session.command(`MAIL FROM:<juergen+caf_=${juergen.forwardingAddress.split('@')[0]}=gw.test@bücher.test> SMTPUTF8`)).code, 250);
        assert.equal((await session.command(`RCPT TO:<${juergen.forwardingAddress}>`)).code, 250);
        const reply = await session.data(plainMessage({ from: 'carol@customer.test', to: 'juergen@bücher.test', subject: 'idn envelope', messageId }));
        assert.equal(reply.code, 250, reply.text);
      } finally {
        await session.quit();
      }
      const doc = (await store.models.Message.findOne({ messageId }).lean())!;
      assert.equal(doc.auth?.spf, 'pass', doc.auth?.reason);
      assert.equal(doc.auth?.verdict, 'pass');
      assert.equal(doc.status, 'inbox');
    });

    it('softfail: ~all → quarantined', async () => {
      const doc = await deliver('alice@soft.test', plainMessage({ from: 'alice@soft.test', to: 'bob@acme.test', subject: 'spf softfail', messageId: id() }));
      assert.equal(doc.auth.spf, 'softfail');
      assert.equal(doc.status, 'quarantine');
    });
  });

  describe('DKIM and DMARC', () => {
    it('pass: a valid signature of our domain passes even when SPF fails', async () => {
      const raw = await signMessage(plainMessage({ from: 'alice@strict.test', to: 'bob@acme.test', subject: 'dkim pass', messageId: id() }), key, 'strict.test');
      const doc = await deliver('alice@strict.test', raw);
      assert.equal(doc.auth.spf, 'fail');
      assert.equal(doc.auth.dkim, 'pass');
      assert.equal(doc.auth.dmarc, 'pass');
      assert.equal(doc.auth.verdict, 'pass');
      assert.match(doc.auth.reason, /DKIM signature of strict\.test verified/);
      assert.equal(doc.status, 'inbox');
    });

    it('verifies and stores byte for byte large signed mail, read once whole (1.5 MB) or streamed (3 MB), and catches a change deep in it', async () => {
      const body = (bytes: number) => Array.from({ length: Math.ceil(bytes / 78) }, (_, i) => `line ${i} of the quarterly figures, padded to a realistic width ........`.slice(0, 76)).join('\r\n');
      for (const size of [WHOLE_READ_MAX * 0.75, WHOLE_READ_MAX * 1.5]) {
        const raw = await signMessage(plainMessage({ from: 'alice@strict.test', to: 'bob@acme.test', subject: `large ${size}`, messageId: id(), body: body(size) }), key, 'strict.test');
        const doc = await deliver('alice@strict.test', raw);
        assert.equal(doc.auth.dkim, 'pass', `${raw.length} bytes`);
        assert.equal(doc.auth.verdict, 'pass');
        assert.ok((await storedRaw(store, doc._id)).subarray(-raw.length).equals(raw), `${raw.length} bytes stored as sent`);
        // Four bytes changed far past the first 64 KB slice: the body hash must no longer match (a new
        // Message-ID, in a signed header too, only tells the two copies apart here).
        const tampered = Buffer.from(raw);
        const at = tampered.indexOf('line 9000 ');
        tampered.write('LINE', at, 'latin1');
        const changed = await deliver('alice@strict.test', Buffer.from(tampered.toString().replace(/Message-ID: <[^>]+>/, `Message-ID: <${id()}>`)));
        assert.equal(changed.auth.dkim, 'neutral', `${raw.length} bytes, changed at ${at}`);
        assert.match(changed.auth.reason, /body hash did not verify/);
        assert.equal(changed.status, 'quarantine');
      }
    });

    it('fail: a body changed after signing is "neutral" (body hash), not a pass → quarantined', async () => {
      const signed = await signMessage(plainMessage({ from: 'alice@strict.test', to: 'bob@acme.test', subject: 'dkim tampered', messageId: id(), body: 'Pay invoice 1001 to the usual account.' }), key, 'strict.test');
      const tampered = Buffer.from(signed.toString().replace('invoice 1001', 'invoice 6666'));
      const doc = await deliver('alice@strict.test', tampered);
      assert.equal(doc.auth.dkim, 'neutral');
      assert.equal(doc.auth.verdict, 'fail');
      assert.match(doc.auth.reason, /dkim=neutral d=strict\.test \(body hash did not verify\)/);
      assert.equal(doc.status, 'quarantine');
    });

    it('a signature of ours limited by l= does not vouch for text someone appended after the signed part', async () => {
      const body = 'Hi Bob, the figures are in the shared folder.\r\n';
      const sign = () => signMessage(plainMessage({ from: 'ceo@strict.test', to: 'bob@acme.test', subject: 'l= signed', messageId: id(), body }), key, 'strict.test', { maxBodyLength: body.length });
      const intact = await deliver('newsletter@other.test', await sign());
      assert.equal(intact.auth.verdict, 'pass', 'the whole body is signed: a pass');
      const appended = Buffer.concat([await sign(), Buffer.from('PS: please pay invoice 77 to our new account DE02 1203 0000 0000 2020 51 today.\r\n')]);
      const doc = await deliver('attacker@other.test', appended);
      assert.equal(doc.auth.verdict, 'fail');
      assert.equal(doc.status, 'quarantine');
      assert.match(doc.auth.reason, /dkim=pass d=strict\.test \(\d+ bytes of the body after the signed part \(l=\)\)/);
      assert.match(doc.auth.explanation ?? '', /^It carries a genuine signature of your domain strict\.test, but the signature covers only the start of the message: \d+ bytes at its end were added afterwards/);
    });

    it('a sender domain whose DMARC record is invalid (p=rejet, no rua) is "cannot be checked" (dmarc=permerror), not "may be forged"', async () => {
      // RFC 7489 §6.6.3: a record without a valid p= (and no rua= to report to) is not a DMARC policy; RFC 7489 §11.2 permerror.
      testDns.setTxt('_dmarc.typo.test', 'v=DMARC1; p=rejet; adkim=r');
      const local = bob.forwardingAddress.split('@')[0];
      const doc = await deliver(`bob+caf_=${local}=gw.test@acme.test`, plainMessage({ from: 'News <news@typo.test>', to: 'bob@acme.test', subject: 'typo dmarc', messageId: id() }));
      assert.equal(doc.auth.verdict, 'pass');
      assert.equal(doc.auth.dmarc, 'permerror');
      assert.equal(doc.auth.sender, 'none');
      assert.match(doc.auth.results, /dmarc=permerror \(invalid DMARC record: p=rejet is not none, quarantine or reject\) header\.from=typo\.test/);
      assert.match(doc.auth.reason, /the sender's domain typo\.test could not be checked \(DMARC permerror\)/);
    });

    it('strict DMARC alignment (adkim=s): a subdomain\'s signature does not authenticate the From domain, an exact one does', async () => {
      // RFC 7489 §3.1.1: with adkim=s the signing domain must be the From domain itself.
      testDns.setTxt('_dmarc.exact.test', 'v=DMARC1; p=reject; adkim=s; aspf=s');
      publishDkim(testDns, key, ['exact.test', 'news.exact.test']);
      const local = bob.forwardingAddress.split('@')[0];
      const forward = async (signer: string, subject: string) =>
        deliver(`bob+caf_=${local}=gw.test@acme.test`, await signMessage(plainMessage({ from: 'ceo@exact.test', to: 'bob@acme.test', subject, messageId: id() }), key, signer));
      const sub = await forward('news.exact.test', 'strict sub');
      assert.equal(sub.auth.verdict, 'pass', 'the path is proven (SPF of acme.test)');
      assert.equal(sub.auth.dmarc, 'fail');
      assert.equal(sub.auth.sender, 'fail');
      assert.match(sub.auth.results, /dmarc=fail \(strict alignment: adkim=s, aspf=s\) header\.from=exact\.test/);
      const exact = await forward('exact.test', 'strict exact');
      assert.equal(exact.auth.dmarc, 'pass');
      assert.equal(exact.auth.sender, 'pass');
    });

    it('DMARC alignment: a valid signature of another domain does not vouch for a business-domain From', async () => {
      const raw = await signMessage(plainMessage({ from: 'ceo@strict.test', to: 'bob@acme.test', subject: 'unaligned dkim', messageId: id() }), key, 'other.test');
      const doc = await deliver('bounce@other.test', raw);
      assert.equal(doc.auth.dkim, 'pass');
      assert.equal(doc.auth.spf, 'pass', 'SPF passes for other.test');
      assert.equal(doc.auth.dmarc, 'fail');
      assert.equal(doc.auth.verdict, 'fail');
      assert.equal(doc.status, 'quarantine');
    });

    it('DMARC alignment: a subdomain signature (relaxed alignment) passes', async () => {
      const raw = await signMessage(plainMessage({ from: 'ceo@strict.test', to: 'bob@acme.test', subject: 'aligned subdomain dkim', messageId: id() }), key, 'mail.strict.test');
      const doc = await deliver('bounce@other.test', raw);
      assert.equal(doc.auth.dmarc, 'pass');
      assert.equal(doc.auth.verdict, 'pass');
      assert.match(doc.auth.reason, /DKIM signature of mail\.strict\.test verified/);
    });
  });

  describe('forwarded mail', () => {
    it('passes a Gmail-style forward (+caf_ envelope, original DKIM intact, ARC) and marks forwarding verified', async () => {
      const original = await signMessage(plainMessage({ from: 'Carol <carol@customer.test>', to: 'bob@acme.test', subject: 'forwarded by gmail', messageId: id() }), key, 'customer.test');
      // Google received it from the customer's server (192.0.2.20), authenticated and sealed it.
      const forwarded = await forwardLikeProvider(original, { testDns, key, sealer: 'google.com', originIp: '192.0.2.20', originSender: 'carol@customer.test' });
      const local = bob.forwardingAddress.split('@')[0];
      const doc = await deliver(`bob+caf_=${local}=gw.test@acme.test`, forwarded);
      assert.equal(doc.auth.verdict, 'pass');
      assert.equal(doc.auth.spf, 'pass');
      assert.equal(doc.auth.dkim, 'pass', 'the original signature survived forwarding');
      assert.equal(doc.auth.arc, 'pass');
      assert.equal(doc.auth.dmarc, 'pass');
      assert.match(doc.auth.reason, /SPF pass for envelope domain acme\.test; the sender's domain customer\.test is authenticated \(DMARC pass\)/);
      assert.equal(doc.auth.sender, 'pass');
      assert.equal(doc.status, 'inbox');
      assert.equal(doc.from.address, 'carol@customer.test');
      const account = await store.models.MailAccount.findById(bob.accountId).lean();
      assert.equal(account?.forwarding?.status, 'verified');
      assert.ok(account?.forwarding?.verifiedAt instanceof Date);
      assert.ok(account?.forwarding?.lastForwardedAt instanceof Date);
    });

    it('passes a forged From that Bob\'s own provider forwarded, but records and says that the sender is not verified', async () => {
      // Someone sent "the customer's CEO" to Bob from a server customer.test does not authorise; Google took it, recorded
      // spf=fail dmarc=fail in its ARC set, and forwarded it. The path is Bob's (pass); the author is not who it claims.
      const forged = plainMessage({ from: 'CEO <ceo@customer.test>', to: 'bob@acme.test', subject: 'urgent wire, forwarded', messageId: id() });
      const forwarded = await forwardLikeProvider(forged, { testDns, key, sealer: 'google.com', originIp: '203.0.113.9', originSender: 'ceo@customer.test' });
      const local = bob.forwardingAddress.split('@')[0];
      const doc = await deliver(`bob+caf_=${local}=gw.test@acme.test`, forwarded);
      assert.equal(doc.auth.verdict, 'pass');
      assert.equal(doc.auth.dmarc, 'fail');
      assert.equal(doc.auth.sender, 'fail');
      assert.match(doc.auth.reason, /the sender's domain customer\.test failed DMARC when google\.com received it: the From address may be forged/);
    });

    it('passes a trusted forwarder\'s ARC chain when the envelope is the forwarder\'s own (SRS)', async () => {
      const original = await signMessage(plainMessage({ from: 'carol@customer.test', to: 'bob@acme.test', subject: 'forwarded by microsoft', messageId: id() }), key, 'customer.test');
      const forwarded = await forwardLikeProvider(original, { testDns, key, sealer: 'microsoft.com', originIp: '192.0.2.20', originSender: 'carol@customer.test' });
      const doc = await deliver('SRS0=x1Yz=AB=customer.test=carol@outbound.microsoft.com', forwarded);
      assert.equal(doc.auth.arc, 'pass');
      assert.equal(doc.auth.verdict, 'pass');
      assert.match(doc.auth.reason, /ARC chain of trusted forwarder microsoft\.com validated/);
    });

    it('quarantines the same forward sealed by an untrusted ARC sealer', async () => {
      const original = await signMessage(plainMessage({ from: 'carol@customer.test', to: 'bob@acme.test', subject: 'sealed by evil', messageId: id() }), key, 'customer.test');
      const forwarded = await forwardLikeProvider(original, { testDns, key, sealer: 'evil.test', originIp: '192.0.2.20', originSender: 'carol@customer.test' });
      const doc = await deliver('relay@evil.test', forwarded);
      assert.equal(doc.auth.arc, 'pass');
      assert.equal(doc.auth.verdict, 'fail');
      assert.equal(doc.status, 'quarantine');
    });
  });

  describe('spoofing and the per-business policy', () => {
    it('quarantines a spoofed business-domain sender (default policy) and does not associate it', async () => {
      const doc = await deliver('attacker@evil.test', plainMessage({ from: 'CEO <ceo@acme.test>', to: 'bob@acme.test', subject: 'urgent wire transfer', messageId: id() }));
      assert.equal(doc.auth.verdict, 'fail');
      assert.equal(doc.status, 'quarantine');
      assert.match(doc.quarantineReason, /spf=pass \(evil\.test\)/);
      assert.deepEqual(doc.linkedObjectIds, []);
    });

    it('rejects it with 550 5.7.26 when the business policy is reject, and stores nothing', async () => {
      await store.models.BusinessSettings.updateOne({ _id: 'business' }, { $set: { authPolicy: 'reject', domains: ['acme.test', 'strict.test', 'soft.test'] } }, { upsert: true });
      try {
        const messageId = id();
        // The policy is re-read within seconds.
        let sent;
        for (let attempt = 0; attempt < 20; attempt++) {
          sent = await sendMail(gw.port, { from: 'attacker@evil.test', to: [bob.forwardingAddress] }, plainMessage({ from: 'ceo@acme.test', to: 'bob@acme.test', subject: 'urgent again', messageId: `${attempt}-${messageId}` }));
          if (!sent.ok) break;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
        assert.equal(sent!.ok, false);
        assert.equal(sent!.code, 550);
        assert.match(sent!.response, /550 5\.7\.26 Message rejected: sender authentication failed/);
        const rejectedId = (await store.models.Message.find({ messageId: { $regex: messageId.replace(/[.]/g, '\\.') } }).lean()).map((d) => d.status);
        assert.ok(rejectedId.every((status) => status === 'quarantine'), 'attempts before the policy change were quarantined, the rejected one not stored');
        assert.ok(rejectedId.length < 20);
      } finally {
        await store.models.BusinessSettings.deleteOne({ _id: 'business' });
        // Back to quarantine: wait until the gateway has re-read the policy.
        for (let attempt = 0; attempt < 20; attempt++) {
          const probe = await sendMail(gw.port, { from: 'attacker@evil.test', to: [bob.forwardingAddress] }, plainMessage({ from: 'ceo@acme.test', to: 'bob@acme.test', subject: 'policy probe', messageId: id() }));
          if (probe.ok) break;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
    });
  });

  describe('forwarding confirmations', () => {
    const LINK = 'https://mail-settings.google.com/mail/vf-%5BANGjdJ8wQ%5D-Zr7VbX2mK9';

    async function confirmation(requester: string, code: string, options: { sign?: boolean; subject?: string } = {}) {
      const raw = plainMessage({
        from: 'Gmail Team <forwarding-noreply@google.com>',
        to: bob.forwardingAddress,
        subject: options.subject ?? `(#${code}) Gmail Forwarding Confirmation - Receive Mail from ${requester}`,
        messageId: id(),
        body: gmailConfirmationText(requester, code, bob.forwardingAddress, LINK),
      });
      return options.sign === false ? raw : signMessage(raw, key, 'google.com');
    }

    beforeEach(async () => {
      await store.models.MailAccount.updateOne({ _id: bob.accountId }, { $set: { 'forwarding.status': 'waiting', 'forwarding.confirmationCode': '', 'forwarding.confirmationLink': '' } });
    });

    it('records the code and link of Gmail\'s confirmation on the account', async () => {
      const doc = await deliver('forwarding-noreply@google.com', await confirmation('bob@acme.test', '587463729'));
      assert.equal(doc.kind, 'forwarding-confirmation');
      assert.equal(doc.status, 'inbox');
      assert.equal(doc.auth.verdict, 'pass');
      assert.match(doc.auth.reason, /provider notice \(google\)/);
      assert.deepEqual({ ...doc.confirmation }, { provider: 'google', code: '587463729', link: LINK, requester: 'bob@acme.test' });
      const account = await store.models.MailAccount.findById(bob.accountId).lean();
      assert.equal(account?.forwarding?.status, 'code_received');
      assert.equal(account?.forwarding?.confirmationCode, '587463729');
      assert.equal(account?.forwarding?.confirmationLink, LINK);
      assert.equal(account?.forwarding?.provider, 'google');
    });

    it('reads a confirmation in another language', async () => {
      const doc = await deliver('forwarding-noreply@google.com', await confirmation('bob@acme.test', '314159265', { subject: '(#314159265) Confirmation de transfert Gmail - Recevoir des e-mails de bob@acme.test' }));
      assert.equal(doc.confirmation?.code, '314159265');
      const account = await store.models.MailAccount.findById(bob.accountId).lean();
      assert.equal(account?.forwarding?.confirmationCode, '314159265');
    });

    it('quarantines a confirmation asked for by another mailbox, without showing its code', async () => {
      const doc = await deliver('forwarding-noreply@google.com', await confirmation('mallory@evil.test', '271828182'));
      assert.equal(doc.kind, 'forwarding-confirmation');
      assert.equal(doc.status, 'quarantine');
      assert.match(doc.quarantineReason, /suspicious forwarding confirmation: requested by mallory@evil\.test, not by this account's mailbox bob@acme\.test/);
      assert.equal(doc.confirmation?.code, '');
      assert.equal(doc.confirmation?.requester, 'mallory@evil.test');
      const account = await store.models.MailAccount.findById(bob.accountId).lean();
      assert.equal(account?.forwarding?.status, 'waiting');
      assert.equal(account?.forwarding?.confirmationCode, '');
    });

    it('treats a look-alike without Google\'s signature as failing authentication', async () => {
      const doc = await deliver('forwarding-noreply@google.com', await confirmation('bob@acme.test', '161803398', { sign: false }));
      assert.equal(doc.auth.verdict, 'fail');
      assert.equal(doc.status, 'quarantine');
      assert.equal(doc.kind, 'message');
      const account = await store.models.MailAccount.findById(bob.accountId).lean();
      assert.equal(account?.forwarding?.confirmationCode, '');
    });
  });

  it('recognises Microsoft 365\'s 5.7.520 bounce forwarded by the employee, then recovers on forwarded mail', async () => {
    const bounce = plainMessage({
      from: 'bob@acme.test',
      to: bob.forwardingAddress,
      subject: 'Fwd: Undeliverable: Angebot',
      messageId: id(),
      body: `Delivery has failed to these recipients or groups:\r\n${bob.forwardingAddress}\r\nRemote Server returned '550 5.7.520 Access denied, Your organization does not allow external forwarding.'`,
    });
    const doc = await deliver('bob@acme.test', bounce);
    assert.equal(doc.kind, 'forwarding-blocked');
    let account = await store.models.MailAccount.findById(bob.accountId).lean();
    assert.equal(account?.forwarding?.status, 'blocked');
    assert.equal(account?.forwarding?.problem, M365_BLOCKED_PROBLEM);
    assert.match(account!.forwarding!.problem, /Anti-spam outbound policy/);

    const local = bob.forwardingAddress.split('@')[0];
    await deliver(`bob+caf_=${local}=gw.test@acme.test`, plainMessage({ from: 'carol@customer.test', to: 'bob@acme.test', subject: 'forwarding works again', messageId: id() }));
    account = await store.models.MailAccount.findById(bob.accountId).lean();
    assert.equal(account?.forwarding?.status, 'verified');
    assert.equal(account?.forwarding?.problem, '');
  });
});
