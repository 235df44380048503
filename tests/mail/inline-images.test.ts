import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import MailComposer from 'nodemailer/lib/mail-composer';
import { attachmentFilename, attachmentsFromRaw } from '../../gateway/mail/attachments';
import { contentIdOfUrl, imageDataUrl, normalizeContentId, planInlineImages } from '../../gateway/mail/inline-images';

const MB = 1024 * 1024;

describe('inline images: which cid: references are shown, and from which part', () => {
  it('reads the Content-ID a cid: URL names (RFC 2392: %-encoded, compared without brackets and case)', () => {
    const cases: Array<[string, string | null]> = [
      ['cid:logo123', 'logo123'],
      ['CID:Logo123', 'logo123'],
      ['  cid:image001.png@01DA2B3C.4D5E6F70', 'image001.png@01da2b3c.4d5e6f70'],
      ['cid:part1%40example.test', 'part1@example.test'],
      ['cid:%3Cwrapped%3E', 'wrapped'],
      ['cid:100%', '100%'],
      ['cid:', null],
      ['https://example.test/cid:logo', null],
      ['data:image/png;base64,AAAA', null],
      ['logo123', null],
    ];
    for (const [url, expected] of cases) assert.equal(contentIdOfUrl(url), expected, url);
    assert.equal(normalizeContentId(' <Logo123> '), 'logo123');
  });

  it('plans image parts only, each once, first part of a Content-ID, within the per-image and total limits', () => {
    const parts = [
      { contentId: 'LOGO123', contentType: 'image/png', size: 100 },
      { contentId: 'notes', contentType: 'text/plain', size: 10 },
      { contentId: 'big', contentType: 'image/jpeg', size: 2001 },
      { contentId: '', contentType: 'image/png', size: 5 },
      { contentId: 'a', contentType: 'image/gif', size: 900 },
      { contentId: 'b', contentType: 'image/webp', size: 900 },
      { contentId: 'logo123', contentType: 'image/png', size: 7 },
      { contentId: 'odd', contentType: 'image/png; x="y"', size: 1 },
      { contentId: 'svg', contentType: 'Image/SVG+XML', size: 50 },
    ];
    const limits = { perImage: 2000, total: 1800 };
    const plan = planInlineImages(['logo123', 'notes', 'missing', 'big', 'logo123', 'a', 'b', 'odd', 'svg'], parts, limits);
    assert.deepEqual(plan.map((image) => [image.index, image.contentId, image.contentType]), [
      [0, 'logo123', 'image/png'], // the first part with that id, once, though referenced twice
      [4, 'a', 'image/gif'],
      // b: 100 + 900 + 900 would pass the total
      [8, 'svg', 'image/svg+xml'],
    ]);
    assert.deepEqual(planInlineImages(['b'], parts, limits).map((image) => image.index), [5], 'alone, b fits');
    assert.deepEqual(planInlineImages([], parts), []);
    assert.deepEqual(planInlineImages(['big'], parts).map((image) => image.index), [2], 'the default limit is 2 MB, not 2000 bytes');
    assert.deepEqual(planInlineImages(['big'], [{ contentId: 'big', contentType: 'image/png', size: 2 * MB + 1 }]), []);
    assert.equal(imageDataUrl('image/png', Buffer.from('abc')), 'data:image/png;base64,YWJj');
  });

  it('names a part without a file name after its Content-ID or position, with the extension of its type', () => {
    const cases: Array<[{ filename?: string; contentType?: string; contentId?: string }, number, string]> = [
      [{ contentType: 'image/png', contentId: 'logo123' }, 0, 'logo123.png'],
      [{ contentType: 'image/jpeg', contentId: 'image001.jpg@01DA2B3C.4D5E6F70' }, 0, 'image001.jpg'],
      [{ contentType: 'image/png', contentId: 'image001.png@01DA2B3C.4D5E6F70' }, 0, 'image001.png'],
      [{ contentType: 'image/gif', contentId: '../../etc/passwd' }, 0, 'etc_passwd.gif'],
      [{ contentType: 'image/png', contentId: '' }, 2, 'attachment-3.png'],
      [{ contentType: 'application/octet-stream', contentId: '' }, 0, 'attachment-1'],
      [{ contentType: 'x-unknown', contentId: 'part' }, 0, 'part'],
      [{ filename: 'Quote.PDF', contentType: 'image/png', contentId: 'logo' }, 0, 'Quote.PDF'],
      // Unnamed parts of everyday machine mail: Outlook's invitation, the halves of a bounce and of a read receipt.
      [{ contentType: 'text/calendar', contentId: '' }, 1, 'invite.ics'],
      [{ contentType: 'Text/RFC822-Headers' }, 0, 'returned-headers.txt'],
      [{ contentType: 'message/delivery-status' }, 0, 'delivery-status.txt'],
      [{ contentType: 'message/disposition-notification' }, 0, 'read-receipt.txt'],
      [{ filename: 'meeting.ics', contentType: 'text/calendar' }, 0, 'meeting.ics'],
    ];
    for (const [attachment, index, expected] of cases) assert.equal(attachmentFilename(attachment, index), expected, JSON.stringify(attachment));
  });

  it('reads chosen parts back in one parse: the exact bytes, nothing for a missing position or a part over the limit', async () => {
    const logo = crypto.randomBytes(3000);
    const big = crypto.randomBytes(50_000);
    const photo = crypto.randomBytes(20_000);
    const raw = await new MailComposer({
      from: 'alice@customer.test',
      to: 'bob@acme.test',
      subject: 'related',
      html: '<img src="cid:logo"><img src="cid:big"><img src="cid:photo">',
      attachments: [
        { cid: 'logo', content: logo, contentType: 'image/png' },
        { cid: 'big', content: big, contentType: 'image/png' },
        { filename: 'quote.pdf', content: crypto.randomBytes(10_000), contentType: 'application/pdf' },
        { cid: 'photo', content: photo, contentType: 'image/jpeg' },
      ],
    }).compile().build();
    // nodemailer puts the cid: parts into the multipart/related beside the HTML, the file after it: logo, big, photo, quote.pdf.
    const got = await attachmentsFromRaw(Readable.from([raw]), new Set([0, 1, 2, 9]), { maxBytes: 40_000 });
    assert.deepEqual([...got.keys()].sort(), [0, 2]);
    assert.ok(got.get(0)!.equals(logo));
    assert.ok(got.get(2)!.equals(photo));
    assert.equal((await attachmentsFromRaw(Readable.from([raw]), new Set())).size, 0);
  });

  it('stops reading the raw message after the last part asked for', async () => {
    const first = crypto.randomBytes(1000);
    const raw = await new MailComposer({
      from: 'alice@customer.test',
      to: 'bob@acme.test',
      subject: 'early image, large tail',
      html: '<img src="cid:first">',
      attachments: [
        { cid: 'first', content: first, contentType: 'image/png' },
        { filename: 'tail.bin', content: crypto.randomBytes(12 * MB), contentType: 'application/octet-stream' },
      ],
    }).compile().build();
    let served = 0;
    const source = Readable.from((function* () {
      for (let at = 0; at < raw.length; at += 64 * 1024) {
        served += Math.min(64 * 1024, raw.length - at);
        yield raw.subarray(at, at + 64 * 1024);
      }
    })());
    const got = await attachmentsFromRaw(source, new Set([0]));
    assert.ok(got.get(0)!.equals(first));
    assert.ok(served < raw.length / 2, `read ${served} of ${raw.length} bytes`);
  });
});
