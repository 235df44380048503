import { strict as assert } from 'node:assert';
import type { PublicUser } from '../../gateway/accounts';
import { buildApp, makeAccount, makeUser, signIn, storeMessage, type TestApp, type TestStore } from './fixtures';
import { openTestStore } from '../support/store';

/** Bytes of a message as a mailer wrote them: header lines as given (UTF-8 or latin1 per line), CRLF line ends. */
function rawMessage(lines: Array<string | Buffer>, body: string): Buffer {
  return Buffer.concat([...lines.flatMap((line) => [typeof line === 'string' ? Buffer.from(line) : line, Buffer.from('\r\n')]), Buffer.from(`\r\n${body}`)]);
}

describe('admin: mail in other languages and charsets, as other mailers write it', () => {
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;
  let bobAccount: { id: string };

  before(async () => {
    store = await openTestStore('admin_i18n');
    testApp = buildApp(store);
    bob = await makeUser(store, 'bob@acme.test');
    bobAccount = await makeAccount(store, bob, 'bob@acme.test');
  });

  after(async () => {
    await store.drop();
  });

  it('shows raw UTF-8 headers (RFC 6532, SMTPUTF8 mail) under "All headers" as written, not as "å±±ç°å¤ªé", and its attachment by name', async () => {
    const raw = rawMessage([
      'From: 山田太郎 <taro@example.jp>',
      'To: bob@acme.test',
      'Subject: =?UTF-8?B?6KuL5rGC5pu4?=',
      'X-Mailer-Note: 用户 ü',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b"',
    ], [
      '--b', 'Content-Type: text/plain; charset=utf-8', '', '添付をご確認ください。',
      '--b', 'Content-Type: application/pdf; name="請求書.pdf"', 'Content-Disposition: attachment; filename="請求書.pdf"',
      'Content-Transfer-Encoding: base64', '', Buffer.from('%PDF-1.4').toString('base64'), '--b--', '',
    ].join('\r\n'));
    const { id } = await storeMessage(store, { raw }, { ownerId: bob.id, accountId: bobAccount.id });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const page = await agent.get(`/messages/${id}`).expect(200);
    assert.match(page.text, /download>請求書\.pdf</);
    assert.match(page.text, /<td>用户 ü<\/td>/, 'the raw UTF-8 header in "All headers"');
    assert.match(page.text, /<td>山田太郎 &lt;taro@example.jp&gt;<\/td>/, 'the raw UTF-8 From in "All headers"');
    const download = await agent.get(`/messages/${id}/attachments/0`).expect(200);
    assert.match(download.headers['content-disposition'], /filename\*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8\.pdf/);
    const found = await agent.get('/').query({ q: '請求書.pdf' }).expect(200);
    assert.ok(found.text.includes(`/messages/${id}`), 'a search for the attachment name finds the mail');
  });

  it('lists and finds a mail whose Subject and From an older mailer wrote in unlabelled latin1 8-bit, not as "Gr\uFFFD\uFFFDe" from "J\uFFFDrgen"', async () => {
    const raw = rawMessage([Buffer.from('From: J\xfcrgen M\xfcller <juergen@example.de>', 'latin1'), 'To: bob@acme.test', Buffer.from('Subject: Gr\xfc\xdfe aus M\xfcnchen', 'latin1')], 'Hallo\r\n');
    const { id } = await storeMessage(store, { raw }, { ownerId: bob.id, accountId: bobAccount.id });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const found = await agent.get('/').query({ q: 'Grüße aus München' }).expect(200);
    assert.ok(found.text.includes(`/messages/${id}`), 'a search for the subject finds the mail');
    assert.ok(found.text.includes('Grüße aus München'), 'the inbox list shows the subject');
    assert.ok(found.text.includes('Jürgen Müller'), 'the inbox list shows the sender');
    const byName = await agent.get('/').query({ q: 'Jürgen' }).expect(200);
    assert.ok(byName.text.includes(`/messages/${id}`), 'a search for the sender finds the mail');
  });

  it('shows and finds unlabelled bodies as a browser reads them: HTML by its <meta charset>, 8-bit text as latin1 when not UTF-8', async () => {
    const newsletter = rawMessage(['From: news@shop.example.jp', 'To: bob@acme.test', 'Subject: newsletter', 'MIME-Version: 1.0', 'Content-Type: text/html'], '');
    const sjis = Buffer.concat([newsletter, Buffer.from('<html><head><meta charset="shift_jis"></head><body><p>'), Buffer.from([0x93, 0xfa, 0x96, 0x7b, 0x8c, 0xea]), Buffer.from('</p></body></html>\r\n')]);
    const html = await storeMessage(store, { raw: sjis }, { ownerId: bob.id, accountId: bobAccount.id });
    const latin1 = rawMessage(['From: hans@example.de', 'To: bob@acme.test', 'Subject: Termin'], '');
    const text = await storeMessage(store, { raw: Buffer.concat([latin1, Buffer.from('Treffen in M\xfcnchen am Montag\r\n', 'latin1')]) }, { ownerId: bob.id, accountId: bobAccount.id });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const body = await agent.get(`/messages/${html.id}/body`).expect(200);
    assert.ok(body.text.includes('日本語'), 'the HTML body shown in its declared charset');
    const foundHtml = await agent.get('/').query({ q: '日本語' }).expect(200);
    assert.ok(foundHtml.text.includes(`/messages/${html.id}`), 'a search in Japanese finds the newsletter');
    const page = await agent.get(`/messages/${text.id}`).expect(200);
    assert.ok(page.text.includes('Treffen in München'), 'the latin1 text body');
    const foundText = await agent.get('/').query({ q: 'in München' }).expect(200);
    assert.ok(foundText.text.includes(`/messages/${text.id}`), 'a search for a word of the body finds the mail');
  });

  it('shows right-to-left mail right to left: the direction of <html dir="rtl">, and of Arabic and Hebrew subjects, names and text', async () => {
    const hebrew = await storeMessage(store, {
      from: 'דנה כהן <dana@example.co.il>',
      subject: 'הזמנה 123 - אישור!',
      text: 'שלום, ההזמנה 123 אושרה.',
      html: '<html dir="rtl" lang="he"><head><title>x</title></head><body><p>שלום, ההזמנה 123 אושרה.</p></body></html>',
    }, { ownerId: bob.id, accountId: bobAccount.id });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const body = await agent.get(`/messages/${hebrew.id}/body`).expect(200);
    assert.match(body.text, /<div dir="rtl" lang="he">/, 'the direction the mail set on <html>');
    assert.match(body.text, /class="postroom-message" tabindex="0" dir="auto"/, 'a mail that sets none follows its first words');
    const page = await agent.get(`/messages/${hebrew.id}`).expect(200);
    assert.match(page.text, /<h1 dir="auto">הזמנה 123 - אישור!<\/h1>/);
    assert.match(page.text, /<dt>From<\/dt><dd dir="auto">דנה כהן/);
    const arabic = await storeMessage(store, { subject: 'فاتورة 42', text: 'مرحبا، الفاتورة رقم 42 مرفقة.' }, { ownerId: bob.id, accountId: bobAccount.id });
    const textPage = await agent.get(`/messages/${arabic.id}`).expect(200);
    assert.match(textPage.text, /<pre class="text-part" id="text-body" dir="auto">مرحبا/);
    const list = await agent.get('/').query({ q: 'فاتورة' }).expect(200);
    assert.match(list.text, /<span class="subject" dir="auto">فاتورة 42<\/span>/);
  });

  it('finds mail of an IDN domain by either form a person types: münchen.de or xn--mnchen-3ya.de', async () => {
    const ascii = await storeMessage(store, { from: 'info@xn--mnchen-3ya.de', subject: 'Stadtwerke' }, { ownerId: bob.id, accountId: bobAccount.id });
    const eai = rawMessage(['From: 用户@例子.广告', 'To: bob@acme.test', 'Subject: EAI'], 'x\r\n');
    const unicode = await storeMessage(store, { raw: eai }, { ownerId: bob.id, accountId: bobAccount.id });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const page = await agent.get(`/messages/${ascii.id}`).expect(200);
    assert.match(page.text, /<dt>From<\/dt><dd dir="auto">info@münchen\.de<\/dd>/);
    const byUnicode = await agent.get('/').query({ q: 'münchen.de' }).expect(200);
    assert.ok(byUnicode.text.includes(`/messages/${ascii.id}`), 'found by the Unicode form');
    assert.match(byUnicode.text, /<span class="from" dir="auto" title="info@münchen\.de">info@münchen\.de<\/span>/);
    const byAscii = await agent.get('/').query({ q: '用户@xn--fsqu00a.xn--4rr70v' }).expect(200);
    assert.ok(byAscii.text.includes(`/messages/${unicode.id}`), 'found by the A-label form');
  });

  it('shows a mailbox on an IDN domain as typed (info@münchen.de) on the account pages, and deletes it when typed so', async () => {
    const account = await makeAccount(store, bob, 'info@münchen.de');
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    const list = await agent.get('/preferences/email').expect(200);
    assert.ok(list.text.includes(`<a href="/preferences/email/${account.id}">info@münchen.de</a>`), 'the list names it as typed');
    const edit = await agent.get(`/preferences/email/${account.id}`).expect(200);
    assert.ok(edit.text.includes('<h1>info@münchen.de</h1>'));
    await agent.post(`/preferences/email/${account.id}/delete`).type('form').send({ _csrf: csrf, confirm: 'info@münchen.de' }).expect(303);
  });

  it('finds a phrase typed with the ideographic space (U+3000) of Japanese and Chinese input methods', async () => {
    const { id } = await storeMessage(store, { subject: 'ご案内', text: '来週の会議　資料を添付します。' }, { ownerId: bob.id, accountId: bobAccount.id });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const found = await agent.get('/').query({ q: '会議　資料' }).expect(200);
    assert.ok(found.text.includes(`/messages/${id}`), 'found as typed');
  });

  it('finds names, subjects and text whatever accents are typed or left out: muller finds Müller, lodz Łódź, resume a decomposed résumé', async () => {
    const mueller = await storeMessage(store, { from: 'Jürgen Müller <jm@example.de>', subject: 'Angebot', text: 'Guten Tag' }, { ownerId: bob.id, accountId: bobAccount.id });
    const lodz = await storeMessage(store, { subject: 'Spotkanie w Łodzi', text: 'Do zobaczenia, Łukasz Wójcik' }, { ownerId: bob.id, accountId: bobAccount.id });
    // Text as macOS mailers may write it: e + U+0301 rather than é.
    const resume = await storeMessage(store, { subject: 'Candidature', text: 'Veuillez trouver mon re\u0301sume\u0301 ci-joint.' }, { ownerId: bob.id, accountId: bobAccount.id });
    const istanbul = await storeMessage(store, { subject: 'İstanbul ofisi', text: 'Merhaba' }, { ownerId: bob.id, accountId: bobAccount.id });
    const plain = await storeMessage(store, { from: 'Anna Muller <am@example.fr>', subject: 'Rendez-vous', text: 'Bonjour' }, { ownerId: bob.id, accountId: bobAccount.id });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const found = async (q: string) => {
      const page = (await agent.get('/').query({ q }).expect(200)).text;
      return [mueller, lodz, resume, istanbul, plain].filter(({ id }) => page.includes(`/messages/${id}`)).map(({ id }) => id);
    };
    assert.deepEqual(await found('muller'), [mueller.id, plain.id], 'the sender\'s name without its umlaut, and the one written so');
    assert.deepEqual(await found('Müller'), [mueller.id, plain.id], 'typed with the umlaut: the Muller without one too');
    assert.deepEqual(await found('MULLER'), [mueller.id, plain.id]);
    assert.deepEqual(await found('spotkanie w lodzi'), [lodz.id], 'Ł has no decomposition, and is typed as L');
    assert.deepEqual(await found('lukasz wojcik'), [lodz.id], 'the body too');
    assert.deepEqual(await found('résumé'), [resume.id], 'precomposed query, decomposed text');
    assert.deepEqual(await found('resume ci-joint'), [resume.id]);
    assert.deepEqual(await found('istanbul'), [istanbul.id], 'Turkish İ is found by i');
    assert.deepEqual(await found('mallet'), [], 'other words still do not match');
  });
});
