/**
 * The outbox is a work queue, and the worker looks for due entries in it
 * every 15 seconds; on the embedded store that query reads the whole
 * collection. Finished entries (sent, or given up) used to stay in it for
 * good, so an appliance that had sent 10,000 messages spent seconds of every
 * 15 on them, idle or not. They are now kept 30 days, like webhook deliveries.
 */
import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { OUTBOX_HISTORY_DAYS, sendMessage, startOutboxWorker } from '../../gateway/send';
import { openTestStore } from '../support/store';
import { newSecretBox, sendableAccount, sendDeps, sharedDovecot, startRecordingSmtp, type RecordingSmtp, type TestStore } from './support';

const DAY = 86_400_000;

describe('send: finished outbox entries are not kept for ever', function () {
  this.timeout(60_000);
  let store: TestStore;
  let smtp: RecordingSmtp;
  const secretBox = newSecretBox();

  before(async () => {
    store = await openTestStore('send_outbox_history');
    smtp = await startRecordingSmtp({ tls: 'implicit' });
  });
  after(async () => {
    await smtp?.stop();
    await store?.drop();
  });

  it('deletes entries finished more than OUTBOX_HISTORY_DAYS ago, so the outbox returns to what still has work', async () => {
    const dovecot = await sharedDovecot();
    const bob = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
    const deps = sendDeps(store, secretBox);
    for (let i = 0; i < 5; i++) assert.equal((await sendMessage(deps, bob.viewer, bob.accountId, { to: 'alice@customer.test', subject: `Sent ${i}`, text: 'x' })).status, 'sent');
    assert.equal(await store.models.Outbox.countDocuments(), 5);
    const accountId = new mongoose.Types.ObjectId(bob.accountId);
    const ownerId = new mongoose.Types.ObjectId(bob.user.id);
    const later = (days: number) => new Date(Date.now() + days * DAY);
    // Still has work (a retry planned) however old it is: never deleted.
    const queued = await store.models.Outbox.create({ accountId, ownerId, messageId: 'queued@acme.test', envelopeFrom: bob.email, status: 'queued', nextAttemptAt: later(OUTBOX_HISTORY_DAYS + 5), createdAt: new Date() });

    // A worker running a month and a day later.
    const worker = startOutboxWorker({ ...deps, clock: () => later(OUTBOX_HISTORY_DAYS + 1) }, { intervalMs: 100 });
    try {
      const deadline = Date.now() + 15_000;
      while ((await store.models.Outbox.countDocuments()) > 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      await worker.stop();
    }
    const left = await store.models.Outbox.find({}, { _id: 1 }).lean();
    assert.deepEqual(left.map((row) => row._id.toHexString()), [queued._id.toHexString()], 'only the entry with work left is kept');
    assert.equal(await store.models.Message.countDocuments({ subject: /^Sent / }), 5, 'the sent mail itself stays stored');
  });

  it('keeps entries finished less than OUTBOX_HISTORY_DAYS ago', async () => {
    const before = await store.models.Outbox.countDocuments();
    const dovecot = await sharedDovecot();
    const carol = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
    const deps = sendDeps(store, secretBox);
    await sendMessage(deps, carol.viewer, carol.accountId, { to: 'alice@customer.test', subject: 'Recent', text: 'x' });
    const worker = startOutboxWorker({ ...deps, clock: () => new Date(Date.now() + (OUTBOX_HISTORY_DAYS - 1) * DAY) }, { intervalMs: 100 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    await worker.stop();
    assert.equal(await store.models.Outbox.countDocuments(), before + 1);
  });
});
