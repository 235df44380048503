/**
 * Sending through an account's provider, end to end on loopback: the
 * recording submission server (AUTH over STARTTLS), the test Dovecot for the
 * Sent folder, the real store and ingest pipeline, the real IMAP syncer.
 */
import { strict as assert } from 'node:assert';
import { ImapFlow } from 'imapflow';
import mongoose from 'mongoose';
import { AppError } from '../../gateway/core/errors';
import { loadConfig } from '../../gateway/core/config';
import { sendMessage, type SendDeps } from '../../gateway/send';
import { startSyncer } from '../../gateway/sync/schedule';
import type { DovecotServer } from '../support/dovecot';
import { ownCount } from '../support/metrics';
import { openTestStore, storedRaw } from '../support/store';
import { log, makeContact, newSecretBox, sendableAccount, sendDeps, sharedDovecot, startRecordingSmtp, type RecordingSmtp, type SendFixture, type TestStore } from './support';

async function sentFolderMessages(dovecot: DovecotServer, fixture: SendFixture): Promise<Buffer[]> {
  const client = new ImapFlow({ ...dovecot.clientOptions(fixture.email, fixture.password), logger: false });
  await client.connect();
  try {
    const lock = await client.getMailboxLock('Sent');
    try {
      const out: Buffer[] = [];
      if ((client.mailbox as { exists: number }).exists === 0) return out;
      for await (const message of client.fetch('1:*', { source: true, flags: true })) {
        assert.ok(message.flags?.has('\\Seen'), 'appended as read');
        out.push(message.source!);
      }
      return out;
    } finally {
      lock.release();
    }
  } finally {
    await client.logout();
  }
}

describe('send: through the account\'s SMTP server, filed in Sent and stored', function () {
  this.timeout(60_000);
  let store: TestStore;
  let dovecot: DovecotServer;
  let smtp: RecordingSmtp;
  const secretBox = newSecretBox();
  let deps: SendDeps;
  let bob: SendFixture;

  before(async () => {
    store = await openTestStore('send_flow');
    dovecot = await sharedDovecot();
    smtp = await startRecordingSmtp({ tls: 'starttls' });
    deps = sendDeps(store, secretBox);
    bob = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'starttls' }, { name: 'Bob Sender' });
  });
  after(async () => {
    await smtp?.stop();
    await store?.drop();
  });
  beforeEach(() => {
    smtp.behaviour.rcpt = undefined;
    smtp.behaviour.data = undefined;
  });

  it('sends: the server receives it over STARTTLS with AUTH, the stored copy has source "sent" and the Sent folder has the same bytes', async () => {
    const before = smtp.received.length;
    const contact = await makeContact(store, 'Alice Customer', 'alice@customer.test');
    const sentBefore = await ownCount('postroom_outbound_attempts_total', { status: 'sent', code: 'none' });
    const result = await sendMessage(deps, bob.viewer, bob.accountId, { to: 'Alice Customer <alice@customer.test>', cc: 'carol@customer.test', bcc: 'archive@acme.test', subject: 'Quote for 12 widgets', text: 'Hello Alice,\n\nhere is the quote.\n\nBob' });
    assert.equal(result.status, 'sent');
    assert.ok(result.storedMessageId);

    await smtp.waitFor(before + 1);
    const got = smtp.received[before];
    assert.equal(got.user, bob.email, 'authenticated as the account');
    assert.equal(got.from, bob.email);
    assert.deepEqual([...got.to].sort(), ['alice@customer.test', 'archive@acme.test', 'carol@customer.test']);
    assert.equal(got.parsed.subject, 'Quote for 12 widgets');
    assert.equal(got.parsed.messageId, `<${result.messageId}>`);
    assert.equal(got.parsed.from?.value[0].address, bob.email);
    assert.equal(got.parsed.from?.value[0].name, 'Bob Sender');
    assert.equal(got.parsed.headers.get('bcc'), undefined, 'Bcc is not transmitted');
    assert.match(got.parsed.text ?? '', /here is the quote/);

    const stored = await store.models.Message.findById(result.storedMessageId).lean();
    assert.ok(stored);
    assert.deepEqual(stored.sources.map((s) => s.kind), ['sent']);
    assert.equal(stored.messageId, result.messageId);
    assert.equal(stored.accountId?.toString(), bob.accountId);
    assert.deepEqual(stored.bcc.map((b) => b.address), ['archive@acme.test'], 'the own copy keeps Bcc');
    assert.equal(stored.unread, false, 'what Bob sent is not unread mail for Bob');
    assert.deepEqual([...stored.sources[0].envelopeTo].sort(), ['alice@customer.test', 'archive@acme.test', 'carol@customer.test']);

    const links = await store.models.Link.find({ messageId: stored._id }).lean();
    assert.deepEqual(links.map((l) => l.objectId.toString()), [contact._id.toString()], 'linked to the contact it was sent to');

    const sent = await sentFolderMessages(dovecot, bob);
    assert.equal(sent.length, 1);
    const storedBytes = await storedRaw(store, stored._id);
    assert.ok(sent[0].equals(storedBytes), 'the Sent folder holds exactly the stored bytes');

    const entry = await store.models.Outbox.findById(result.outboxId).lean();
    assert.equal(entry?.status, 'sent');
    assert.equal(entry?.sentFolder?.state, 'appended');
    assert.equal(entry?.nextAttemptAt, null);
    assert.equal(entry?.transmitBlobId, null, 'the outbox copies are dropped once filed');
    assert.equal(await ownCount('postroom_outbound_attempts_total', { status: 'sent', code: 'none' }), sentBefore + 1, 'counted for /metrics');
  });

  it('is stored and linked once even after the IMAP sync reads the copy in Sent', async () => {
    const carol = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'starttls' });
    const contact = await makeContact(store, 'Dave Buyer', 'dave@buyer.test');
    const result = await sendMessage(deps, carol.viewer, carol.accountId, { to: 'dave@buyer.test', subject: 'Following up', text: 'Any news?' });
    assert.equal(result.status, 'sent');

    const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', SECRET_KEY: 'a'.repeat(64), BUSINESS_DOMAINS: 'acme.test' });
    const syncer = startSyncer({ config, log, store, secretBox, schedule: false });
    try {
      const report = await syncer.runPassNow();
      const mine = report.accounts.find((a) => a.accountId === carol.accountId);
      assert.equal(mine?.outcome, 'synced', JSON.stringify(report));
      assert.equal(mine?.duplicates, 1, 'the Sent copy was recognised');
      assert.equal(mine?.stored, 0);
    } finally {
      await syncer.stop();
    }
    const copies = await store.models.Message.find({ accountId: new mongoose.Types.ObjectId(carol.accountId) }).lean();
    assert.equal(copies.length, 1, 'one message, not two');
    assert.deepEqual(copies[0].sources.map((s) => s.kind).sort(), ['imap', 'sent']);
    assert.equal(copies[0].sources.find((s) => s.kind === 'imap')?.folder, 'Sent');
    const links = await store.models.Link.find({ objectId: contact._id }).lean();
    assert.equal(links.length, 1, 'linked once');
  });

  it('does not append to Sent when the provider files sent mail itself (Gmail), but still stores the message', async () => {
    const gmail = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'starttls' });
    // The Gmail preset, with the server pointed at the loopback test server (saved host/port win over the preset's).
    await store.models.MailAccount.updateOne({ _id: new mongoose.Types.ObjectId(gmail.accountId) }, { $set: { 'smtp.service': 'gmail' } });
    const result = await sendMessage(deps, gmail.viewer, gmail.accountId, { to: 'alice@customer.test', subject: 'Filed by Gmail', text: 'x' });
    assert.equal(result.status, 'sent');
    const entry = await store.models.Outbox.findById(result.outboxId).lean();
    assert.equal(entry?.sentFolder?.state, 'skipped');
    assert.match(entry?.sentFolder?.error ?? '', /gmail files sent mail in its Sent folder itself/);
    assert.equal((await sentFolderMessages(dovecot, gmail)).length, 0, 'nothing appended');
    assert.ok(await store.models.Message.exists({ _id: result.storedMessageId }));
  });

  it('refuses a header injection attempt in every header field with a 400 naming the field, and sends nothing', async () => {
    const before = smtp.received.length;
    const attempts: Array<[string, Record<string, unknown>]> = [
      ['subject', { to: 'alice@customer.test', subject: 'Hi\r\nBcc: victim@evil.test', text: 'x' }],
      ['subject', { to: 'alice@customer.test', subject: 'Hi\nX-Injected: yes', text: 'x' }],
      ['to', { to: 'alice@customer.test\r\nBcc: victim@evil.test', subject: 'Hi', text: 'x' }],
      ['cc', { to: 'alice@customer.test', cc: 'carol@customer.test\nX-Evil: 1', subject: 'Hi', text: 'x' }],
      ['bcc', { to: 'alice@customer.test', bcc: ['ok@customer.test', 'x@y.test\rSubject: spoof'], subject: 'Hi', text: 'x' }],
      ['attachments.0.filename', { to: 'alice@customer.test', subject: 'Hi', text: 'x', attachments: [{ filename: 'a.txt"\r\nContent-Type: text/html', content: Buffer.from('x') }] }],
      ['attachments.0.contentType', { to: 'alice@customer.test', subject: 'Hi', text: 'x', attachments: [{ filename: 'a.txt', contentType: 'text/plain\r\nX-Evil: 1', content: Buffer.from('x') }] }],
    ];
    const entriesBefore = await store.models.Outbox.countDocuments();
    for (const [field, request] of attempts) {
      await assert.rejects(sendMessage(deps, bob.viewer, bob.accountId, request), (err: AppError) => {
        assert.equal(err.status, 400, `${field}: ${err.message}`);
        assert.equal(err.code, 'VALIDATION_FAILED');
        assert.match(err.fields?.[field] ?? '', /line breaks/, `${field}: ${JSON.stringify(err.fields)}`);
        return true;
      });
    }
    assert.equal(await store.models.Outbox.countDocuments(), entriesBefore, 'nothing written to the outbox');
    assert.equal(smtp.received.length, before, 'nothing sent');
  });

  it('carries attachments, and a reply has In-Reply-To, References and a "Re:" subject without stacking', async () => {
    const before = smtp.received.length;
    const pdf = Buffer.from('%PDF-1.4\n' + 'x'.repeat(5000));
    const first = await sendMessage(deps, bob.viewer, bob.accountId, {
      to: 'alice@customer.test', subject: 'Re: Contract', text: 'Signed copy attached.',
      attachments: [{ filename: 'contract-signed.pdf', contentType: 'application/pdf', content: pdf }, { filename: 'notes ü.txt', content: Buffer.from('grüße') }],
    });
    assert.equal(first.status, 'sent');
    await smtp.waitFor(before + 1);
    const got = smtp.received[before].parsed;
    assert.deepEqual(got.attachments.map((a) => a.filename), ['contract-signed.pdf', 'notes ü.txt']);
    assert.ok(got.attachments[0].content.equals(pdf), 'attachment bytes intact');
    assert.equal(got.attachments[0].contentType, 'application/pdf');
    const stored = await store.models.Message.findById(first.storedMessageId).lean();
    assert.equal(stored?.attachments.length, 2);

    // A reply to a message that is itself a reply (References chain of one).
    const original = await store.models.Message.findById(first.storedMessageId).lean();
    const reply = await sendMessage(deps, bob.viewer, bob.accountId, { text: 'One more thing.', original: { id: original!._id.toString(), action: 'reply' } });
    await smtp.waitFor(before + 2);
    const threaded = smtp.received[before + 1].parsed;
    assert.equal(threaded.subject, 'Re: Contract', 'no "Re: Re:"');
    assert.equal(threaded.inReplyTo, `<${first.messageId}>`);
    const references = ([] as string[]).concat(threaded.references ?? []);
    assert.deepEqual(references, [`<${first.messageId}>`]);
    assert.deepEqual(smtp.received[before + 1].to, ['alice@customer.test'], 'a reply to one\'s own sent mail goes to its recipients');
    assert.match(threaded.text ?? '', /One more thing\.\n\nOn .+, Bob Sender <sender-[0-9a-f]+@acme\.test> wrote:\n> Signed copy attached\./);
    const storedReply = await store.models.Message.findById(reply.storedMessageId).lean();
    assert.ok(storedReply?.inReplyTo?.includes(first.messageId), `stored In-Reply-To ${storedReply?.inReplyTo}`);
  });

  it('on a 5xx for the only recipient shows the server\'s reply, stores nothing as sent and queues nothing', async () => {
    smtp.behaviour.rcpt = (address) => (address === 'nobody@customer.test' ? '550 5.1.1 <nobody@customer.test>: Recipient address rejected: User unknown' : undefined);
    const before = await store.models.Message.countDocuments();
    const failedBefore = await ownCount('postroom_outbound_attempts_total', { status: 'failed', code: 'RECIPIENT_REFUSED' });
    await assert.rejects(sendMessage(deps, bob.viewer, bob.accountId, { to: 'nobody@customer.test', subject: 'Hello?', text: 'x' }), (err: AppError) => {
      assert.equal(err.code, 'RECIPIENT_REFUSED');
      assert.equal(err.status, 422);
      assert.match(err.message, /550 5\.1\.1 <nobody@customer\.test>: Recipient address rejected: User unknown/);
      return true;
    });
    assert.equal(await store.models.Message.countDocuments(), before, 'nothing stored');
    const entry = await store.models.Outbox.findOne({ subject: 'Hello?' }).lean();
    assert.equal(entry?.status, 'failed');
    assert.equal(entry?.nextAttemptAt, null, 'not retried');
    assert.equal(entry?.storedMessageId, null);
    assert.equal(await ownCount('postroom_outbound_attempts_total', { status: 'failed', code: 'RECIPIENT_REFUSED' }), failedBefore + 1, 'counted for /metrics, with its code');
  });
});
