/**
 * What an employee sees of everyday mail from real mailers
 * (tests/fixtures/wild) on the message page: encrypted mail says so instead
 * of "no text", signed mail is readable and marked signed, and a bounce, a
 * read receipt or a vacation reply is labelled for what it is, with why it
 * is not linked to the customer.
 */
import { strict as assert } from 'node:assert';
import { createApiToken, type PublicUser } from '../../gateway/accounts';
import * as wild from '../fixtures/wild';
import { responseChecker } from '../support/openapi';
import { openTestStore } from '../support/store';
import request from 'supertest';
import { buildApp, makeAccount, makeUser, signIn, storeMessage, type SignedIn, type TestApp, type TestStore } from './fixtures';

describe('admin: mail as it arrives from the wild', () => {
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;
  let account: { id: string };
  let session: SignedIn;

  before(async function () {
    this.timeout(60_000);
    store = await openTestStore('admin_wild');
    testApp = buildApp(store);
    bob = await makeUser(store, 'bob@acme.test');
    account = await makeAccount(store, bob, 'bob@acme.test');
    session = await signIn(testApp.app, 'bob@acme.test');
  });
  after(async () => store.drop());

  async function page(raw: Buffer): Promise<{ id: string; text: string }> {
    const { id } = await storeMessage(store, { raw }, { ownerId: bob.id, accountId: account.id });
    return { id, text: (await session.agent.get(`/messages/${id}`).expect(200)).text };
  }
  /** The text of the element with this id (up to its first closing tag of a text element), entities decoded; null when absent. */
  const element = (html: string, id: string) => {
    const inner = new RegExp(`id="${id}"[^>]*>([\\s\\S]*?)</(?:span|div|p|dd|pre)>`).exec(html)?.[1];
    if (inner === undefined) return null;
    return inner.replace(/<[^>]+>/g, '').replace(/\s+/g, ' ').trim().replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
  };

  it('says an S/MIME or PGP/MIME encrypted message cannot be read here, and where it can, instead of "no text"', async () => {
    for (const [message, scheme] of [[wild.smimeEncrypted(), 'S/MIME'], [wild.pgpEncrypted(), 'OpenPGP']] as const) {
      const { id, text } = await page(message.raw);
      assert.doesNotMatch(text, /This message has no text/, scheme);
      assert.match(element(text, 'secure-mime-note') ?? '', new RegExp(`This message is encrypted with ${scheme}\\. Only a mail program holding the recipient's private key can open it`));
      assert.match(text, new RegExp(`id="secure-mime-note"[\\s\\S]*href="/messages/${id}/raw" download>download the \\.eml</a>`));
      assert.equal(element(text, 'secure-mime-badge'), `encrypted · ${scheme}`);
      const list = (await session.agent.get('/?status=all').expect(200)).text;
      const row = new RegExp(`href="/messages/${id}">[\\s\\S]*?<span class="snippet">([\\s\\S]*?)</span>`).exec(list)?.[1] ?? '';
      assert.equal(row.replace(/<[^>]+>/g, ''), '— (encrypted)', `${scheme}: the inbox line says why it is empty`);
    }
  });

  it('shows the text of signed mail, marked signed (not verified), with the signature as a file', async () => {
    const smime = await page(wild.smimeSigned().raw);
    assert.equal(element(smime.text, 'secure-mime-badge'), 'signed · S/MIME');
    assert.match(smime.text, /Please find our signed terms below: payment within 30 days\./);
    assert.match(smime.text, /download>smime\.p7s<\/a>/);
    assert.equal(element(smime.text, 'secure-mime-note'), null);
    const pgp = await page(wild.pgpSigned().raw);
    assert.equal(element(pgp.text, 'secure-mime-badge'), 'signed · OpenPGP');
    assert.match(element(pgp.text, 'text-body') ?? '', /The checksums of release 2\.4 are on the download page\./);
    const plain = await page(wild.outlookTnef().raw);
    assert.equal(element(plain.text, 'secure-mime-badge'), null);
  });

  it('labels bounces, read receipts, vacation replies and newsletters, and says why they are not linked', async () => {
    const expected: Array<[Buffer, string, RegExp]> = [
      [wild.exchangeNdr().raw, 'delivery report', /^Not linked: this is a delivery report \(a bounce\) \(Content-Type: multipart\/report; report-type=delivery-status\)\./],
      [wild.postfixBounce().raw, 'delivery report', /^Not linked: this is a delivery report \(a bounce\)/],
      [wild.readReceipt().raw, 'read receipt', /^Not linked: this is a read receipt/],
      [wild.vacationReply('x-autoreply').raw, 'automatic reply', /^Not linked: this is an automatic reply \(X-Autoreply: yes\)\. Automated and bulk mail is kept but not linked/],
      [wild.vacationReply('auto-submitted').raw, 'automatic reply', /^Not linked: this is an automatic reply \(Auto-Submitted: auto-replied\)/],
      [wild.newsletter().raw, 'mailing list', /^Not linked: this is mailing-list mail \(List-Id\)/],
    ];
    for (const [raw, label, why] of expected) {
      const { text } = await page(raw);
      assert.equal(element(text, 'automated'), label);
      assert.match(element(text, 'not-linked-automated') ?? '', why, label);
    }
    const person = await page(wild.outlookInvite().raw);
    assert.equal(element(person.text, 'automated'), null);
    assert.equal(element(person.text, 'not-linked-automated'), null);
    assert.match(person.text, /Not linked to any customer, contact or lead\./);
  });

  it('shows what, when, where and who of an Outlook invitation, whose body is only the note, and offers it as invite.ics', async () => {
    const { id, text } = await page(wild.outlookInvite().raw);
    assert.match(text, /id="invite-headline">Invitation<\/span>: <span dir="auto">Quarterly review<\/span>/);
    // 14:00 in W. Europe Standard Time (its VTIMEZONE) in July is 12:00 UTC.
    assert.equal(element(text, 'invite-when'), '2025-07-14 12:00 – 13:00 UTC');
    assert.equal(element(text, 'invite-where'), 'Microsoft Teams Meeting');
    assert.equal(element(text, 'invite-organizer'), 'Alice Customer <alice@customer.test>');
    assert.match(text, new RegExp(`id="invite"[\\s\\S]*?href="/messages/${id}/attachments/0" download>Download \\.ics</a>`));
    assert.match(text, new RegExp(`href="/messages/${id}/attachments/0" download>invite\\.ics</a>`), 'the unnamed calendar part is listed as invite.ics');
    const ics = await session.agent.get(`/messages/${id}/attachments/0`).expect(200);
    assert.match(ics.headers['content-disposition'], /filename="?invite\.ics"?$/);
    assert.match(ics.text, /^BEGIN:VCALENDAR\r\nMETHOD:REQUEST/);
  });

  it('says a cancelled Google event is cancelled, and reads the calendar part rather than the invite.ics copy', async () => {
    const request = await page(wild.googleInvite('REQUEST').raw);
    assert.match(request.text, /id="invite-headline">Invitation</);
    assert.equal(element(request.text, 'invite-when'), '2025-01-14 09:00 – 10:00 UTC');
    assert.equal(element(request.text, 'invite-where'), 'Room 4, Customer HQ');
    assert.equal(element(request.text, 'invite-cancelled'), null);
    // The calendar alternative (part 0) is behind the panel's "Download .ics"; the list has Google's invite.ics (part 1) once.
    assert.match(request.text, new RegExp(`id="invite"[\\s\\S]*?href="/messages/${request.id}/attachments/0" download>Download \\.ics</a>`));
    assert.deepEqual([...request.text.matchAll(/href="\/messages\/[0-9a-f]+\/attachments\/(\d+)" download>([^<]*)<\/a>/g)].map((m) => [m[1], m[2]]), [['0', 'Download .ics'], ['1', 'invite.ics']]);
    const cancel = await page(wild.googleInvite('CANCEL').raw);
    assert.match(cancel.text, /id="invite-headline">Cancelled event<\/span>: <span dir="auto">Quarterly review</);
    assert.equal(element(cancel.text, 'invite-cancelled'), 'This event was cancelled by its organiser.');
  });

  it('shows no invitation for mail without a calendar, nor for a calendar part that cannot be read', async () => {
    const plain = await page(wild.smimeSigned().raw);
    assert.doesNotMatch(plain.text, /id="invite"/);
    const broken = await page(Buffer.from(wild.googleInvite('REQUEST').raw.toString().replace(/BEGIN:VEVENT/g, 'BEGIN:VTODO').replace(/END:VEVENT/g, 'END:VTODO')));
    assert.doesNotMatch(broken.text, /id="invite"/);
    assert.match(broken.text, /download>invite\.ics<\/a>/, 'the files are still there to download');
  });

  it('lists the first recipients of a mail to 300 and folds the rest away, all of them still there', async () => {
    const { text } = await page(wild.manyRecipients(300).raw);
    const to = /<dd dir="auto" id="to">([\s\S]*?)<\/dd>/.exec(text)?.[1] ?? '';
    const before = to.split('<details')[0];
    assert.equal((before.match(/&lt;person\d+@/g) ?? []).length, 12, 'twelve shown before the fold');
    assert.match(to, /<summary>and 138 more<\/summary>/);
    assert.match(to, /Person 149 &lt;person149@partner2\.test&gt;<\/details>/);
    const cc = /<dd dir="auto" id="cc">([\s\S]*?)<\/dd>/.exec(text)?.[1] ?? '';
    assert.match(cc, /<summary>and 139 more<\/summary>[\s\S]*bob@acme\.test<\/details>/);
    const few = await page(wild.outlookInvite().raw);
    assert.doesNotMatch(few.text, /more-recipients/);
  });

  it('shows a message forwarded as an attachment (headers, text, what it carries) and keeps it downloadable', async () => {
    const { id, text } = await page(wild.forwardedAsAttachment().raw);
    const panel = /<section class="panel attached-message" id="attached-0">([\s\S]*?)<\/section>/.exec(text)?.[1] ?? '';
    assert.match(panel, /<h2>Attached message: <span dir="auto">Complaint about order 1234<\/span><\/h2>/);
    assert.match(panel, new RegExp(`href="/messages/${id}/attachments/0" download>Download \\.eml</a>`));
    assert.match(panel, /<dt>From<\/dt><dd dir="auto">Alice Customer &lt;alice@customer\.test&gt;<\/dd>/);
    assert.match(panel, /<dt>Date<\/dt><dd>2025-01-05 18:00 UTC<\/dd>/);
    assert.match(panel, /The delivery arrived damaged\. See my earlier mail attached\./);
    assert.match(panel, /Its attachments, in the \.eml: Order 1234\.eml/);
    assert.match(text, /download>Complaint about order 1234\.eml<\/a>/, 'still in the attachment list');
  });

  it('shows the mail below "See below." when a mailer forwards it as an rfc822 part with no disposition', async () => {
    const { text } = await page(wild.forwardedInline().raw);
    assert.match(element(text, 'text-body') ?? '', /^See below\.$/);
    const panel = /<section class="panel attached-message" id="attached-0">([\s\S]*?)<\/section>/.exec(text)?.[1] ?? '';
    assert.match(panel, /Attached message: <span dir="auto">Order 1234</);
    assert.match(panel, /Please send 40 units of item 7\./);
    const plain = await page(wild.smimeSigned().raw);
    assert.doesNotMatch(plain.text, /attached-message/);
  });

  it("explains Outlook's winmail.dat rather than leaving a file no one can open", async () => {
    const { text } = await page(wild.outlookTnef().raw);
    assert.match(element(text, 'text-body') ?? '', /Hi Bob, the updated price list is attached\./);
    assert.match(text, /download>winmail\.dat<\/a> <span class="muted small">[^<]*<\/span>\s*<div class="small muted tnef-note">Outlook packed this message's formatting, and possibly its real attachments, into this file \(TNEF\), which only Outlook opens\./);
    const other = await page(wild.smimeSigned().raw);
    assert.doesNotMatch(other.text, /tnef-note/);
  });

  it('tells an API client which mail is automated (and why), as the document describes it', async () => {
    const token = (await createApiToken(store, 'bob@acme.test', { name: 'wild' }, {})).token;
    const checker = responseChecker();
    const read = async (raw: Buffer) => {
      const { id } = await storeMessage(store, { raw }, { ownerId: bob.id, accountId: account.id });
      const res = await request(testApp.app).get(`/api/v1/messages/${id}`).set('Authorization', `Bearer ${token}`).expect(200);
      assert.deepEqual(checker.problems('get', '/messages/{id}', { status: res.status, headers: res.headers, body: res.body }), []);
      return res.body as { automated: unknown };
    };
    assert.deepEqual((await read(wild.exchangeNdr().raw)).automated, { kind: 'delivery-report', reason: 'Content-Type: multipart/report; report-type=delivery-status' });
    assert.deepEqual((await read(wild.vacationReply('x-autoreply').raw)).automated, { kind: 'auto-reply', reason: 'X-Autoreply: yes' });
    assert.equal((await read(wild.outlookInvite().raw)).automated, null);
  });

  it('finds a mail by what the customer wrote in the message forwarded to us as an attachment', async () => {
    const chain = await storeMessage(store, { raw: wild.forwardedAsAttachment().raw }, { ownerId: bob.id, accountId: account.id });
    const inline = await storeMessage(store, { raw: wild.forwardedInline().raw }, { ownerId: bob.id, accountId: account.id });
    const found = async (q: string) => [...(await session.agent.get(`/?status=all&q=${encodeURIComponent(q)}`).expect(200)).text.matchAll(/class="msg-row[^"]*" href="\/messages\/([0-9a-f]+)"/g)].map((m) => m[1]);
    assert.ok((await found('arrived damaged')).includes(chain.id), 'the attached mail\'s text');
    assert.ok((await found('40 units of item 7')).includes(chain.id), 'the text of the mail attached to the attached mail');
    assert.ok((await found('40 units of item 7')).includes(inline.id), 'the mail forwarded inline as an rfc822 part');
    assert.deepEqual(await found('units of item 8'), []);
  });

  it('says which list a newsletter came through and links its unsubscribe page, holding its remote images and tracking pixel', async () => {
    const { id, text } = await page(wild.newsletter().raw);
    assert.match(/id="mailing-list">([\s\S]*?)<\/dd>/.exec(text)?.[1] ?? '', /^<span dir="auto">Customer product news<\/span>\s*<a class="small" id="unsubscribe"/);
    assert.match(text, /<a class="small" id="unsubscribe" href="https:\/\/mail\.customer\.test\/unsubscribe\/[a-z0-9]+" target="_blank" rel="noopener noreferrer nofollow">Unsubscribe<\/a>/);
    assert.match(text, /Load images \(2\)/);
    const body = (await session.agent.get(`/messages/${id}/body`).expect(200)).text;
    assert.doesNotMatch(body, /t\.customer\.test|cdn\.customer\.test/, 'neither the banner nor the pixel is fetched');
    const mailOnly = await page(Buffer.from(wild.newsletter().raw.toString().replace(/List-Unsubscribe: <https:[^>]+>, /, 'List-Unsubscribe: ')));
    assert.match(mailOnly.text, /id="unsubscribe" href="mailto:unsubscribe-[a-z0-9]+@mail\.customer\.test">Unsubscribe by mail<\/a>/);
    const person = await page(wild.smimeSigned().raw);
    assert.equal(element(person.text, 'mailing-list'), null);
  });
});
