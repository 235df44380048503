/**
 * The console and the API for sending, through the real app (supertest)
 * against the recording SMTP server and the test Dovecot: Authenticate SMTP
 * on the account page, Compose with an attachment, Reply / Reply all /
 * Forward from a message, errors shown with the server's words, the Outbox,
 * and POST /api/v1/accounts/:id/send.
 */
import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import mongoose from 'mongoose';
import request from 'supertest';
import { authenticateMailAccountImap, createApiToken, createMailAccount, createUser, SYSTEM_ACTOR, updateMailAccount } from '../../gateway/accounts';
import type { DovecotServer } from '../support/dovecot';
import { openTestStore } from '../support/store';
import { buildApp, csrfFrom, signIn, storeMessage, type SignedIn, type TestApp } from '../admin/fixtures';
import { simpleParser } from 'mailparser';
import { startOutboxWorker } from '../../gateway/send';
import { GATEWAY_DOMAIN, makeContact, sendableAccount, sendDeps, sharedDovecot, startRecordingSmtp, type RecordingSmtp, type SendFixture, type TestStore } from './support';

describe('send: console and API', function () {
  this.timeout(60_000);
  let store: TestStore;
  let dovecot: DovecotServer;
  let smtp: RecordingSmtp;
  let testApp: TestApp;
  let bob: SendFixture;
  let session: SignedIn;

  before(async () => {
    store = await openTestStore('send_console');
    dovecot = await sharedDovecot();
    smtp = await startRecordingSmtp({ tls: 'starttls' });
    testApp = buildApp(store, { imapTimeoutMs: 5000, env: { SEND_RATE_LIMIT: '50/hour', SMTP_MAX_MESSAGE_SIZE: '1MB' } });
    bob = await sendableAccount(store, testApp.secretBox, { dovecot, smtp, smtpTls: 'starttls' }, { name: 'Bob Sender' });
    session = await signIn(testApp.app, bob.user.email);
  });
  after(async () => {
    await smtp?.stop();
    await store?.drop();
  });
  beforeEach(() => {
    smtp.behaviour.rcpt = undefined;
    smtp.behaviour.data = undefined;
    smtp.behaviour.dataDelayMs = undefined;
  });

  const pageOf = (path: string) => session.agent.get(path).expect(200).then((res) => res.text);

  it('Authenticate SMTP on the account page: the panel, a field error, a failed login with the server\'s text, then success', async () => {
    const account = await createMailAccount(store, bob.user.id, `second-${Date.now()}@acme.test`, { gatewayDomain: GATEWAY_DOMAIN });
    await dovecot.addUser(account.email, 'imap-secret-1');
    const change = { store, secretBox: testApp.secretBox, actor: SYSTEM_ACTOR };
    await updateMailAccount(change, bob.viewer, account.id, { imap: { enabled: true, service: 'custom', host: '127.0.0.1', port: dovecot.tlsPort, tls: 'implicit', username: account.email, password: 'imap-secret-1' } });
    assert.equal((await authenticateMailAccountImap({ ...change, timeoutMs: 5000 }, bob.viewer, account.id)).error, null);

    const page = await pageOf(`/preferences/email/${account.id}`);
    assert.match(page, /<section class="panel" id="smtp">/);
    assert.match(page, /Sending: off/);
    assert.match(page, /id="smtp-authenticate"/);

    // Custom service, sending on, no host: the field is marked.
    const csrf = csrfFrom(page);
    await session.agent.post(`/preferences/email/${account.id}/smtp`).type('form')
      .send({ _csrf: csrf, enabled: 'on', service: 'custom', host: '', port: '', tls: 'starttls', sameCredentials: 'on', action: 'save' }).expect(303);
    const marked = await pageOf(`/preferences/email/${account.id}`);
    assert.match(marked, /id="smtp-host-error">is needed to send/);
    assert.match(marked, /The sending settings were not saved/);

    // The same credentials as IMAP, but the SMTP server does not know them yet: AUTH_FAILED with its text.
    await session.agent.post(`/preferences/email/${account.id}/smtp`).type('form')
      .send({ _csrf: csrf, enabled: 'on', service: 'custom', host: '127.0.0.1', port: String(smtp.port), tls: 'starttls', sameCredentials: 'on', action: 'authenticate' }).expect(303);
    const failed = await pageOf(`/preferences/email/${account.id}`);
    assert.match(failed, /SMTP authentication failed \(AUTH_FAILED\): The server rejected the user name or password: &#34;535 5\.7\.8 Username and Password not accepted&#34;/);
    assert.match(failed, /Sending: failing/);
    assert.doesNotMatch(failed, /imap-secret-1/);

    smtp.addUser(account.email, 'imap-secret-1');
    await session.agent.post(`/preferences/email/${account.id}/smtp`).type('form')
      .send({ _csrf: csrf, enabled: 'on', service: 'custom', host: '127.0.0.1', port: String(smtp.port), tls: 'starttls', sameCredentials: 'on', action: 'authenticate' }).expect(303);
    const ok = await pageOf(`/preferences/email/${account.id}`);
    assert.match(ok, new RegExp(`SMTP authenticated: signed in to 127\\.0\\.0\\.1:${smtp.port}\\. You can send from this account\\.`));
    assert.match(ok, /Sending: authenticated/);
    const compose = await pageOf('/compose');
    assert.match(compose, new RegExp(`<option value="${account.id}"[^>]*>${account.email.replace(/[.]/g, '\\.')}</option>`), 'now offered as a From account');
  });

  it('Compose sends with an attachment (multipart form), then shows the stored message; contacts feed the datalist', async () => {
    await makeContact(store, 'Alice Customer', 'alice@customer.test');
    const page = await pageOf(`/compose?account=${bob.accountId}`);
    assert.match(page, /<datalist id="contact-addresses">[\s\S]*<option value="alice@customer\.test">Alice Customer<\/option>/);
    assert.match(page, new RegExp(`<option value="${bob.accountId}" selected`));
    const before = smtp.received.length;
    const res = await session.agent.post('/compose')
      .field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'Alice Customer <alice@customer.test>').field('cc', '').field('bcc', '')
      .field('subject', 'Price list 2026').field('text', 'Hello Alice,\r\nthe price list is attached.\r\nBob')
      .attach('attachments', Buffer.from('item,price\nwidget,12\n'), { filename: 'prices.csv', contentType: 'text/csv' })
      .expect(303);
    const location = res.headers.location as string;
    assert.match(location, /^\/messages\/[0-9a-f]{24}$/);
    await smtp.waitFor(before + 1);
    const got = smtp.received[before].parsed;
    assert.equal(got.subject, 'Price list 2026');
    assert.equal(got.attachments[0].filename, 'prices.csv');
    assert.equal(got.attachments[0].content.toString(), 'item,price\nwidget,12\n');
    const shown = await pageOf(location);
    assert.match(shown, /Sent from sender-[0-9a-f]+@acme\.test\./);
    assert.match(shown, /<span class="badge blue">Sent<\/span>/);
    assert.match(shown, /prices\.csv/);
  });

  it('lists sent mail by its recipients ("To: …"), not by the user\'s own name on every row; search finds it by recipient', async () => {
    const page = await pageOf(`/compose?account=${bob.accountId}`);
    const res = await session.agent.post('/compose')
      .field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'Alice Customer <alice@customer.test>, carol@customer.test').field('cc', '').field('bcc', '')
      .field('subject', 'Who is it to').field('text', 'x').expect(303);
    const id = /^\/messages\/([0-9a-f]{24})$/.exec(res.headers.location as string)?.[1];
    assert.ok(id);
    const rowOf = (html: string) => new RegExp(`<a class="msg-row[^"]*" href="/messages/${id}">[\\s\\S]*?</a>`).exec(html)?.[0] ?? '';
    for (const path of ['/?source=sent', '/?q=carol%40customer.test']) {
      const row = rowOf(await pageOf(path));
      assert.match(row, /<span class="from" dir="auto" title="alice@customer\.test, carol@customer\.test">To: Alice Customer, carol@customer\.test<\/span>/, path);
    }
  });

  it('the stored copy of a sent message shows its Bcc recipients (the copy that went out does not carry them)', async () => {
    const page = await pageOf(`/compose?account=${bob.accountId}`);
    const before = smtp.received.length;
    const res = await session.agent.post('/compose')
      .field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'alice@customer.test').field('cc', '').field('bcc', 'Boss Person <boss@acme.test>')
      .field('subject', 'Quietly copied').field('text', 'x').expect(303);
    await smtp.waitFor(before + 1);
    assert.deepEqual(smtp.received[before].to.sort(), ['alice@customer.test', 'boss@acme.test']);
    assert.doesNotMatch(smtp.received[before].raw.toString(), /^Bcc:/im);
    assert.match(await pageOf(res.headers.location as string), /<dt>Bcc<\/dt><dd>Boss Person &lt;boss@acme\.test&gt;<\/dd>/);
  });

  it('sends to an internationalised domain (info@müller.test) in its ASCII form, and names a non-ASCII local part as the problem', async () => {
    const page = await pageOf(`/compose?account=${bob.accountId}`);
    const before = smtp.received.length;
    await session.agent.post('/compose')
      .field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'Bäckerei Müller <info@müller.test>').field('subject', 'Brötchen').field('text', 'x')
      .expect(303);
    await smtp.waitFor(before + 1);
    // smtp-server shows the envelope address in Unicode again (it decodes IDNA); the header and the outbox show what was sent.
    assert.match(smtp.received[before].raw.toString(), /^To: =\?UTF-8\?Q\?B=C3=A4ckerei_M=C3=BCller\?= <info@xn--mller-kva\.test>$/m);
    assert.deepEqual((await store.models.Outbox.findOne({ subject: 'Brötchen' }).lean())?.recipients.map((r) => [r.address, r.state]), [['info@xn--mller-kva.test', 'accepted']]);
    const refused = await session.agent.post('/compose')
      .field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'jörg@müller.test').field('subject', 'Brötchen').field('text', 'x')
      .expect(400);
    assert.match(refused.text, /id="compose-to-error">jörg@müller\.test has letters outside ASCII before the @/);
  });

  it('keeps non-ASCII file names of uploaded attachments (browsers send them as UTF-8), in the mail, the stored copy and the re-attach hint', async () => {
    const page = await pageOf(`/compose?account=${bob.accountId}`);
    const before = smtp.received.length;
    const res = await session.agent.post('/compose')
      .field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'alice@customer.test').field('cc', '').field('bcc', '')
      .field('subject', 'Angebot für Müller').field('text', 'Anbei.')
      .attach('attachments', Buffer.from('%PDF-angebot'), { filename: 'Angebot_Müller_日本.pdf', contentType: 'application/pdf' })
      .expect(303);
    await smtp.waitFor(before + 1);
    assert.deepEqual(smtp.received[before].parsed.attachments.map((a) => a.filename), ['Angebot_Müller_日本.pdf']);
    assert.match(await pageOf(res.headers.location as string), /Angebot_Müller_日本\.pdf/);

    smtp.behaviour.data = () => '554 5.7.1 Message rejected as spam';
    const refused = await session.agent.post('/compose')
      .field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'alice@customer.test').field('subject', 'Angebot').field('text', 'x')
      .attach('attachments', Buffer.from('%PDF-angebot'), { filename: 'Größe.pdf', contentType: 'application/pdf' });
    assert.equal(refused.status, 422);
    assert.match(refused.text, /Not sent, so not kept: Größe\.pdf\./);
  });

  it('Send pressed twice for one form (a slow server) sends the message once; both answers show its result', async () => {
    const page = await pageOf(`/compose?account=${bob.accountId}`);
    const sendKey = /name="sendKey" value="([^"]+)"/.exec(page)?.[1] ?? '';
    assert.match(sendKey, /^[0-9a-f-]{36}$/);
    const press = () => session.agent.post('/compose')
      .field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'alice@customer.test').field('cc', '').field('bcc', '')
      .field('subject', 'Only once please').field('text', 'One copy.').field('sendKey', sendKey)
      .expect(303).then((res) => res.headers.location as string);
    smtp.behaviour.dataDelayMs = 1500;
    const before = smtp.received.length;
    const [first, second] = await Promise.all([press(), press()]);
    assert.match(first, /^\/messages\/[0-9a-f]{24}$/);
    assert.equal(second, first, 'the second press answers with the first one\'s result');
    // Both requests have answered, so a second submission would have reached the server by now.
    assert.equal(smtp.received.length - before, 1);
    assert.equal(await store.models.Outbox.countDocuments({ subject: 'Only once please' }), 1);
    assert.match(await pageOf(first), /Sent from sender-[0-9a-f]+@acme\.test\./);

    // A new form (a new key) sends again, as the user asked.
    const again = await pageOf(`/compose?account=${bob.accountId}`);
    assert.notEqual(/name="sendKey" value="([^"]+)"/.exec(again)?.[1], sendKey);
  });

  it('Send pressed again after the server refused the message tries again and shows the refusal again', async () => {
    smtp.behaviour.data = () => '554 5.7.1 Message rejected as spam';
    const page = await pageOf(`/compose?account=${bob.accountId}`);
    const sendKey = /name="sendKey" value="([^"]+)"/.exec(page)?.[1] ?? '';
    const press = () => session.agent.post('/compose')
      .field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'alice@customer.test').field('cc', '').field('bcc', '')
      .field('subject', 'Refused twice').field('text', 'x').field('sendKey', sendKey);
    const [first, second] = await Promise.all([press(), press()]);
    for (const res of [first, second]) {
      assert.equal(res.status, 422);
      assert.match(res.text, /MESSAGE_REFUSED: .*554 5\.7\.1 Message rejected as spam/);
      assert.match(res.text, /value="Refused twice"/, 'the form keeps what was typed');
    }
    assert.equal(await store.models.Outbox.countDocuments({ subject: 'Refused twice', status: 'failed' }), 2);
  });

  it('a refused message with attachments says which files to attach again (a browser does not keep them)', async () => {
    smtp.behaviour.data = () => '554 5.7.1 Message rejected as spam';
    const page = await pageOf(`/compose?account=${bob.accountId}`);
    const res = await session.agent.post('/compose')
      .field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'alice@customer.test').field('cc', '').field('bcc', '')
      .field('subject', 'With files').field('text', 'x')
      .attach('attachments', Buffer.from('%PDF-quote'), { filename: 'quote.pdf', contentType: 'application/pdf' })
      .attach('attachments', Buffer.from('a,b'), { filename: 'prices.csv', contentType: 'text/csv' });
    assert.equal(res.status, 422);
    assert.match(res.text, /id="compose-reattach"[^>]*>Not sent, so not kept: quote\.pdf, prices\.csv\. Attach them again before you press Send\./);
    const clean = await session.agent.post('/compose')
      .field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'alice@customer.test').field('cc', '').field('bcc', '')
      .field('subject', 'Without files').field('text', 'x');
    assert.equal(clean.status, 422);
    assert.doesNotMatch(clean.text, /compose-reattach/, 'no hint when nothing was attached');
  });

  it('Reply / Reply all / Forward from a message page prefill the form; the reply is threaded', async () => {
    const incoming = await storeMessage(store, {
      // Bob had put a dropbox in Cc: the Reply all form must not offer it to the customers.
      from: 'Alice Customer <alice@customer.test>', to: `${bob.email}, carol@customer.test`, subject: 'Re: Order 77', text: 'Can you ship on Friday?', messageId: '<order-77-reply@customer.test>',
      html: '<p>Can you ship on Friday?</p><img src="cid:signature-logo" alt="Alice Co.">',
      headers: { References: '<order-77@acme.test>', Cc: `dropbox.bobs0token@${testApp.config.gatewayDomain}` },
      // The signature logo has a Content-ID and no file name, as mail clients send them.
      attachments: [{ cid: 'signature-logo', content: Buffer.from('PNG-logo'), contentType: 'image/png', filename: false }, { filename: 'po-77.pdf', content: Buffer.from('%PDF-po'), contentType: 'application/pdf' }],
    }, { ownerId: bob.user.id, accountId: bob.accountId, source: 'imap' });
    const message = await pageOf(`/messages/${incoming.id}`);
    for (const action of ['reply', 'reply-all', 'forward']) assert.ok(message.includes(`href="/compose?original=${incoming.id}&amp;action=${action}"`), action);

    const reply = await pageOf(`/compose?original=${incoming.id}&action=reply`);
    assert.match(reply, /id="compose-subject" name="subject" value="Re: Order 77"/);
    assert.match(reply, /id="compose-to" name="to" value="Alice Customer &lt;alice@customer\.test&gt;"/);
    assert.match(reply, /wrote:\n&gt; Can you ship on Friday\?/);
    const replyAll = await pageOf(`/compose?original=${incoming.id}&action=reply-all`);
    assert.match(replyAll, /id="compose-cc" name="cc" value="carol@customer\.test"/, 'the other recipient, not the sender\'s own address');
    const forward = await pageOf(`/compose?original=${incoming.id}&action=forward`);
    assert.match(forward, /value="Fwd: Re: Order 77"/);
    assert.match(forward, /Include the original's attachments:\s*signature-logo\.png, po-77\.pdf/);

    const before = smtp.received.length;
    await session.agent.post('/compose').field('_csrf', csrfFrom(reply)).field('account', bob.accountId).field('to', 'alice@customer.test')
      .field('subject', 'Re: Order 77').field('text', 'Yes, Friday works.\n\n> Can you ship on Friday?').field('original', incoming.id).field('action', 'reply')
      .expect(303);
    await smtp.waitFor(before + 1);
    const threaded = smtp.received[before].parsed;
    assert.equal(threaded.inReplyTo, '<order-77-reply@customer.test>');
    assert.deepEqual(([] as string[]).concat(threaded.references ?? []), ['<order-77@acme.test>', '<order-77-reply@customer.test>']);
    assert.equal(threaded.text?.trim(), 'Yes, Friday works.\n\n> Can you ship on Friday?', 'the quote is what the user left in the form, not added twice');

    await session.agent.post('/compose').field('_csrf', csrfFrom(forward)).field('account', bob.accountId).field('to', 'dave@buyer.test')
      .field('subject', 'Fwd: Re: Order 77').field('text', 'FYI').field('original', incoming.id).field('action', 'forward').field('includeAttachments', 'on')
      .expect(303);
    await smtp.waitFor(before + 2);
    assert.deepEqual(smtp.received[before + 1].parsed.attachments.map((a) => [a.filename, a.content.toString()]), [['signature-logo.png', 'PNG-logo'], ['po-77.pdf', '%PDF-po']], 'the original\'s attachments are forwarded, their bytes intact, a nameless one named after its Content-ID');
  });

  it('Reply to mail logged through the dropbox answers from the account that wrote it, not the first in the list', async () => {
    // A second sendable account of Bob's whose address sorts after the first one.
    const zed = await sendableAccount(store, testApp.secretBox, { dovecot, smtp, smtpTls: 'starttls' }, { user: bob.user, email: `zz-sales-${Date.now()}@acme.test` });
    // Bob wrote from it in another mail program, with his dropbox in Bcc: the copy belongs to no account.
    const logged = await storeMessage(store, { from: `Bob Sender <${zed.email}>`, to: 'Alice Customer <alice@customer.test>', subject: 'Offer 12', text: 'Here is the offer.' }, { ownerId: bob.user.id });
    const reply = await pageOf(`/compose?original=${logged.id}&action=reply`);
    assert.match(reply, new RegExp(`<option value="${zed.accountId}"[^>]*selected`), 'From: the account the mail was written from');
    assert.match(reply, /id="compose-to" name="to" value="Alice Customer &lt;alice@customer\.test&gt;"/);
    const incoming = await storeMessage(store, { from: 'Alice Customer <alice@customer.test>', to: zed.email, subject: 'Re: Offer 12', text: 'Thanks.' }, { ownerId: bob.user.id });
    assert.match(await pageOf(`/compose?original=${incoming.id}&action=reply`), new RegExp(`<option value="${zed.accountId}"[^>]*selected`), 'or the account it was written to');
  });

  it('replies go back to senders whose names hold an address or specials (a Google Group, "Smith; Anna"), the names intact', async () => {
    const unescapeHtml = (value: string) => value.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#34;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
    const cases = [
      { from: '"\'alice@customer.test\' via Sales" <sales@groups.test>', typed: '"\'alice@customer.test\' via Sales" <sales@groups.test>', header: /^To: "'alice@customer\.test' via Sales" <sales@groups\.test>$/m },
      { from: '"Smith; Anna" <anna@customer.test>', typed: '"Smith; Anna" <anna@customer.test>', header: /^To: "Smith; Anna" <anna@customer\.test>$/m },
      { from: 'Alice Customer <alice@customer.test>', typed: 'Alice Customer <alice@customer.test>', header: /^To: Alice Customer <alice@customer\.test>$/m },
    ];
    for (const { from, typed, header } of cases) {
      const incoming = await storeMessage(store, { from, to: bob.email, subject: 'Group question', text: 'Anyone?' }, { ownerId: bob.user.id, accountId: bob.accountId, source: 'imap' });
      const page = await pageOf(`/compose?original=${incoming.id}&action=reply`);
      const to = unescapeHtml(/id="compose-to" name="to" value="([^"]*)"/.exec(page)?.[1] ?? '');
      assert.equal(to, typed);
      const before = smtp.received.length;
      const res = await session.agent.post('/compose').field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', to)
        .field('subject', 'Re: Group question').field('text', 'Me.').field('original', incoming.id).field('action', 'reply');
      assert.equal(res.status, 303, `${from}: ${/id="compose-to-error">([^<]*)/.exec(res.text)?.[1] ?? ''}`);
      await smtp.waitFor(before + 1);
      assert.match(smtp.received[before].raw.toString(), header);
    }
  });

  it('replying to a message with no From and no subject: the form says so and leaves To for the user to fill', async () => {
    const incoming = await storeMessage(store, { from: '', to: bob.email, subject: '', text: 'Who sent this?' }, { ownerId: bob.user.id, accountId: bob.accountId, source: 'imap' });
    const reply = await pageOf(`/compose?original=${incoming.id}&action=reply`);
    assert.match(reply, /Replying to “<a href="\/messages\/[0-9a-f]{24}">\(no subject\)<\/a>” from an unknown sender\./);
    assert.match(reply, /id="compose-to" name="to" value=""/);
    assert.match(reply, /id="compose-subject" name="subject" value="Re:"/);
  });

  it('shows problems on the form: header injection (400, field marked), the server refusing (422, its reply), nothing sent', async () => {
    const page = await pageOf('/compose');
    const before = smtp.received.length;
    const injected = await session.agent.post('/compose').field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'alice@customer.test')
      .field('subject', 'Hello\r\nBcc: everyone@evil.test').field('text', 'x').expect(400);
    assert.match(injected.text, /id="compose-subject-error">must not contain line breaks \(CR or LF\)/);
    assert.match(injected.text, /name="to" value="alice@customer\.test"/, 'what was typed is kept');

    smtp.behaviour.rcpt = () => '550 5.1.1 <ghost@customer.test>: Recipient address rejected: User unknown in virtual mailbox table';
    const refused = await session.agent.post('/compose').field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'ghost@customer.test')
      .field('subject', 'Are you there?').field('text', 'x').expect(422);
    assert.match(refused.text, /id="send-error">RECIPIENT_REFUSED: .*550 5\.1\.1 &lt;ghost@customer\.test&gt;: Recipient address rejected: User unknown in virtual mailbox table/);
    assert.equal(smtp.received.length, before);
    assert.equal(await store.models.Message.countDocuments({ subject: 'Are you there?' }), 0, 'nothing stored as sent');

    const noCsrf = await session.agent.post('/compose').field('account', bob.accountId).field('to', 'alice@customer.test').field('subject', 'x').field('text', 'x');
    assert.equal(noCsrf.status, 403, 'the multipart form is CSRF-protected too');

    const tooBig = await session.agent.post('/compose').field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'alice@customer.test')
      .field('subject', 'Huge').field('text', 'see attachment').attach('attachments', Buffer.alloc(1024 * 1024 + 10, 1), { filename: 'huge.bin' });
    assert.equal(tooBig.status, 413);
    assert.match(tooBig.text, /id="compose-attachments-error">an attachment is larger than 1 MB/);
    assert.match(tooBig.text, /value="Huge"/, 'the fields before the file are kept');
    // Far over the limit: refused from Content-Length before anything is buffered.
    const huge = await session.agent.post('/compose').field('_csrf', csrfFrom(page)).field('account', bob.accountId)
      .attach('attachments', Buffer.alloc(10 * 1024 * 1024, 1), { filename: 'huge.bin' });
    assert.equal(huge.status, 413);
    assert.match(huge.text, /The message is larger than 1 MB, the most that can be sent/);
  });

  it('a Compose form sent without its length (chunked) is refused before its attachments are held in memory', async () => {
    // Browsers always send Content-Length; without it the size check had nothing to read, and up to 20 attachments
    // of SMTP_MAX_MESSAGE_SIZE each (1 GB by default) were buffered before anything was refused.
    const server = testApp.app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    try {
      const cookieOf = (res: request.Response) => ([] as string[]).concat(res.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]).join('; ');
      const form = await request(server).get('/login').expect(200);
      const signedIn = await request(server).post('/login').set('Cookie', cookieOf(form)).type('form')
        .send({ _csrf: csrfFrom(form.text), email: bob.user.email, password: 'correct-horse-battery-staple' }).expect(303);
      const cookie = cookieOf(signedIn);
      const page = await request(server).get('/compose').set('Cookie', cookie).expect(200);
      const boundary = `----postroom${crypto.randomBytes(8).toString('hex')}`;
      const part = (name: string, value: string) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
      const before = smtp.received.length;
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, method: 'POST', path: '/compose', headers: {
          Cookie: cookie, 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Transfer-Encoding': 'chunked',
        } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', (err: NodeJS.ErrnoException) => (['EPIPE', 'ECONNRESET'].includes(err.code ?? '') ? undefined : reject(err)));
        req.write(part('_csrf', csrfFrom(page.text)) + part('account', bob.accountId) + part('to', 'alice@customer.test') + part('subject', 'Chunked') + part('text', 'x'));
        // 12 attachments just under the 1 MB limit each: 12 MB, over the 1 MB + 8 MB the form may take in all.
        for (let i = 0; i < 12; i++) {
          req.write(`--${boundary}\r\nContent-Disposition: form-data; name="attachments"; filename="part${i}.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`);
          req.write(Buffer.alloc(1024 * 1024 - 100, 1));
          req.write('\r\n');
        }
        req.end(`--${boundary}--\r\n`);
      });
      assert.equal(status, 411);
      assert.equal(smtp.received.length, before);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('a temporary failure is queued and shown in the Outbox with Retry and Discard', async () => {
    smtp.behaviour.data = () => '451 4.7.1 Greylisted, please try again later';
    const page = await pageOf('/compose');
    const res = await session.agent.post('/compose').field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'alice@customer.test')
      .field('subject', 'Greylisted').field('text', 'x').expect(303);
    assert.equal(res.headers.location, '/outbox');
    const outbox = await pageOf('/outbox');
    assert.match(outbox, /Queued: .*451 4\.7\.1 Greylisted, please try again later.*Postroom will try again\. See the Outbox\./);
    assert.doesNotMatch(outbox, /retries on its own/, 'the retry is said once');
    const row = await store.models.Outbox.findOne({ subject: 'Greylisted' }).lean();
    assert.ok(row);
    const rowHtml = outbox.slice(outbox.indexOf(`id="outbox-${row._id}"`));
    assert.match(rowHtml, /data-status="queued"[\s\S]*?<span class="badge amber">Queued<\/span>[\s\S]*?Retry now[\s\S]*?Discard/);
    await session.agent.post(`/outbox/${row._id}/discard`).type('form').send({ _csrf: csrfFrom(outbox) }).expect(303);
    const after = await store.models.Outbox.findById(row._id).lean();
    assert.equal(after?.status, 'failed');
    assert.equal(after?.nextAttemptAt, null);
    assert.match(await pageOf('/outbox'), /Discarded: it will not be retried\./);
  });

  it('a queued message the server later refuses for good is kept: the Outbox offers it as a download to send again', async () => {
    smtp.behaviour.data = () => '451 4.7.1 Greylisted, please try again later';
    const page = await pageOf('/compose');
    await session.agent.post('/compose').field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'alice@customer.test').field('bcc', 'boss@acme.test')
      .field('subject', 'Refused on the retry').field('text', 'A long answer I do not want to type again.').expect(303);
    const entry = await store.models.Outbox.findOne({ subject: 'Refused on the retry' }).lean();
    assert.ok(entry);
    // The retry (the outbox worker; made due now) gets a final refusal.
    smtp.behaviour.data = () => '554 5.7.1 Message rejected as spam';
    await store.models.Outbox.updateOne({ _id: entry._id }, { $set: { nextAttemptAt: new Date() } });
    const worker = startOutboxWorker(sendDeps(store, testApp.secretBox), { intervalMs: 100 });
    try {
      for (let i = 0; i < 100 && (await store.models.Outbox.findById(entry._id).lean())?.status !== 'failed'; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      await worker.stop();
    }
    const outbox = await pageOf('/outbox');
    const row = outbox.slice(outbox.indexOf(`id="outbox-${entry._id}"`));
    assert.match(row, /<span class="badge red">Failed<\/span>[\s\S]*?554 5\.7\.1 Message rejected as spam[\s\S]*?<a href="\/outbox\/[0-9a-f]{24}\/message\.eml"[^>]*>Download the message<\/a>/);
    const download = await session.agent.get(`/outbox/${entry._id}/message.eml`).buffer(true).expect(200);
    assert.match(String(download.headers['content-disposition']), /attachment; filename="Refused on the retry\.eml"/);
    const copy = await simpleParser(Buffer.isBuffer(download.body) ? download.body : Buffer.from(download.text));
    assert.equal(copy.text?.trim(), 'A long answer I do not want to type again.');
    assert.match(copy.headers.get('bcc') ? JSON.stringify(copy.headers.get('bcc')) : '', /boss@acme\.test/, 'the sender\'s own copy, with Bcc');

    // Someone else's, or a message that was sent, has no copy to download.
    const carol = await createUser(store, { email: `carol-${Date.now()}@acme.test`, password: 'correct-horse-battery-staple', role: 'employee' });
    const other = await signIn(testApp.app, carol.email);
    await other.agent.get(`/outbox/${entry._id}/message.eml`).expect(404);
    smtp.behaviour.data = undefined;
    await session.agent.post('/compose').field('_csrf', csrfFrom(page)).field('account', bob.accountId).field('to', 'alice@customer.test')
      .field('subject', 'Went out fine').field('text', 'x').expect(303);
    const sent = await store.models.Outbox.findOne({ subject: 'Went out fine', status: 'sent' }).lean();
    assert.ok(sent);
    await session.agent.get(`/outbox/${sent._id}/message.eml`).expect(404);
  });

  describe('API', () => {
    let token: string;
    const api = (method: 'get' | 'post', path: string) => request(testApp.app)[method](`/api/v1${path}`).set('Authorization', `Bearer ${token}`);
    before(async () => {
      token = (await createApiToken(store, bob.user.email, { name: 'send' }, {})).token;
    });

    it('POST /accounts/:id/send sends (200) with base64 attachments, and a reply threads; the result points at the stored copy', async () => {
      const before = smtp.received.length;
      const res = await api('post', `/accounts/${bob.accountId}/send`).send({
        to: ['alice@customer.test'], subject: 'From the API', text: 'Sent by a script.',
        attachments: [{ filename: 'hello.txt', contentType: 'text/plain', content: Buffer.from('hello world').toString('base64') }],
      }).expect(200);
      assert.equal(res.body.status, 'sent');
      assert.match(res.headers.location, new RegExp(`/api/v1/outbox/${res.body.outboxId}$`));
      await smtp.waitFor(before + 1);
      assert.equal(smtp.received[before].parsed.attachments[0].content.toString(), 'hello world');
      const stored = await api('get', `/messages/${res.body.storedMessageId}`).expect(200);
      assert.deepEqual(stored.body.sources.map((s: { kind: string }) => s.kind), ['sent']);

      const reply = await api('post', `/accounts/${bob.accountId}/send`).send({ text: 'And a follow-up.', original: { id: res.body.storedMessageId, action: 'reply' } }).expect(200);
      await smtp.waitFor(before + 2);
      const threaded = smtp.received[before + 1].parsed;
      assert.equal(threaded.subject, 'Re: From the API');
      assert.equal(threaded.inReplyTo, `<${res.body.messageId}>`);
      assert.match(threaded.text ?? '', /And a follow-up\.\n\nOn .* wrote:\n> Sent by a script\./);
      const item = await api('get', `/outbox/${reply.body.outboxId}`).expect(200);
      assert.equal(item.body.status, 'sent');
      assert.equal(item.body.sentFolder.state, 'appended');
      const mine = await api('get', `/outbox?account=${bob.accountId}`).expect(200);
      assert.ok(mine.body.items.some((entry: { id: string }) => entry.id === reply.body.outboxId));
      const typo = await api('get', '/outbox?account=xyz').expect(400);
      assert.equal(typo.body.error.fields.account, 'is not an id (24 hexadecimal digits)', 'a bad id is said, not answered with an empty list');
    });

    it('answers 202 when queued, 400 for header injection or unknown fields, 422 with the server reply, 404 for someone else\'s account', async () => {
      smtp.behaviour.data = () => '452 4.3.1 Insufficient system storage';
      const queued = await api('post', `/accounts/${bob.accountId}/send`).send({ to: 'alice@customer.test', subject: 'Later', text: 'x' }).expect(202);
      assert.equal(queued.body.status, 'queued');
      assert.match(queued.body.queuedBecause, /452 4\.3\.1 Insufficient system storage/);
      smtp.behaviour.data = undefined;

      const injected = await api('post', `/accounts/${bob.accountId}/send`).send({ to: 'alice@customer.test', subject: 'x', text: 'x', attachments: [{ filename: 'a.txt\r\nX-Evil: 1', content: 'aGk=' }] }).expect(400);
      assert.equal(injected.body.error.code, 'VALIDATION_FAILED');
      assert.match(injected.body.error.fields['attachments.0.filename'], /line breaks/);
      const unknown = await api('post', `/accounts/${bob.accountId}/send`).send({ to: 'alice@customer.test', headers: { 'X-Evil': '1' } }).expect(400);
      assert.equal(unknown.body.error.fields.headers, 'is not a known field');

      smtp.behaviour.rcpt = () => '550 5.7.1 Relaying denied';
      const refused = await api('post', `/accounts/${bob.accountId}/send`).send({ to: 'alice@customer.test', subject: 'x', text: 'x' }).expect(422);
      assert.equal(refused.body.error.code, 'RECIPIENT_REFUSED');
      assert.match(refused.body.error.message, /550 5\.7\.1 Relaying denied/);

      const other = await sendableAccount(store, testApp.secretBox, { dovecot, smtp, smtpTls: 'starttls' });
      await api('post', `/accounts/${other.accountId}/send`).send({ to: 'alice@customer.test', subject: 'x', text: 'x' }).expect(404);
      await api('post', `/accounts/${new mongoose.Types.ObjectId()}/send`).send({ to: 'alice@customer.test' }).expect(404);
      // An admin manages every account but sends only as their own mailboxes.
      await createUser(store, { email: 'boss@acme.test', password: 'correct-horse-battery-staple', role: 'admin' });
      const adminToken = (await createApiToken(store, 'boss@acme.test', { name: 'x' }, {})).token;
      await request(testApp.app).post(`/api/v1/accounts/${bob.accountId}/send`).set('Authorization', `Bearer ${adminToken}`).send({ to: 'alice@customer.test', subject: 'x', text: 'x' }).expect(404);
    });

    it('Idempotency-Key: a repeated send gets the first reply and sends nothing; a repeat during the send is 409; another body is 422', async () => {
      const key = `idem-${new mongoose.Types.ObjectId()}`;
      const message = { to: 'alice@customer.test', subject: 'Invoice 1001', text: 'Once, please.' };
      const before = smtp.received.length;
      // The first send holds the server's reply to DATA for 3 s; once it has logged in, it holds the key.
      smtp.behaviour.dataDelayMs = 3000;
      const logins = smtp.logins.length;
      const first = api('post', `/accounts/${bob.accountId}/send`).set('Idempotency-Key', key).send(message).then((res) => res);
      while (smtp.logins.length === logins) await new Promise((resolve) => setTimeout(resolve, 20));
      const during = await api('post', `/accounts/${bob.accountId}/send`).set('Idempotency-Key', key).send(message).expect(409);
      assert.equal(during.body.error.code, 'IDEMPOTENCY_KEY_IN_USE');
      assert.equal(during.headers['retry-after'], '5');
      const sent = await first;
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
      smtp.behaviour.dataDelayMs = undefined;

      const again = await api('post', `/accounts/${bob.accountId}/send`).set('Idempotency-Key', key).send(message).expect(200);
      assert.deepEqual(again.body, sent.body, 'the first reply, word for word');
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.equal(again.headers.location, sent.headers.location);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(smtp.received.length - before, 1, 'one message reached the server');
      assert.equal(await store.models.Outbox.countDocuments({ subject: 'Invoice 1001' }), 1);

      const other = await api('post', `/accounts/${bob.accountId}/send`).set('Idempotency-Key', key).send({ ...message, text: 'A different message.' }).expect(422);
      assert.equal(other.body.error.code, 'IDEMPOTENCY_KEY_REUSED');
      const bad = await api('post', `/accounts/${bob.accountId}/send`).set('Idempotency-Key', 'has space').send(message).expect(400);
      assert.match(bad.body.error.fields['Idempotency-Key'], /8 to 200 visible ASCII characters/);
      assert.equal(smtp.received.length - before, 1);
    });

    it('Idempotency-Key: a send the server refused sent nothing, so the same key may try again', async () => {
      const key = crypto.randomUUID();
      const message = { to: 'alice@customer.test', subject: 'Retry me', text: 'x' };
      smtp.behaviour.rcpt = () => '550 5.7.1 Relaying denied';
      await api('post', `/accounts/${bob.accountId}/send`).set('Idempotency-Key', key).send(message).expect(422);
      smtp.behaviour.rcpt = undefined;
      const before = smtp.received.length;
      const sent = await api('post', `/accounts/${bob.accountId}/send`).set('Idempotency-Key', key).send(message).expect(200);
      assert.equal(sent.headers['idempotent-replayed'], undefined);
      await smtp.waitFor(before + 1);
    });

    it('POST /accounts/:id/smtp/authenticate logs in for real; 429 with Retry-After over the rate limit', async () => {
      await api('post', `/accounts/${bob.accountId}/smtp/authenticate`).expect(200, { authenticated: true });
      const limitedApp = buildApp(store, { secretBox: testApp.secretBox, env: { SEND_RATE_LIMIT: '1/hour' } });
      const carol = await sendableAccount(store, testApp.secretBox, { dovecot, smtp, smtpTls: 'starttls' });
      const carolToken = (await createApiToken(store, carol.user.email, { name: 'x' }, {})).token;
      const send = () => request(limitedApp.app).post(`/api/v1/accounts/${carol.accountId}/send`).set('Authorization', `Bearer ${carolToken}`).send({ to: 'alice@customer.test', subject: 'x', text: 'x' });
      await send().expect(200);
      const limited = await send().expect(429);
      assert.equal(limited.body.error.code, 'RATE_LIMITED');
      const retryAfter = Number(limited.headers['retry-after']);
      assert.ok(retryAfter > 3500 && retryAfter <= 3600, String(retryAfter));
    });
  });
});
