/**
 * Inline (cid:) images in the console and the API: a multipart/related HTML
 * mail shows its logo from a data: URL in the body frame (no "load images"
 * click, remote images still withheld), the logo is not listed again as an
 * attachment but still downloads by position under a sensible name, and
 * references that must not be inlined (a non-image part, a missing part,
 * an image over the size limit) stay broken with their alt text.
 */
import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { Types } from 'mongoose';
import request from 'supertest';
import { createApiToken, type PublicUser } from '../../gateway/accounts';
import { createLogger } from '../../gateway/core/log';
import { ingest } from '../../gateway/mail/ingest';
import { INLINE_IMAGE_MAX_BYTES } from '../../gateway/mail/inline-images';
import { openTestStore } from '../support/store';
import { solidPng } from '../support/png';
import { buildApp, makeAccount, makeUser, signIn, storeMessage, type TestApp, type TestStore } from './fixtures';

const binary = (res: request.Response, done: (err: Error | null, body: Buffer) => void) => {
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  res.on('end', () => done(null, Buffer.concat(chunks)));
};

/** The data: URLs of the body frame's images, decoded, by alt text. */
function framedImages(html: string): Map<string, { src: string | null }> {
  const images = new Map<string, { src: string | null }>();
  for (const [tag] of html.matchAll(/<img\b[^>]*>/g)) {
    const alt = /\balt="([^"]*)"/.exec(tag)?.[1] ?? '';
    images.set(alt, { src: /\bsrc="([^"]*)"/.exec(tag)?.[1] ?? null });
  }
  return images;
}

/** The "Attachments" list of the message page: [index, name] per entry. */
function listedAttachments(page: string): Array<[number, string]> {
  const section = /<h2>Attachments<\/h2>([\s\S]*?)<\/section>/.exec(page)?.[1] ?? '';
  return [...section.matchAll(/href="\/messages\/[0-9a-f]+\/attachments\/(\d+)" download>([^<]*)<\/a>/g)].map((m) => [Number(m[1]), m[2]]);
}

describe('admin: inline (cid:) images', () => {
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;
  let bobToken: string;
  let account: { id: string };
  const logo = solidPng(24, 12);
  const oversize = Buffer.concat([solidPng(8, 8, [0, 0, 0]), crypto.randomBytes(INLINE_IMAGE_MAX_BYTES)]);
  const pdf = Buffer.from('%PDF-1.4 quote');
  let related = '';
  let qaCase = '';

  before(async function () {
    this.timeout(60_000);
    store = await openTestStore('admin_inline_images');
    testApp = buildApp(store);
    bob = await makeUser(store, 'bob@acme.test');
    bobToken = (await createApiToken(store, 'bob@acme.test', { name: 't' }, {})).token;
    account = await makeAccount(store, bob, 'bob@acme.test');
    related = (await storeMessage(store, {
      subject: 'Signature with a logo',
      html: [
        '<p>Kind regards,</p><img src="cid:Logo123" alt="Logo">',
        '<img src="cid:notes@acme" alt="Notes">',
        '<img src="cid:nowhere@acme" alt="Missing">',
        '<img src="cid:huge@acme" alt="Huge">',
        '<img src="https://tracker.example/open.gif" alt="tracker">',
      ].join('\n'),
      attachments: [
        { cid: 'logo123', content: logo, contentType: 'image/png', filename: false },
        { cid: 'notes@acme', content: 'not an image', contentType: 'text/plain', filename: 'notes.txt' },
        { cid: 'huge@acme', content: oversize, contentType: 'image/png', filename: 'huge.png' },
        { filename: 'quote.pdf', content: pdf, contentType: 'application/pdf' },
      ],
    }, { ownerId: bob.id, accountId: account.id })).id;
    // QA's message as reported: the image part has a Content-ID and no Content-Disposition or name at all.
    const raw = Buffer.from([
      'From: Alice <alice@customer.test>',
      'To: bob@acme.test',
      'Subject: QA inline logo',
      'Message-ID: <qa-inline@customer.test>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/related; boundary="rel"',
      '',
      '--rel',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<p>Hello</p><img src="cid:logo123" alt="Logo">',
      '--rel',
      'Content-Type: image/png',
      'Content-ID: <logo123>',
      'Content-Transfer-Encoding: base64',
      '',
      logo.toString('base64'),
      '--rel--',
      '',
    ].join('\r\n'));
    const ownerId = new Types.ObjectId(bob.id);
    const stored = await ingest({ store, log: createLogger({ level: 'silent' }) }, { raw, mailboxKey: account.id, accountId: new Types.ObjectId(account.id), ownerId, source: { kind: 'forward' } });
    qaCase = stored.id!.toString();
  });
  after(async () => store.drop());

  it('shows a multipart/related image in the body frame from a data: URL, before any "load images" click', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    for (const id of [related, qaCase]) {
      const body = await agent.get(`/messages/${id}/body`).expect(200);
      const images = framedImages(body.text);
      assert.equal(images.get('Logo')?.src, `data:image/png;base64,${logo.toString('base64')}`, `message ${id}`);
      assert.match(body.headers['content-security-policy'], /img-src data:;/, 'the frame policy is unchanged: data: images only');
    }
    const page = await agent.get(`/messages/${related}`).expect(200);
    assert.match(page.text, /Load images \(1\)/, 'only the remote image waits for the click');
    const withRemote = await agent.get(`/messages/${related}/body?images=1`).expect(200);
    assert.equal(framedImages(withRemote.text).get('tracker')?.src, 'https://tracker.example/open.gif');
    assert.match(framedImages(withRemote.text).get('Logo')?.src ?? '', /^data:image\/png;base64,/, 'and with remote images on too');
  });

  it('leaves a cid: pointing at a non-image, at no part, or at an image over the size limit without a source', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const body = await agent.get(`/messages/${related}/body`).expect(200);
    const images = framedImages(body.text);
    for (const alt of ['Notes', 'Missing', 'Huge']) assert.equal(images.get(alt)?.src, null, `${alt}: ${String(images.get(alt)?.src).slice(0, 60)}`);
    assert.equal(images.get('tracker')?.src, null, 'the remote image is still withheld');
    assert.equal((body.text.match(/data:/g) ?? []).length, 1, 'only the logo is inlined');
    assert.ok(body.text.length < 10_000, `the oversize image is not in the frame (${body.text.length} characters)`);
  });

  it('lists ordinary attachments but not the images shown in the body, and every part still downloads by position', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const page = await agent.get(`/messages/${related}`).expect(200);
    assert.deepEqual(listedAttachments(page.text), [[1, 'notes.txt'], [2, 'huge.png'], [3, 'quote.pdf']]);
    const qaPage = await agent.get(`/messages/${qaCase}`).expect(200);
    assert.deepEqual(listedAttachments(qaPage.text), []);
    assert.doesNotMatch(qaPage.text, /<h2>Attachments<\/h2>|attachment-1/);

    const pdfDownload = await agent.get(`/messages/${related}/attachments/3`).buffer(true).parse(binary).expect(200);
    assert.ok((pdfDownload.body as Buffer).equals(pdf));
    assert.match(pdfDownload.headers['content-disposition'], /^attachment; filename="?quote\.pdf"?$/);
    for (const id of [related, qaCase]) {
      const logoDownload = await agent.get(`/messages/${id}/attachments/0`).buffer(true).parse(binary).expect(200);
      assert.ok((logoDownload.body as Buffer).equals(logo));
      assert.match(logoDownload.headers['content-type'], /^image\/png/);
      assert.match(logoDownload.headers['content-disposition'], /^attachment; filename="?logo123\.png"?$/);
    }
  });

  it('badges the inbox row of a message with a file attached, not one whose only part is its logo', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const inbox = await agent.get('/').expect(200);
    const row = (id: string) => new RegExp(`<a class="msg-row[^"]*" href="/messages/${id}">([\\s\\S]*?)</a>`).exec(inbox.text)?.[1] ?? '';
    assert.match(row(related), /Signature with a logo/, 'the row is on the page');
    assert.match(row(related), /<span class="badge">attachment<\/span>/, 'the PDF alongside the logo is an attachment');
    assert.match(row(qaCase), /QA inline logo/, 'the row is on the page');
    assert.doesNotMatch(row(qaCase), /<span class="badge">attachment<\/span>/, 'a logo alone is not');
    const api = await request(testApp.app).get('/api/v1/messages').set('Authorization', `Bearer ${bobToken}`).expect(200);
    const flags = new Map(api.body.messages.map((m: { id: string; hasAttachments: boolean }) => [m.id, m.hasAttachments]));
    assert.equal(flags.get(related), true);
    assert.equal(flags.get(qaCase), false);
  });

  it('API: keeps cid: sources in the html and marks the parts the console shows inline', async () => {
    const res = await request(testApp.app).get(`/api/v1/messages/${related}`).set('Authorization', `Bearer ${bobToken}`).expect(200);
    assert.match(res.body.html, /<img src="cid:Logo123" alt="Logo" \/>/);
    assert.doesNotMatch(res.body.html, /data:|tracker\.example/);
    assert.deepEqual(
      res.body.attachments.map((a: { index: number; filename: string; contentId: string; inline: boolean; url: string }) => [a.index, a.filename, a.contentId, a.inline, a.url]),
      [
        [0, 'logo123.png', 'logo123', true, `/api/v1/messages/${related}/attachments/0`],
        [1, 'notes.txt', 'notes@acme', false, `/api/v1/messages/${related}/attachments/1`],
        [2, 'huge.png', 'huge@acme', false, `/api/v1/messages/${related}/attachments/2`],
        [3, 'quote.pdf', '', false, `/api/v1/messages/${related}/attachments/3`],
      ],
    );
    const download = await request(testApp.app).get(`/api/v1/messages/${related}/attachments/0`).set('Authorization', `Bearer ${bobToken}`).buffer(true).parse(binary).expect(200);
    assert.ok((download.body as Buffer).equals(logo));
  });

  it('inlines images of messages stored with legacy GridFS attachment copies', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const legacy = (await storeMessage(store, {
      subject: 'Stored by an older version',
      html: '<img src="cid:old-logo" alt="Old logo">',
      attachments: [{ cid: 'old-logo', content: logo, contentType: 'image/png', filename: 'old.png' }],
    }, { ownerId: bob.id, accountId: account.id })).id;
    // What older versions wrote: a copy of the part in GridFS, which is what it is served from. A different
    // image there than in the raw message shows which one the frame used.
    const copy = solidPng(3, 3, [0, 90, 0]);
    const blobId = await store.blobs.put(copy, { kind: 'attachment' });
    await store.models.Message.updateOne({ _id: legacy }, { $set: { 'attachments.0.blobId': blobId } });
    const body = await agent.get(`/messages/${legacy}/body`).expect(200);
    assert.equal(framedImages(body.text).get('Old logo')?.src, `data:image/png;base64,${copy.toString('base64')}`);
  });
});
