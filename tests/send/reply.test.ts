/**
 * Pure parts of sending, table-driven: reply/forward subjects, threading
 * headers, who a reply goes to, quoting, address parsing and the draft
 * checks (header injection), and composition with MailComposer.
 */
import { strict as assert } from 'node:assert';
import { simpleParser } from 'mailparser';
import { AppError } from '../../gateway/core/errors';
import {
  checkDraft, composeMessage, forwardSubject, parseAddressList, prepareFromOriginal, quoteForReply, replyRecipients, replySubject, threadingHeaders,
} from '../../gateway/send';

/** The user's own addresses, without Postroom's intake domain. */
const mine = (...addresses: string[]) => ({ addresses, postroomDomains: [] });

describe('send: replies and forwards (pure)', () => {
  it('adds "Re:" / "Fwd:" without stacking prefixes', () => {
    const replies: Array<[string, string]> = [
      ['Quote', 'Re: Quote'],
      ['Re: Quote', 'Re: Quote'],
      ['RE: Quote', 'Re: Quote'],
      ['re:Quote', 'Re: Quote'],
      ['Re[2]: Quote', 'Re: Quote'],
      ['AW: Angebot', 'Re: Angebot'],
      ['SV: Tilbud', 'Re: Tilbud'],
      // Prefixes localised mail programs (Outlook, Foxmail, Naver, Thunderbird) write, with the full-width colon.
      ['回复：发票', 'Re: 发票'],
      ['答复: 发票', 'Re: 发票'],
      ['回覆: 發票', 'Re: 發票'],
      ['회신: 견적', 'Re: 견적'],
      ['返信: 見積', 'Re: 見積'],
      ['Ответ: Счёт', 'Re: Счёт'],
      ['ΑΠ: Τιμολόγιο', 'Re: Τιμολόγιο'],
      ['YNT: Fatura', 'Re: Fatura'],
      ['VS: Lasku', 'Re: Lasku'],
      ['השב: חשבונית', 'Re: חשבונית'],
      ['رد: فاتورة', 'Re: فاتورة'],
      ['Fwd: Quote', 'Re: Fwd: Quote'],
      // A thread between mail programs of several languages: each added its own prefix; the answer has one.
      ['Re: Re: Re: Quote', 'Re: Quote'],
      ['AW: AW: Angebot', 'Re: Angebot'],
      ['SV: Re: AW: Tilbud', 'Re: Tilbud'],
      ['Re: Fwd: Re: Quote', 'Re: Fwd: Re: Quote'],
      // Italian and Brazilian Outlook, German Notes.
      ['R: Offerta', 'Re: Offerta'],
      ['R: RIF: Offerta', 'Re: Offerta'],
      ['RES: RES: Proposta', 'Re: Proposta'],
      ['Antwort: Angebot', 'Re: Angebot'],
      ['I: Offerta', 'Re: I: Offerta'],
      ['Rechnung', 'Re: Rechnung'],
      ['Reply needed', 'Re: Reply needed'],
      ['Re: ', 'Re:'],
      ['Order 4711\r\n shipped\u0007', 'Re: Order 4711 shipped'],
      ['  Spaced  ', 'Re: Spaced'],
      ['', 'Re:'],
    ];
    for (const [subject, expected] of replies) assert.equal(replySubject(subject), expected, subject);
    assert.equal(replySubject('x'.repeat(998)).length, 998, 'cut at the line limit');
    const forwards: Array<[string, string]> = [
      ['Quote', 'Fwd: Quote'],
      ['Fwd: Quote', 'Fwd: Quote'],
      ['FW: Quote', 'Fwd: Quote'],
      ['WG: Angebot', 'Fwd: Angebot'],
      ['转发：发票', 'Fwd: 发票'],
      ['轉寄: 發票', 'Fwd: 發票'],
      ['전달: 견적', 'Fwd: 견적'],
      ['転送: 見積', 'Fwd: 見積'],
      ['RV: Factura', 'Fwd: Factura'],
      ['ENC: Fatura', 'Fwd: Fatura'],
      ['İLT: Fatura', 'Fwd: Fatura'],
      ['ΠΡΘ: Τιμολόγιο', 'Fwd: Τιμολόγιο'],
      ['Пересл: Счёт', 'Fwd: Счёт'],
      ['Re: Quote', 'Fwd: Re: Quote'],
      ['Fwd: WG: Fwd: Angebot', 'Fwd: Angebot'],
      ['I: Offerta', 'Fwd: Offerta'],
      ['I need a quote', 'Fwd: I need a quote'],
    ];
    for (const [subject, expected] of forwards) assert.equal(forwardSubject(subject), expected, subject);
  });

  it('builds In-Reply-To and References (RFC 5322 §3.6.4)', () => {
    assert.deepEqual(threadingHeaders({ messageId: 'a@x' }), { inReplyTo: 'a@x', references: ['a@x'] });
    assert.deepEqual(threadingHeaders({ messageId: '<c@x>', references: ['a@x', '<b@x>'] }), { inReplyTo: 'c@x', references: ['a@x', 'b@x', 'c@x'] });
    assert.deepEqual(threadingHeaders({ messageId: 'b@x', inReplyTo: '<a@x>' }), { inReplyTo: 'b@x', references: ['a@x', 'b@x'] }, 'In-Reply-To stands in for missing References');
    assert.deepEqual(threadingHeaders({ messageId: '' }), { inReplyTo: '', references: [] }, 'no Message-ID, no threading');
    assert.deepEqual(threadingHeaders({ messageId: 'bad id with spaces' }), { inReplyTo: '', references: [] });
    const long = Array.from({ length: 40 }, (_, i) => `m${i}@x`);
    const trimmed = threadingHeaders({ messageId: 'last@x', references: long }).references;
    assert.equal(trimmed.length, 20);
    assert.equal(trimmed[0], 'm0@x', 'keeps the thread root');
    assert.equal(trimmed[19], 'last@x');
  });

  it('replies to Reply-To or From; reply-all adds To and Cc without the sender\'s own addresses or repeats', () => {
    const original = {
      from: { address: 'alice@customer.test', name: 'Alice' },
      to: [{ address: 'bob@acme.test', name: 'Bob' }, { address: 'carol@customer.test', name: '' }],
      cc: [{ address: 'ALICE@customer.test', name: '' }, { address: 'dave@acme.test', name: '' }, { address: 'carol@customer.test', name: '' }],
    };
    assert.deepEqual(replyRecipients(original, 'reply', mine('bob@acme.test')), { to: [{ name: 'Alice', address: 'alice@customer.test' }], cc: [] });
    assert.deepEqual(replyRecipients(original, 'reply-all', mine('Bob@acme.test')), {
      to: [{ name: 'Alice', address: 'alice@customer.test' }],
      cc: [{ name: '', address: 'carol@customer.test' }, { name: '', address: 'dave@acme.test' }],
    });
    const withReplyTo = { ...original, replyTo: [{ address: 'support@customer.test', name: 'Support' }] };
    assert.deepEqual(replyRecipients(withReplyTo, 'reply', mine('bob@acme.test')).to, [{ name: 'Support', address: 'support@customer.test' }]);
    const ownSent = { from: { address: 'bob@acme.test', name: 'Bob' }, to: [{ address: 'alice@customer.test', name: '' }] };
    assert.deepEqual(replyRecipients(ownSent, 'reply', mine('bob@acme.test')).to, [{ name: '', address: 'alice@customer.test' }], 'replying to own sent mail');
    // A mailbox on an IDN domain: stored in A-labels, named in Unicode by the headers of the mail.
    const toIdn = { from: { address: 'anna@customer.test', name: '' }, to: [{ address: 'info@münchen.de', name: '' }, { address: 'team@münchen.de', name: '' }] };
    assert.deepEqual(replyRecipients(toIdn, 'reply-all', mine('info@xn--mnchen-3ya.de')).cc, [{ name: '', address: 'team@münchen.de' }], 'not the user\'s own IDN address');
    const ccDropbox = { ...original, cc: [{ address: 'dropbox.k7f3@in.postroom.test', name: '' }, { address: 'eve@customer.test', name: '' }] };
    assert.deepEqual(replyRecipients(ccDropbox, 'reply-all', { addresses: ['bob@acme.test'], postroomDomains: ['IN.postroom.test'] }).cc, [{ name: '', address: 'carol@customer.test' }, { name: '', address: 'eve@customer.test' }], 'no Postroom intake address');
  });

  it('quotes the original with an attribution line and "> " prefixes (RFC 3676 §4.5); forwards with a header block', () => {
    const original = { from: { address: 'alice@customer.test', name: 'Alice' }, to: [{ address: 'bob@acme.test', name: '' }], subject: 'Quote', date: new Date('2026-03-03T10:00:00Z'), text: 'Hi Bob,\r\n> earlier\r\n\r\nAlice\n\n' };
    assert.equal(quoteForReply(original), 'On Tue, 03 Mar 2026 10:00:00 +0000, Alice <alice@customer.test> wrote:\n> Hi Bob,\n>> earlier\n>\n> Alice\n');
    const forward = prepareFromOriginal(original, 'forward', mine('bob@acme.test'));
    assert.deepEqual(forward.to, []);
    assert.equal(forward.subject, 'Fwd: Quote');
    assert.equal(forward.inReplyTo, '');
    assert.match(forward.quote, /^---------- Forwarded message ----------\nFrom: Alice <alice@customer.test>\nDate: Tue, 03 Mar 2026 10:00:00 \+0000\nSubject: Quote\nTo: bob@acme.test\n\nHi Bob,/);
  });
});

describe('send: drafts and composition (pure)', () => {
  it('parses address lists as people type them and names a bad entry', () => {
    assert.deepEqual(parseAddressList('Alice <alice@x.test>, bob@y.test; "Carol, C." <carol@z.test>').mailboxes, [
      { name: 'Alice', address: 'alice@x.test' }, { name: '', address: 'bob@y.test' }, { name: 'Carol, C.', address: 'carol@z.test' },
    ]);
    assert.deepEqual(parseAddressList(['a@x.test', '', 'b@x.test']).mailboxes.map((m) => m.address), ['a@x.test', 'b@x.test']);
    assert.match(parseAddressList('alice@x.test, not-an-address').problem ?? '', /"not-an-address" is not an email address/);
    assert.match(parseAddressList('a@x.test b@y.test').problem ?? '', /separate the addresses/);
    assert.match(parseAddressList('John <a@x.test> <b@y.test>').problem ?? '', /separate the addresses/);
    // A name that mentions an address, before one in brackets, is a name (Google Groups); a quoted ";" is part of a name.
    assert.deepEqual(parseAddressList(`'alice@x.test' via Sales <sales@groups.test>; "Smith; Anna" <anna@x.test>`).mailboxes, [
      { name: "'alice@x.test' via Sales", address: 'sales@groups.test' }, { name: 'Smith; Anna', address: 'anna@x.test' },
    ]);
    assert.match(parseAddressList('a@x.test\r\nBcc: c@d.test').problem ?? '', /line breaks/);
    // Internationalised domains go out in their ASCII (IDNA) form; a non-ASCII local part is named as what it is.
    assert.deepEqual(parseAddressList('Jörg <info@müller.test>, büro@bäcker.test').problem, 'büro@bäcker.test has letters outside ASCII before the @; such addresses cannot be sent to from Postroom (they need SMTPUTF8, RFC 6531)');
    assert.deepEqual(parseAddressList('Jörg <info@müller.test>, info@xn--bcker-gra.test').mailboxes, [{ name: 'Jörg', address: 'info@xn--mller-kva.test' }, { name: '', address: 'info@xn--bcker-gra.test' }]);
  });

  it('refuses header injection and other bad drafts with one 400 naming every field', () => {
    assert.throws(() => checkDraft({ to: '', subject: 'x\u0007y', text: 'x', attachments: [{ filename: '', content: Buffer.from('x') }, { filename: 'a', contentType: 'not a type', content: Buffer.from('x') }] }, { maxBytes: 1000 }), (err: AppError) => {
      assert.equal(err.status, 400);
      assert.deepEqual(err.fields, {
        to: 'needs at least one address',
        subject: 'must not contain control characters',
        'attachments.0.filename': 'is needed',
        'attachments.1.contentType': 'must be a media type such as application/pdf',
      });
      return true;
    });
    assert.throws(() => checkDraft({ to: 'a@x.test', text: '', attachments: [{ filename: 'big.bin', content: Buffer.alloc(2048) }] }, { maxBytes: 1024 }), (err: AppError) => /at most 1 KB/.test(err.fields?.attachments ?? ''));
    const many = Array.from({ length: 101 }, (_, i) => `r${i}@x.test`).join(', ');
    assert.throws(() => checkDraft({ to: many }, { maxBytes: 1024 }), (err: AppError) => /at most 100/.test(err.fields?.to ?? ''));
  });

  it('composes with MailComposer: CRLF only, encoded non-ASCII headers, threading headers, Bcc only in the own copy', async () => {
    const draft = checkDraft({ to: 'Zoë <zoe@x.test>', bcc: 'hidden@x.test', subject: 'Grüße aus Köln', text: 'Line one\nLine two\r\n.\nDot line', attachments: [{ filename: 'résumé.pdf', contentType: 'application/pdf', content: Buffer.from('%PDF') }] }, { maxBytes: 10_000 });
    const { transmit, file } = await composeMessage({ from: { name: 'Bob', address: 'bob@acme.test' }, draft, messageId: 'm1@acme.test', date: new Date('2026-01-02T03:04:05Z'), inReplyTo: 'p@x.test', references: ['r@x.test', 'p@x.test'] });
    for (const bytes of [transmit, file]) assert.doesNotMatch(bytes.toString('latin1'), /[^\r]\n/, 'no bare LF');
    assert.doesNotMatch(transmit.toString(), /^Bcc:/im);
    assert.match(file.toString(), /^Bcc: hidden@x\.test\r$/m);
    assert.equal(file.toString().replace(/^Bcc: .*\r\n/m, ''), transmit.toString(), 'the two copies differ only by Bcc');
    const parsed = await simpleParser(file);
    assert.equal(parsed.subject, 'Grüße aus Köln');
    assert.equal(parsed.messageId, '<m1@acme.test>');
    assert.equal(parsed.inReplyTo, '<p@x.test>');
    assert.deepEqual(parsed.references, ['<r@x.test>', '<p@x.test>']);
    assert.equal(parsed.attachments[0].filename, 'résumé.pdf');
    assert.equal(parsed.text, 'Line one\nLine two\n.\nDot line');
    assert.equal(parsed.date?.toISOString(), '2026-01-02T03:04:05.000Z');
  });
});
