/**
 * The outbox: temporary failures (4xx, the server unreachable) are queued
 * and retried with backoff by the worker (a schedule of milliseconds here),
 * partial refusals, giving up, authentication failures while sending, and
 * the per-account rate limit.
 */
import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mongoose from 'mongoose';
import { AppError } from '../../gateway/core/errors';
import { DEFAULT_ORPHAN_AGE_MS, sweepOrphanBlobs } from '../../gateway/store';
import { SYSTEM_ACTOR } from '../../gateway/accounts';
import { authenticateMailAccountSmtp, checkDraft, composeMessage, listOutbox, newMessageId, sendMessage, startOutboxWorker, type RateLimitedError, type SendDeps } from '../../gateway/send';
import { claimDueEntry } from '../../gateway/send/deliver';
import { ImapFlow } from 'imapflow';
import { SMTPServer } from 'smtp-server';
import { generateTestCertificates } from '../support/certs';
import type { DovecotServer } from '../support/dovecot';
import { openTestStore } from '../support/store';
import { newSecretBox, sendableAccount, sendDeps, sharedDovecot, startRecordingSmtp, type RecordingSmtp, type SendFixture, type TestStore } from './support';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, check: () => Promise<T | null | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('send: the outbox, retries and the rate limit', function () {
  this.timeout(60_000);
  let store: TestStore;
  let dovecot: DovecotServer;
  let smtp: RecordingSmtp;
  const secretBox = newSecretBox();
  // Retries after 200 ms, 400 ms, … capped at 1 s: the backoff runs in seconds.
  const fast = { baseMs: 200, capMs: 1000, giveUpAfterMs: 60_000, sentFolderAttempts: 3 };
  let deps: SendDeps;
  let bob: SendFixture;

  before(async () => {
    store = await openTestStore('send_outbox');
    dovecot = await sharedDovecot();
    smtp = await startRecordingSmtp({ tls: 'implicit' });
    deps = sendDeps(store, secretBox, { retry: fast });
    bob = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
  });
  after(async () => {
    await smtp?.stop();
    await store?.drop();
  });
  beforeEach(() => {
    smtp.behaviour.rcpt = undefined;
    smtp.behaviour.data = undefined;
  });

  it('queues a message the server answers 451, shows it as queued, and the worker retries it with backoff until it is sent', async () => {
    let deferrals = 2;
    smtp.behaviour.data = () => (deferrals-- > 0 ? '451 4.3.0 Temporary local problem, try again later' : undefined);
    const before = smtp.received.length;
    const result = await sendMessage(deps, bob.viewer, bob.accountId, { to: 'alice@customer.test', subject: 'Greylisted once', text: 'hello' });
    assert.equal(result.status, 'queued');
    assert.equal(result.storedMessageId, null, 'nothing stored as sent while queued');
    assert.match(result.queuedBecause, /451 4\.3\.0 Temporary local problem/);
    assert.ok(result.nextAttemptAt && result.nextAttemptAt.getTime() > Date.now() - 1000);
    assert.equal(await store.models.Message.countDocuments({ messageId: result.messageId }), 0);
    const [view] = await listOutbox(store, bob.viewer, { accountId: bob.accountId });
    assert.equal(view.id, result.outboxId);
    assert.equal(view.label, 'Queued');
    assert.match(view.lastError, /451/);
    // The queued copy names its outbox entry: the orphan sweep, even a day later, leaves it for the retry.
    const queued = await store.models.Outbox.findById(result.outboxId).lean();
    const blob = await store.conn.db!.collection('raw.files').findOne({ _id: queued!.transmitBlobId! });
    assert.deepEqual([blob?.metadata.owner.collection, String(blob?.metadata.owner.id)], ['outbox', result.outboxId]);
    await sweepOrphanBlobs(store, { now: new Date(Date.now() + DEFAULT_ORPHAN_AGE_MS + 60_000) });
    assert.ok(await store.conn.db!.collection('raw.files').findOne({ _id: queued!.transmitBlobId! }), 'the queued copy survives the sweep');

    const worker = startOutboxWorker(deps, { intervalMs: 100 });
    try {
      const entry = await until('the entry to be sent', async () => {
        const row = await store.models.Outbox.findById(result.outboxId).lean();
        return row?.status === 'sent' ? row : null;
      });
      assert.equal(entry.attempts, 3, 'two deferrals, then accepted');
      assert.ok(entry.storedMessageId);
      assert.equal(entry.sentFolder?.state, 'appended');
      await smtp.waitFor(before + 1);
      assert.equal(smtp.received[before].parsed.messageId, `<${result.messageId}>`, 'the retry sends the same message');
      const stored = await store.models.Message.find({ messageId: result.messageId }).lean();
      assert.equal(stored.length, 1);
      assert.equal(stored[0].sources[0].kind, 'sent');
    } finally {
      await worker.stop();
    }
  });

  it('queues when the server cannot be reached at all, and sends once it is back', async () => {
    // A port with nothing listening, then the real server again.
    const closed = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const id = new mongoose.Types.ObjectId(bob.accountId);
    await store.models.MailAccount.updateOne({ _id: id }, { $set: { 'smtp.port': closed } });
    const result = await sendMessage(deps, bob.viewer, bob.accountId, { to: 'alice@customer.test', subject: 'Network trouble', text: 'hello' });
    assert.equal(result.status, 'queued');
    assert.match(result.queuedBecause, /refused the connection/);
    const queued = await store.models.Outbox.findById(result.outboxId).lean();
    assert.equal(queued?.lastErrorCode, 'CONNECTION_REFUSED');

    await store.models.MailAccount.updateOne({ _id: id }, { $set: { 'smtp.port': smtp.port } });
    const worker = startOutboxWorker(deps, { intervalMs: 100 });
    try {
      await until('the entry to be sent', async () => (await store.models.Outbox.findById(result.outboxId).lean())?.status === 'sent');
    } finally {
      await worker.stop();
    }
  });

  it('with one recipient refused (5xx) and one deferred (4xx): sends to the rest at once, stores it once, retries only the deferred one', async () => {
    let deferred = 1;
    smtp.behaviour.rcpt = (address) => {
      if (address === 'ghost@customer.test') return '550 5.1.1 No such user';
      if (address === 'slow@customer.test' && deferred-- > 0) return '450 4.2.0 Mailbox busy';
      return undefined;
    };
    const before = smtp.received.length;
    const result = await sendMessage(deps, bob.viewer, bob.accountId, { to: 'alice@customer.test, ghost@customer.test', cc: 'slow@customer.test', subject: 'Mixed replies', text: 'hello' });
    assert.equal(result.status, 'queued', 'a recipient is still to be reached');
    assert.deepEqual(result.refused, [{ address: 'ghost@customer.test', reply: '550 5.1.1 No such user' }]);
    assert.ok(result.storedMessageId, 'stored as sent: the server took it for alice');
    await smtp.waitFor(before + 1);
    assert.deepEqual(smtp.received[before].to, ['alice@customer.test']);

    const worker = startOutboxWorker(deps, { intervalMs: 100 });
    try {
      const entry = await until('the entry to finish', async () => {
        const row = await store.models.Outbox.findById(result.outboxId).lean();
        return row?.status === 'sent' ? row : null;
      });
      assert.deepEqual(entry.recipients.map((r) => [r.address, r.state]), [['alice@customer.test', 'accepted'], ['ghost@customer.test', 'refused'], ['slow@customer.test', 'accepted']]);
      await smtp.waitFor(before + 2);
      assert.deepEqual(smtp.received[before + 1].to, ['slow@customer.test'], 'the retry goes to the deferred recipient only');
      assert.equal(await store.models.Message.countDocuments({ messageId: result.messageId }), 1, 'stored once');
      const [view] = (await listOutbox(store, bob.viewer)).filter((v) => v.id === result.outboxId);
      assert.equal(view.label, 'Sent (1 refused)');
    } finally {
      await worker.stop();
    }
  });

  it('gives up on a recipient that stays deferred past the give-up time', async () => {
    smtp.behaviour.rcpt = () => '421 4.7.0 Try again later';
    const shortLived = { ...deps, retry: { ...fast, giveUpAfterMs: 600 } };
    const result = await sendMessage(shortLived, bob.viewer, bob.accountId, { to: 'alice@customer.test', subject: 'Never accepted', text: 'hello' });
    assert.equal(result.status, 'queued');
    const worker = startOutboxWorker(shortLived, { intervalMs: 100 });
    try {
      const entry = await until('the entry to fail', async () => {
        const row = await store.models.Outbox.findById(result.outboxId).lean();
        return row?.status === 'failed' ? row : null;
      });
      assert.match(entry.recipients[0].reply, /^gave up after \d+ attempts: 421 4\.7\.0 Try again later/);
      assert.equal(entry.nextAttemptAt, null);
      assert.equal(await store.models.Message.countDocuments({ messageId: result.messageId }), 0, 'nothing stored as sent');
    } finally {
      await worker.stop();
    }
  });

  it('an authentication failure while sending is shown with the server\'s text, not queued, and stops the account from sending until it re-authenticates', async () => {
    const carol = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
    smtp.addUser(carol.email, 'changed-at-the-provider');
    await assert.rejects(sendMessage(deps, carol.viewer, carol.accountId, { to: 'alice@customer.test', subject: 'x', text: 'x' }), (err: AppError) => {
      assert.equal(err.code, 'AUTH_FAILED');
      assert.match(err.message, /535 5\.7\.8 Username and Password not accepted/);
      assert.doesNotMatch(err.message, new RegExp(carol.password));
      return true;
    });
    const account = await store.models.MailAccount.findById(carol.accountId).lean();
    assert.equal(account?.smtp?.status, 'failing');
    assert.equal(account?.smtp?.lastErrorCode, 'AUTH_FAILED');
    await assert.rejects(sendMessage(deps, carol.viewer, carol.accountId, { to: 'alice@customer.test', subject: 'x', text: 'x' }), (err: AppError) => {
      assert.equal(err.code, 'ACCOUNT_NOT_SENDABLE');
      assert.equal(err.status, 409);
      assert.match(err.message, /Authenticate SMTP/);
      return true;
    });
  });

  it('a queued message whose retry meets a changed password waits for the user to authenticate again, then goes out; it is not thrown away', async () => {
    const dora = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
    smtp.behaviour.data = () => '451 4.3.0 Try again later';
    const result = await sendMessage(deps, dora.viewer, dora.accountId, { to: 'alice@customer.test', subject: 'Queued, then the password changed', text: 'Keep me.' });
    assert.equal(result.status, 'queued');
    smtp.behaviour.data = undefined;
    // The password is changed at the provider before the retry.
    smtp.addUser(dora.email, 'changed-at-the-provider');
    const worker = startOutboxWorker(deps, { intervalMs: 100 });
    try {
      const waiting = await until('the retry to meet the refused login', async () => {
        const entry = await store.models.Outbox.findById(result.outboxId).lean();
        return entry && entry.lastErrorCode === 'AUTH_FAILED' ? entry : null;
      });
      assert.equal(waiting.status, 'queued', 'kept for the user to put right, not failed');
      assert.ok(waiting.transmitBlobId && waiting.fileBlobId, 'the message itself is kept');
      assert.match(waiting.recipients[0].reply, /^Waiting: .*535 5\.7\.8 Username and Password not accepted/);
      assert.equal((await store.models.MailAccount.findById(dora.accountId).lean())?.smtp?.status, 'failing');
      const outboxPage = (await listOutbox(store, dora.viewer)).find((item) => item.id === result.outboxId);
      assert.equal(outboxPage?.label, 'Queued');

      // The user puts the right password in and authenticates SMTP again ("Retry now" makes it due): it goes out.
      smtp.addUser(dora.email, dora.password);
      const login = await authenticateMailAccountSmtp({ store, secretBox, actor: SYSTEM_ACTOR, timeoutMs: 10_000 }, dora.viewer, dora.accountId);
      assert.equal(login.error, null);
      await store.models.Outbox.updateOne({ _id: new mongoose.Types.ObjectId(result.outboxId) }, { $set: { nextAttemptAt: new Date() } });
      await until('the entry to be sent', async () => (await store.models.Outbox.findById(result.outboxId).lean())?.status === 'sent');
      assert.ok(smtp.received.some((m) => m.parsed.subject === 'Queued, then the password changed'));
    } finally {
      await worker.stop();
    }
  });

  it('a queued message whose retry meets a certificate the machine does not trust keeps waiting and goes out once TLS is right again; it is not thrown away', async () => {
    const erin = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
    smtp.behaviour.data = () => '451 4.3.0 Try again later';
    const result = await sendMessage(deps, erin.viewer, erin.accountId, { to: 'alice@customer.test', subject: 'Queued, then the certificate broke', text: 'Keep me too.' });
    assert.equal(result.status, 'queued');
    smtp.behaviour.data = undefined;
    // Meanwhile the provider's server presents a certificate from a CA nobody trusts (a botched renewal).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-untrusted-'));
    const untrusted = generateTestCertificates(dir);
    const broken = new SMTPServer({ secure: true, key: fs.readFileSync(untrusted.keyFile), cert: fs.readFileSync(untrusted.certFile), logger: false, onAuth: (_a, _s, cb) => cb(null, { user: 'x' }) });
    broken.on('error', () => undefined);
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', () => resolve()));
    const accountId = new mongoose.Types.ObjectId(erin.accountId);
    await store.models.MailAccount.updateOne({ _id: accountId }, { $set: { 'smtp.port': (broken.server.address() as net.AddressInfo).port } });
    const worker = startOutboxWorker(deps, { intervalMs: 100 });
    try {
      const waiting = await until('the retry to meet the untrusted certificate', async () => {
        const entry = await store.models.Outbox.findById(result.outboxId).lean();
        return entry && entry.lastErrorCode === 'TLS_ERROR' ? entry : null;
      });
      assert.equal(waiting.status, 'queued', 'kept and retried, not failed');
      assert.equal(waiting.recipients[0].state, 'deferred');
      assert.ok(waiting.transmitBlobId && waiting.fileBlobId, 'the message itself is kept');

      // The certificate is put right: the next retry sends it.
      await store.models.MailAccount.updateOne({ _id: accountId }, { $set: { 'smtp.port': smtp.port } });
      await store.models.Outbox.updateOne({ _id: new mongoose.Types.ObjectId(result.outboxId) }, { $set: { nextAttemptAt: new Date() } });
      await until('the entry to be sent', async () => (await store.models.Outbox.findById(result.outboxId).lean())?.status === 'sent');
      assert.ok(smtp.received.some((m) => m.parsed.subject === 'Queued, then the certificate broke'));
    } finally {
      await worker.stop();
      await new Promise<void>((resolve) => broken.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('enforces the per-account rate limit with 429 and the seconds to wait; other accounts are not affected', async () => {
    const limited = { ...deps, rateLimit: { max: 2, windowMs: 60_000 } };
    const dave = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
    const erin = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
    for (let i = 0; i < 2; i++) {
      assert.equal((await sendMessage(limited, dave.viewer, dave.accountId, { to: 'alice@customer.test', subject: `Batch ${i}`, text: 'x' })).status, 'sent');
    }
    const before = smtp.received.length;
    await assert.rejects(sendMessage(limited, dave.viewer, dave.accountId, { to: 'alice@customer.test', subject: 'One too many', text: 'x' }), (err: RateLimitedError) => {
      assert.equal(err.code, 'RATE_LIMITED');
      assert.equal(err.status, 429);
      assert.ok(err.retryAfter >= 1 && err.retryAfter <= 60, String(err.retryAfter));
      assert.match(err.message, /2 messages in the last 1 min/);
      return true;
    });
    assert.equal(smtp.received.length, before, 'nothing sent over the limit');
    assert.equal(await store.models.Outbox.countDocuments({ accountId: new mongoose.Types.ObjectId(dave.accountId) }), 2, 'nothing queued over the limit');
    assert.equal((await sendMessage(limited, erin.viewer, erin.accountId, { to: 'alice@customer.test', subject: 'Erin is fine', text: 'x' })).status, 'sent');

    // An hourly limit says the wait in minutes and the time, not "3599 s".
    const hourly = { ...deps, rateLimit: { max: 1, windowMs: 3_600_000 } };
    const ivy = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
    const sentAt = new Date('2026-03-02T14:05:10Z');
    assert.equal((await sendMessage({ ...hourly, clock: () => sentAt }, ivy.viewer, ivy.accountId, { to: 'alice@customer.test', subject: 'Hourly 1', text: 'x' })).status, 'sent');
    await assert.rejects(sendMessage({ ...hourly, clock: () => new Date(sentAt.getTime() + 18 * 60_000) }, ivy.viewer, ivy.accountId, { to: 'alice@customer.test', subject: 'Hourly 2', text: 'x' }),
      /has sent 1 message in the last 1 h, the most the administrator allows \(SEND_RATE_LIMIT\)\. The next one can go in 42 min \(at 15:05 UTC\)\.$/);
    // On the sender's clock: Ivy works in Berlin (UTC+1 in March, before the clocks change).
    await store.models.User.updateOne({ _id: ivy.viewer.id }, { $set: { timeZone: 'Europe/Berlin' } });
    await assert.rejects(sendMessage({ ...hourly, clock: () => new Date(sentAt.getTime() + 18 * 60_000) }, ivy.viewer, ivy.accountId, { to: 'alice@customer.test', subject: 'Hourly 2', text: 'x' }),
      /The next one can go in 42 min \(at 16:05 GMT\+1\)\.$/);

    // Concurrent requests racing for the last slot: the limit still holds.
    const frank = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
    const outcomes = await Promise.allSettled([0, 1, 2, 3].map((i) => sendMessage(limited, frank.viewer, frank.accountId, { to: 'alice@customer.test', subject: `Race ${i}`, text: 'x' })));
    const summary = JSON.stringify(outcomes.map((o) => (o.status === 'fulfilled' ? o.value.status : o.reason.code)));
    assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 2, `exactly the limit got through: ${summary}`);
    assert.ok(outcomes.filter((o) => o.status === 'rejected').every((o) => (o as PromiseRejectedResult).reason.code === 'RATE_LIMITED'), summary);

    // The window slides: once the oldest send leaves it, the next one may go.
    const hank = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
    const sliding = { ...deps, rateLimit: { max: 1, windowMs: 1500 } };
    assert.equal((await sendMessage(sliding, hank.viewer, hank.accountId, { to: 'alice@customer.test', subject: 'Slide 1', text: 'x' })).status, 'sent');
    await assert.rejects(sendMessage(sliding, hank.viewer, hank.accountId, { to: 'alice@customer.test', subject: 'Slide 2', text: 'x' }), /has sent 1 message in the last 1\.5 s/);
    await sleep(1600);
    assert.equal((await sendMessage(sliding, hank.viewer, hank.accountId, { to: 'alice@customer.test', subject: 'Slide 3', text: 'x' })).status, 'sent');
  });

  /** An outbox entry as a sender leaves it when its process dies: locked by a holder that is gone, the lock expired. */
  async function orphanedEntry(fixture: SendFixture, subject: string, state: 'before-send' | 'after-accept') {
    const draft = checkDraft({ to: 'alice@customer.test', subject, text: 'left behind' }, { maxBytes: 1_000_000 });
    const messageId = newMessageId(fixture.email);
    const { transmit } = await composeMessage({ from: { name: '', address: fixture.email }, draft, messageId, date: new Date() });
    const blob = await store.blobs.put(transmit, { kind: 'outbox' });
    const past = new Date(Date.now() - 1000);
    return store.models.Outbox.create({
      accountId: new mongoose.Types.ObjectId(fixture.accountId), ownerId: new mongoose.Types.ObjectId(fixture.user.id), messageId, subject,
      from: { address: fixture.email, name: '' }, to: draft.to, envelopeFrom: fixture.email,
      recipients: [{ address: 'alice@customer.test', state: state === 'after-accept' ? 'accepted' : 'pending', reply: '', at: null }],
      transmitBlobId: blob, fileBlobId: blob, size: transmit.length, status: state === 'after-accept' ? 'sent' : 'queued',
      acceptedAt: state === 'after-accept' ? past : null, nextAttemptAt: past, lockedUntil: past, lockedBy: 'send:99999:dead', createdAt: past,
    });
  }

  async function sentFolderCount(fixture: SendFixture): Promise<number> {
    const client = new ImapFlow({ ...dovecot.clientOptions(fixture.email, fixture.password), logger: false });
    await client.connect();
    try {
      const status = await client.status('Sent', { messages: true });
      return status ? status.messages ?? 0 : 0;
    } finally {
      await client.logout();
    }
  }

  it('after a crash: an entry never sent is sent by the worker once its lock expires; one the server already took is filed without sending it again', async () => {
    const ivan = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
    const unsent = await orphanedEntry(ivan, 'Left before sending', 'before-send');
    const accepted = await orphanedEntry(ivan, 'Left after the 250', 'after-accept');
    const before = smtp.received.length;
    const worker = startOutboxWorker(deps, { intervalMs: 100 });
    try {
      await until('both entries to be finished', async () => {
        const rows = await store.models.Outbox.find({ _id: { $in: [unsent._id, accepted._id] } }).lean();
        return rows.every((row) => row.nextAttemptAt === null) ? rows : null;
      });
    } finally {
      await worker.stop();
    }
    await smtp.waitFor(before + 1);
    await sleep(200);
    assert.deepEqual(smtp.received.slice(before).map((m) => m.parsed.subject), ['Left before sending'], 'the accepted one is not sent twice');
    for (const subject of ['Left before sending', 'Left after the 250']) {
      const stored = await store.models.Message.find({ subject }).lean();
      assert.equal(stored.length, 1, subject);
      assert.equal(stored[0].sources[0].kind, 'sent');
    }
    assert.equal(await sentFolderCount(ivan), 2, 'both filed in Sent');
  });

  it('stores at once but appends to Sent later when the IMAP server is unreachable at send time', async () => {
    const judy = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
    const closed = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const id = new mongoose.Types.ObjectId(judy.accountId);
    await store.models.MailAccount.updateOne({ _id: id }, { $set: { 'imap.port': closed } });
    const result = await sendMessage(deps, judy.viewer, judy.accountId, { to: 'alice@customer.test', subject: 'Filed later', text: 'x' });
    assert.equal(result.status, 'sent');
    assert.ok(result.storedMessageId, 'stored although the Sent copy is not there yet');
    const pending = await store.models.Outbox.findById(result.outboxId).lean();
    assert.equal(pending?.sentFolder?.state, 'pending');
    assert.match(pending?.sentFolder?.error ?? '', /^CONNECTION_REFUSED/);
    assert.ok(pending?.nextAttemptAt);
    assert.equal(await sentFolderCount(judy), 0);

    await store.models.MailAccount.updateOne({ _id: id }, { $set: { 'imap.port': dovecot.tlsPort } });
    const worker = startOutboxWorker(deps, { intervalMs: 100 });
    try {
      await until('the Sent copy', async () => (await store.models.Outbox.findById(result.outboxId).lean())?.sentFolder?.state === 'appended');
    } finally {
      await worker.stop();
    }
    assert.equal(await sentFolderCount(judy), 1);
    assert.equal(await store.models.Message.countDocuments({ messageId: result.messageId }), 1);
  });

  it('refuses a message bigger than the server announces (SIZE) with MESSAGE_TOO_LARGE and stores nothing', async () => {
    const small = await startRecordingSmtp({ tls: 'implicit', size: 2048 });
    try {
      const gina = await sendableAccount(store, secretBox, { dovecot, smtp: small, smtpTls: 'implicit' });
      await assert.rejects(sendMessage(deps, gina.viewer, gina.accountId, { to: 'alice@customer.test', subject: 'Big', text: 'x', attachments: [{ filename: 'big.bin', content: Buffer.alloc(10_000, 7) }] }), (err: AppError) => {
        assert.equal(err.code, 'MESSAGE_TOO_LARGE', err.message);
        assert.match(err.message, /2048/);
        return true;
      });
      assert.equal(await store.models.Message.countDocuments({ accountId: new mongoose.Types.ObjectId(gina.accountId) }), 0);
    } finally {
      await small.stop();
    }
  });
  it('gives a due entry to one worker when several ask at once (FerretDB runs findAndModify as a read, then a write)', async () => {
    // Two outbox workers on one embedded store (npm start and npm run syncer) poll at the same moment.
    for (let round = 0; round < 20; round++) {
      const { insertedId } = await store.models.Outbox.collection.insertOne({ nextAttemptAt: new Date(Date.now() - 1000), lockedUntil: null, lockedBy: '', race: true });
      const holders = ['worker-a', 'worker-b', 'worker-c', 'worker-d'];
      const claims = await Promise.all(holders.map((holder) => claimDueEntry(deps, holder, new Date())));
      const winners = holders.filter((_, i) => claims[i]?._id.equals(insertedId));
      assert.equal(winners.length, 1, `round ${round}: claimed by ${winners.join(', ') || 'nobody'}`);
      const stored = await store.models.Outbox.collection.findOne({ _id: insertedId });
      assert.equal(stored?.lockedBy, winners[0], 'the stored lock is the winner\'s');
      await store.models.Outbox.collection.deleteOne({ _id: insertedId });
    }
  });
});
