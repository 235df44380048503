/**
 * What recipients get when an employee answers or forwards a stored message:
 * the real submission server (smtp-server on loopback) receives it and
 * mailparser reads it back, as the recipient's mail program would.
 */
import { strict as assert } from 'node:assert';
import { Types } from 'mongoose';
import { ingest } from '../../gateway/mail/ingest';
import { sendMessage, type OriginalAction, type SendDeps, type SendRequest } from '../../gateway/send';
import type { DovecotServer } from '../support/dovecot';
import { openTestStore } from '../support/store';
import { dropboxAddress } from '../../gateway/accounts/forwarding-address';
import { GATEWAY_DOMAIN, log, newSecretBox, sendableAccount, sendDeps, sharedDovecot, startRecordingSmtp, type ReceivedMessage, type RecordingSmtp, type SendFixture, type TestStore } from './support';

describe('send: replies and forwards as their recipients receive them', function () {
  this.timeout(60_000);
  let store: TestStore;
  let dovecot: DovecotServer;
  let smtp: RecordingSmtp;
  const secretBox = newSecretBox();
  let deps: SendDeps;
  let bob: SendFixture;
  let counter = 0;

  before(async () => {
    store = await openTestStore('send_replies_sent');
    dovecot = await sharedDovecot();
    smtp = await startRecordingSmtp({ tls: 'starttls' });
    deps = sendDeps(store, secretBox);
    bob = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'starttls' }, { name: 'Bob Sender' });
  });
  after(async () => {
    await smtp?.stop();
    await store?.drop();
  });

  /** A message in Bob's mailbox, as forwarding delivered it. `head` holds the headers, From to Subject. */
  async function received(head: string, body = 'Content-Type: text/plain; charset=utf-8\n\nHello Bob.\n'): Promise<string> {
    counter += 1;
    const raw = `${head}\nMessage-ID: <original-${counter}-${Date.now()}@customer.test>\nDate: Mon, 02 Nov 2026 10:00:00 +0100\nMIME-Version: 1.0\n${body}`;
    const result = await ingest({ store, log }, {
      raw: Buffer.from(raw.replace(/\r?\n/g, '\r\n')), mailboxKey: bob.accountId, accountId: new Types.ObjectId(bob.accountId), ownerId: new Types.ObjectId(bob.user.id), source: { kind: 'forward' },
    });
    return String(result.id);
  }

  /** Answer a stored message through the API's send and return what the submission server got. */
  async function answer(id: string, action: OriginalAction, request: Omit<SendRequest, 'original'> = {}): Promise<ReceivedMessage> {
    const before = smtp.received.length;
    const result = await sendMessage(deps, bob.viewer, bob.accountId, { text: 'My answer.', ...request, original: { id, action } });
    assert.equal(result.status, 'sent');
    await smtp.waitFor(before + 1);
    return smtp.received[before];
  }

  it('a reply in a thread whose mail programs each added a prefix has one "Re:" ("AW: Re: AW: Angebot" → "Re: Angebot")', async () => {
    const id = await received(`From: Anna <anna@customer.test>\nTo: ${bob.email}\nSubject: AW: Re: AW: Angebot`);
    const got = await answer(id, 'reply');
    assert.equal(got.parsed.subject, 'Re: Angebot');
    const again = await answer(await received(`From: Anna <anna@customer.test>\nTo: ${bob.email}\nSubject: Fwd: WG: Fwd: Angebot`), 'forward', { to: 'carl@customer.test' });
    assert.equal(again.parsed.subject, 'Fwd: Angebot');
  });

  it('Italian and Brazilian Outlook prefixes ("R:", "RES:", "I:") count as reply and forward prefixes', async () => {
    assert.equal((await answer(await received(`From: Giulia <giulia@cliente.test>\nTo: ${bob.email}\nSubject: R: R: Offerta`), 'reply')).parsed.subject, 'Re: Offerta');
    assert.equal((await answer(await received(`From: João <joao@cliente.test>\nTo: ${bob.email}\nSubject: RES: Proposta`), 'reply')).parsed.subject, 'Re: Proposta');
    assert.equal((await answer(await received(`From: Giulia <giulia@cliente.test>\nTo: ${bob.email}\nSubject: I: Offerta`), 'forward', { to: 'carl@customer.test' })).parsed.subject, 'Fwd: Offerta');
  });

  it('Reply all leaves out the employee\'s own addresses and every Postroom intake address (dropbox, forwarding address): recipients never see them', async () => {
    const user = await store.models.User.findById(bob.user.id).lean();
    const account = await store.models.MailAccount.findById(bob.accountId).lean();
    const ownDropbox = dropboxAddress(user!.dropboxToken, GATEWAY_DOMAIN);
    // Bob had put his dropbox in Cc to log the thread; a colleague did the same; the forwarding address and Bob's
    // sign-in address turn up in the headers of mail forwarded by hand.
    const id = await received([
      'From: Anna <anna@customer.test>',
      `To: ${bob.email}, "Bob at home" <${bob.user.email.toUpperCase()}>`,
      `Cc: carl@customer.test, ${ownDropbox.toUpperCase()}, dropbox.colleague0token@${GATEWAY_DOMAIN}, <${account!.forwardingAddress}>`,
      'Subject: Offer',
    ].join('\n'));
    const got = await answer(id, 'reply-all');
    assert.deepEqual(got.to.sort(), ['anna@customer.test', 'carl@customer.test'], 'the envelope: only the customers');
    assert.deepEqual(got.parsed.to && !Array.isArray(got.parsed.to) ? got.parsed.to.value.map((m) => m.address) : [], ['anna@customer.test']);
    assert.deepEqual(got.parsed.cc && !Array.isArray(got.parsed.cc) ? got.parsed.cc.value.map((m) => m.address) : [], ['carl@customer.test']);
    assert.doesNotMatch(got.raw.toString(), new RegExp(GATEWAY_DOMAIN.replace(/\./g, '\\.'), 'i'), 'no Postroom address anywhere in what was sent');
  });

  it('Reply all does not copy the employee\'s Gmail mailbox back to them when the mail named it with other dots or googlemail.com', async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const gmail = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'starttls' }, { email: `pat.lee.${tag}@gmail.com` });
    const raw = `From: Anna <anna@customer.test>\nTo: "Pat" <PatLee${tag}@googlemail.com>\nCc: carl@customer.test, pat.l.e.e${tag}@gmail.com\nSubject: Dots\nMessage-ID: <dots-${tag}@customer.test>\nDate: Mon, 02 Nov 2026 10:00:00 +0100\n\nHi Pat.\n`;
    const stored = await ingest({ store, log }, { raw: Buffer.from(raw.replace(/\n/g, '\r\n')), mailboxKey: gmail.accountId, accountId: new Types.ObjectId(gmail.accountId), ownerId: new Types.ObjectId(gmail.user.id), source: { kind: 'forward' } });
    const before = smtp.received.length;
    await sendMessage(deps, gmail.viewer, gmail.accountId, { text: 'Noted.', original: { id: String(stored.id), action: 'reply-all' } });
    await smtp.waitFor(before + 1);
    assert.deepEqual(smtp.received[before].to.sort(), ['anna@customer.test', 'carl@customer.test']);
  });

  it('a forward\'s header block does not show Postroom intake addresses the original had in To or Cc', async () => {
    const user = await store.models.User.findById(bob.user.id).lean();
    const ownDropbox = dropboxAddress(user!.dropboxToken, GATEWAY_DOMAIN);
    const id = await received(`From: Anna <anna@customer.test>\nTo: ${bob.email}, dropbox.colleague0token@${GATEWAY_DOMAIN}\nCc: carl@customer.test, "Bob's log" <${ownDropbox}>\nSubject: Offer`);
    const got = await answer(id, 'forward', { to: 'dora@partner.test' });
    assert.match(got.parsed.text ?? '', new RegExp(`\\nTo: ${bob.email}\\nCc: carl@customer\\.test\\n`));
    assert.doesNotMatch(got.raw.toString(), new RegExp(GATEWAY_DOMAIN.replace(/\./g, '\\.'), 'i'), 'no Postroom address anywhere in what was sent');
  });

  it('display names with quotes, backslashes and commas reach the recipient as written, in From and in the reply\'s To', async () => {
    const jj = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'starttls' }, { name: 'Jürgen "JJ" Müller, Sales' });
    const before = smtp.received.length;
    await sendMessage(deps, jj.viewer, jj.accountId, { to: '"Pat \\"The Boss\\" O\'Brien" <pat@customer.test>, "C:\\\\Share" <share@customer.test>', subject: 'Names', text: 'x' });
    await smtp.waitFor(before + 1);
    const got = smtp.received[before].parsed;
    assert.equal(got.from?.value[0].name, 'Jürgen "JJ" Müller, Sales');
    assert.deepEqual(got.to && !Array.isArray(got.to) ? got.to.value.map((m) => m.name) : [], ['Pat "The Boss" O\'Brien', 'C:\\Share']);

    const id = await received(`From: "Pat \\"The Boss\\" O'Brien" <pat@customer.test>\nTo: ${bob.email}\nSubject: Names`);
    const reply = await answer(id, 'reply');
    assert.equal(reply.parsed.to && !Array.isArray(reply.parsed.to) ? reply.parsed.to.value[0].name : '', 'Pat "The Boss" O\'Brien');
    assert.match(reply.parsed.text ?? '', /Pat "The Boss" O'Brien <pat@customer\.test> wrote:/);
  });

  it('a reply or forward of mail written only in HTML (an invoice with its PDF) quotes its words, without its scripts or styles', async () => {
    const html = '<html><head><style>p { color: red }</style><script>steal()</script></head><body><p>Dear Bob,</p><p>please find invoice <b>INV-2044</b> attached.</p><script>alert(1)</script></body></html>';
    const body = [
      'Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/html; charset=utf-8', '', html, '--b1',
      'Content-Type: application/pdf; name="INV-2044.pdf"', 'Content-Disposition: attachment; filename="INV-2044.pdf"', 'Content-Transfer-Encoding: base64', '', 'JVBERi0xLjQK', '--b1--', '',
    ].join('\n');
    const id = await received(`From: Billing <billing@customer.test>\nTo: ${bob.email}\nSubject: Invoice INV-2044`, body);
    const reply = await answer(id, 'reply');
    const text = reply.parsed.text ?? '';
    assert.match(text, /Billing <billing@customer\.test> wrote:\n> Dear Bob,\n>\n> please find invoice INV-2044 attached\./);
    assert.doesNotMatch(text, /steal|alert|color/, 'no script or style text');
    const forward = await answer(id, 'forward', { to: 'carl@customer.test' });
    assert.match(forward.parsed.text ?? '', /Subject: Invoice INV-2044\n[^]*Dear Bob,\n\nplease find invoice INV-2044 attached\./);
    assert.deepEqual(forward.parsed.attachments.map((a) => a.filename), ['INV-2044.pdf']);
  });

  it('forwards the attachments of mail whose sender wrote a malformed Content-Type ("pdf"), typed by their names instead of refusing the forward', async () => {
    const body = [
      'Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/plain; charset=utf-8', '', 'Scan attached.', '--b1',
      'Content-Type: pdf', 'Content-Disposition: attachment; filename="scan-0042.pdf"', 'Content-Transfer-Encoding: base64', '', 'JVBERi0xLjQK', '--b1',
      'Content-Type: application/pdf/x', 'Content-Disposition: attachment; filename="noext"', 'Content-Transfer-Encoding: base64', '', 'JVBERi0xLjQK', '--b1--', '',
    ].join('\n');
    const id = await received(`From: Scanner <scanner@customer.test>\nTo: ${bob.email}\nSubject: Scan`, body);
    const got = await answer(id, 'forward', { to: 'carl@customer.test' });
    assert.deepEqual(got.parsed.attachments.map((a) => [a.filename, a.contentType, a.content.toString()]), [
      ['scan-0042.pdf', 'application/pdf', '%PDF-1.4\n'],
      ['noext', 'application/octet-stream', '%PDF-1.4\n'],
    ]);
  });

  it('answers mail whose subject holds line breaks or control characters, or runs to the line limit, without a 400 over a subject nobody typed', async () => {
    const broken = await received(`From: Shop <shop@customer.test>\nTo: ${bob.email}\nSubject: =?utf-8?Q?Order_4711=0D=0A_shipped=07?=`);
    assert.equal((await answer(broken, 'reply')).parsed.subject, 'Re: Order 4711 shipped');
    assert.equal((await answer(broken, 'forward', { to: 'carl@customer.test' })).parsed.subject, 'Fwd: Order 4711 shipped');
    const long = await received(`From: Shop <shop@customer.test>\nTo: ${bob.email}\nSubject: ${'Lorem ipsum '.repeat(83).trim()}`);
    const reply = await answer(long, 'reply');
    assert.ok(reply.parsed.subject?.startsWith('Re: Lorem ipsum'));
    assert.ok((reply.parsed.subject ?? '').length <= 998, `${reply.parsed.subject?.length} characters`);
    assert.ok(reply.raw.toString().split('\r\n').every((line) => line.length <= 998), 'no line over 998 octets (RFC 5322 §2.1.1)');
  });

  it('a forwarded or attached e-mail (message/rfc822, an .eml) arrives as an attachment, not spliced into the body', async () => {
    const complaint = 'From: Dora <dora@buyer.test>\nTo: anna@customer.test\nSubject: Broken pallet\nMessage-ID: <complaint-1@buyer.test>\nDate: Sun, 01 Nov 2026 09:00:00 +0100\n\nThe pallet arrived broken.\n';
    const body = [
      'Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/plain; charset=utf-8', '', 'See the complaint attached.', '--b1',
      'Content-Type: message/rfc822', 'Content-Disposition: attachment; filename="Broken pallet.eml"', '', complaint, '--b1--', '',
    ].join('\n');
    const id = await received(`From: Anna <anna@customer.test>\nTo: ${bob.email}\nSubject: Complaint`, body);
    const forward = await answer(id, 'forward', { to: 'carl@customer.test' });
    assert.deepEqual(forward.parsed.attachments.map((a) => [a.filename, a.contentType]), [['Broken pallet.eml', 'message/rfc822']]);
    assert.match(forward.parsed.attachments[0].content.toString(), /Subject: Broken pallet\r\n[^]*The pallet arrived broken\./);
    assert.equal(forward.mailFromArgs.BODY, undefined, 'all 7-bit: no BODY parameter');

    const before = smtp.received.length;
    const sent = await sendMessage(deps, bob.viewer, bob.accountId, {
      to: 'carl@customer.test', subject: 'The complaint', text: 'Attached.', attachments: [{ filename: 'complaint.eml', contentType: 'message/rfc822', content: Buffer.from(complaint.replace(/\n/g, '\r\n')) }],
    });
    await smtp.waitFor(before + 1);
    assert.deepEqual(smtp.received[before].parsed.attachments.map((a) => [a.filename, a.contentType]), [['complaint.eml', 'message/rfc822']]);
    const stored = await store.models.Message.findById(sent.storedMessageId).lean();
    assert.deepEqual(stored?.attachments.map((a) => a.filename), ['complaint.eml'], 'the stored copy lists it too');
  });

  it('sends to addresses on internationalised top-level domains (.рф, .中国), in their ASCII form', async () => {
    const before = smtp.received.length;
    const sent = await sendMessage(deps, bob.viewer, bob.accountId, { to: 'Ivan <info@пример.рф>', cc: 'li@公司.中国', subject: 'IDN TLD', text: 'x' });
    await smtp.waitFor(before + 1);
    // smtp-server shows the envelope in Unicode again (it decodes IDNA); the header and the outbox show what was sent.
    assert.match(smtp.received[before].raw.toString(), /^To: Ivan <info@xn--e1afmkfd\.xn--p1ai>\r\nCc: li@xn--55qx5d\.xn--fiqs8s$/m);
    assert.deepEqual((await store.models.Outbox.findById(sent.outboxId).lean())?.recipients.map((r) => [r.address, r.state]), [['info@xn--e1afmkfd.xn--p1ai', 'accepted'], ['li@xn--55qx5d.xn--fiqs8s', 'accepted']]);
  });

  it('sends to, and replies to, local parts with any character RFC 5322 allows unquoted (sales&service@, orders=eu@, {it}@)', async () => {
    const id = await received(`From: Sales & Service <sales&service@customer.test>\nTo: ${bob.email}\nCc: orders=eu@customer.test, {it}@customer.test\nSubject: Odd addresses`);
    const got = await answer(id, 'reply-all');
    assert.deepEqual(got.to.sort(), ['orders=eu@customer.test', 'sales&service@customer.test', '{it}@customer.test']);
    assert.deepEqual(got.parsed.to && !Array.isArray(got.parsed.to) ? got.parsed.to.value.map((m) => m.address) : [], ['sales&service@customer.test']);
  });

  it('declares BODY=8BITMIME (RFC 6152) when a forwarded e-mail carries 8-bit text, which a message/rfc822 part cannot re-encode', async () => {
    const inner = 'From: Jörg <joerg@buyer.test>\nSubject: Lieferung\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nDie Palette kam beschädigt an.\n';
    const body = [
      'Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/plain; charset=utf-8', '', 'Siehe Anhang.', '--b1',
      'Content-Type: message/rfc822', 'Content-Transfer-Encoding: 8bit', 'Content-Disposition: attachment; filename="Lieferung.eml"', '', inner, '--b1--', '',
    ].join('\n');
    const id = await received(`From: Anna <anna@customer.test>\nTo: ${bob.email}\nSubject: Beschwerde`, body);
    const forward = await answer(id, 'forward', { to: 'carl@customer.test' });
    assert.equal(forward.mailFromArgs.BODY, '8BITMIME');
    assert.match(forward.parsed.attachments[0].content.toString(), /Die Palette kam beschädigt an\./);
  });

  it('forwards a long Outlook thread whose signature logos and photos make more than 20 attachments, with all of them', async () => {
    const parts = Array.from({ length: 26 }, (_, i) => [
      '--b1', `Content-Type: image/png`, `Content-Disposition: attachment; filename="image${String(i + 1).padStart(3, '0')}.png"`, 'Content-Transfer-Encoding: base64', '', Buffer.from(`png-${i}`).toString('base64'),
    ].join('\n'));
    const body = ['Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/plain; charset=utf-8', '', 'Photos from the site visit.', ...parts, '--b1--', ''].join('\n');
    const id = await received(`From: Anna <anna@customer.test>\nTo: ${bob.email}\nSubject: Site visit`, body);
    const forward = await answer(id, 'forward', { to: 'carl@customer.test', attachments: [{ filename: 'notes.txt', content: Buffer.from('my notes') }] });
    assert.equal(forward.parsed.attachments.length, 27);
    assert.deepEqual(forward.parsed.attachments.slice(0, 2).map((a) => [a.filename, a.content.toString()]), [['notes.txt', 'my notes'], ['image001.png', 'png-0']]);
    assert.equal(forward.parsed.attachments[26].filename, 'image026.png');
  });

  it('a message to Bcc recipients only carries "To: undisclosed-recipients:;", not a missing To, and still no Bcc', async () => {
    const before = smtp.received.length;
    const sent = await sendMessage(deps, bob.viewer, bob.accountId, { bcc: 'ann@customer.test, ben@customer.test', subject: 'Price list 2027', text: 'Attached.' });
    await smtp.waitFor(before + 1);
    const got = smtp.received[before];
    assert.deepEqual(got.to.sort(), ['ann@customer.test', 'ben@customer.test']);
    const header = got.raw.toString().split('\r\n\r\n')[0];
    assert.match(header, /^To: "?undisclosed-recipients"?: ?;$/m);
    assert.doesNotMatch(header, /^Bcc:/im);
    const stored = await store.models.Message.findById(sent.storedMessageId).lean();
    assert.deepEqual(stored?.to, [], 'the group has no members to store');
    assert.deepEqual(stored?.bcc.map((m) => m.address), ['ann@customer.test', 'ben@customer.test']);
  });

  it('a server that takes two recipients per transaction (452 4.5.3) gets the rest in further transactions at once, not a minute later', async () => {
    smtp.behaviour.rcpt = (_address, accepted) => (accepted >= 2 ? '452 4.5.3 Too many recipients' : undefined);
    try {
      const before = smtp.received.length;
      const team = ['a1', 'a2', 'a3', 'a4', 'a5'].map((name) => `${name}@customer.test`);
      const sent = await sendMessage(deps, bob.viewer, bob.accountId, { to: team.join(', '), subject: 'Team update', text: 'Hello all.' });
      assert.equal(sent.status, 'sent', sent.queuedBecause);
      await smtp.waitFor(before + 3);
      assert.deepEqual(smtp.received.slice(before).map((m) => m.to), [['a1@customer.test', 'a2@customer.test'], ['a3@customer.test', 'a4@customer.test'], ['a5@customer.test']]);
      assert.equal(new Set(smtp.received.slice(before).map((m) => m.parsed.messageId)).size, 1, 'one message, three transactions');
      const entry = await store.models.Outbox.findById(sent.outboxId).lean();
      assert.deepEqual(entry?.recipients.map((r) => r.state), ['accepted', 'accepted', 'accepted', 'accepted', 'accepted']);
      assert.equal(await store.models.Message.countDocuments({ messageId: sent.messageId }), 1, 'stored once');
    } finally {
      smtp.behaviour.rcpt = undefined;
    }
  });
});
