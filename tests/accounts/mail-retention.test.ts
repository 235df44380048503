import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { expireOldMail, removeMessage, REMOVABLE_MESSAGE_FIELDS, SYSTEM_ACTOR, updateBusinessSettings } from '../../gateway/accounts';
import { ingest } from '../../gateway/mail/ingest';
import { startAdmin } from '../../admin/server';
import { silentLogger } from '../../gateway/core/log';
import { buildApp, makeUser, signIn, testConfig } from '../admin/fixtures';
import { openTestStore } from '../support/store';

/**
 * Preferences → Business → "Keep mail for (days)" was saved and shown, but
 * nothing ever deleted mail: an operator who set it for disk space or for
 * a retention policy kept every message forever.
 */
describe('mail retention (Keep mail for N days)', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  const accountId = new mongoose.Types.ObjectId();
  const DAY = 86_400_000;
  const now = new Date('2026-06-30T12:00:00Z');
  const mail = (id: string, body = 'hello') => Buffer.from(`From: alice@example.org\r\nTo: bob@acme.test\r\nSubject: ${id}\r\nMessage-ID: <${id}@example.org>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n\r\n${body}\r\n`);
  const store1 = (id: string, daysAgo: number, body?: string) => ingest({ store, log: silentLogger }, {
    raw: mail(id, body), mailboxKey: accountId.toString(), accountId, ownerId: new mongoose.Types.ObjectId(), source: { kind: 'imap' }, receivedAt: new Date(now.getTime() - daysAgo * DAY),
  });

  beforeEach(async () => {
    store = await openTestStore('mail_retention');
  });
  afterEach(async () => store.drop());

  it('keeps everything while the setting is 0', async () => {
    await store1('ancient', 4000);
    assert.deepEqual(await expireOldMail(store, { now }), { retentionDays: 0, before: null, deleted: 0, tombstonesDropped: 0 });
    assert.equal(await store.models.Message.countDocuments(), 1);
  });

  it('deletes mail received before the period with its raw bytes and links, and an IMAP sync does not bring it back', async () => {
    const old = await store1('old', 91, 'x'.repeat(100_000)); // large: its raw bytes are in GridFS
    const older = await store1('older', 400);
    const recent = await store1('recent', 89);
    const rawBlobId = (await store.models.Message.findById(old.id).lean())?.rawBlobId;
    assert.ok(rawBlobId, 'the large message keeps its raw bytes in a blob');
    await store.models.Link.create({ messageId: old.id!, objectId: new mongoose.Types.ObjectId(), ownerId: new mongoose.Types.ObjectId(), rule: 'address', address: 'alice@example.org', receivedAt: now, createdAt: now });
    assert.equal(await store.models.Link.countDocuments({ messageId: old.id! }), 1);
    await updateBusinessSettings(store, { retentionDays: 90 }, SYSTEM_ACTOR, { businessDomains: [] });
    await store.models.MailAccount.collection.insertOne({ _id: accountId, email: 'bob@acme.test', messageCount: 3 });

    // IMAP_BACKFILL_DAYS above the retention: a first sync could fetch this mail again.
    const result = await expireOldMail(store, { now, batchSize: 1, backfillDays: 3650 });
    assert.equal((await store.models.MailAccount.findById(accountId).lean())?.messageCount, 1, 'the account counts what it still holds');
    assert.equal(result.deleted, 2);
    assert.deepEqual((await store.models.Message.find({}, { _id: 1 }).lean()).map((m) => m._id.toString()), [recent.id!.toString()]);
    assert.equal(await store.models.Link.countDocuments({ messageId: { $in: [old.id, older.id] } }), 0);
    await assert.rejects(store.blobs.get(rawBlobId), 'the raw bytes are gone too');
    const audit = await store.models.AuditEvent.findOne({ action: 'message.expire' }).lean();
    assert.deepEqual(audit?.details, { deleted: 2, retentionDays: 90, receivedBefore: new Date(now.getTime() - 90 * DAY).toISOString() });

    // A resync from further back (a new UIDVALIDITY) offers the same mail again: it stays deleted.
    assert.equal((await store1('older', 400)).outcome, 'tombstoned');
    assert.equal((await expireOldMail(store, { now, backfillDays: 3650 })).deleted, 0);
  });

  it('drops the deletion records of expired mail no IMAP sync reaches back to, and keeps those of mail a person deleted', async () => {
    const ownerId = new mongoose.Types.ObjectId();
    const withinReach = await store1('within-reach', 10);
    const beyondReach = await store1('beyond-reach', 40);
    const deletedByBob = await store1('deleted-by-bob', 400);
    await removeMessage(store, (await store.models.Message.findById(deletedByBob.id, REMOVABLE_MESSAGE_FIELDS).lean())!, { now, deletedBy: ownerId });
    await updateBusinessSettings(store, { retentionDays: 5 }, SYSTEM_ACTOR, { businessDomains: [] });

    // IMAP_BACKFILL_DAYS 30: a first sync reaches back 30 days (and IMAP's SINCE counts whole days).
    const result = await expireOldMail(store, { now, backfillDays: 30 });
    assert.equal(result.deleted, 2);
    assert.equal(result.tombstonesDropped, 1);
    const left = await store.models.Tombstone.find({}, { dedupeKey: 1, expiredReceivedAt: 1, deletedBy: 1 }).sort({ dedupeKey: 1 }).lean();
    assert.equal(left.length, 2);
    assert.ok(left.some((t) => t.deletedBy?.equals(ownerId) && !t.expiredReceivedAt), 'a person\'s deletion is kept for good');
    assert.ok(left.some((t) => t.expiredReceivedAt?.getTime() === now.getTime() - 10 * DAY), 'expired mail a sync could still fetch keeps its record');
    // What a sync can still offer stays deleted; so does what Bob deleted, however old.
    assert.equal((await store1('within-reach', 10)).outcome, 'tombstoned');
    assert.equal((await store1('deleted-by-bob', 400)).outcome, 'tombstoned');
    assert.equal(await store.models.Message.exists({ _id: withinReach.id }), null);
    assert.equal(await store.models.Message.exists({ _id: beyondReach.id }), null);

    // Days later the record of the 10-day-old mail is out of reach too, with retention turned off meanwhile.
    await updateBusinessSettings(store, { retentionDays: 0 }, SYSTEM_ACTOR, { businessDomains: [] });
    const later = await expireOldMail(store, { now: new Date(now.getTime() + 25 * DAY), backfillDays: 30 });
    assert.equal(later.tombstonesDropped, 1);
    assert.equal(await store.models.Tombstone.countDocuments({}), 1);
  });

  it('runs in the admin process as it starts', async () => {
    const gone = await store1('gone', 10);
    await updateBusinessSettings(store, { retentionDays: 5 }, SYSTEM_ACTOR, { businessDomains: [] });
    const admin = await startAdmin({ config: testConfig(), log: silentLogger, store, port: 0, host: '127.0.0.1', crmWorker: false, blobSweep: false });
    try {
      for (let i = 0; i < 100 && (await store.models.Message.exists({ _id: gone.id })); i++) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(await store.models.Message.exists({ _id: gone.id }), null);
    } finally {
      await admin.close();
    }
  });

  it('deletes nothing for a value kept from before retention was applied, says so, and applies it once an admin saves it again', async () => {
    // Set when the field did nothing: an upgrade must not delete years of mail without anyone being asked.
    const kept = await store1('kept', 400);
    await store.models.BusinessSettings.collection.insertOne({ _id: 'business' as never, name: 'Acme', domains: ['acme.test'], authPolicy: 'quarantine', retentionDays: 30 });
    assert.deepEqual(await expireOldMail(store, { now }), { retentionDays: 30, before: null, deleted: 0, unconfirmed: true, tombstonesDropped: 0 });
    assert.ok(await store.models.Message.exists({ _id: kept.id }));

    await makeUser(store, 'it@acme.test', 'admin');
    const { app } = buildApp(store);
    const admin = await signIn(app, 'it@acme.test');
    const page = await admin.agent.get('/preferences/business').expect(200);
    assert.match(page.text, /id="retention-unconfirmed"[^>]*>Not applied yet: 30 days was set before Postroom deleted old mail, so nothing has been deleted\. Save to start deleting/);
    await admin.agent.post('/preferences/business').type('form').send({ _csrf: admin.csrf, name: 'Acme', domains: 'acme.test', authPolicy: 'quarantine', retentionDays: '30' }).expect(303);
    assert.doesNotMatch((await admin.agent.get('/preferences/business').expect(200)).text, /retention-unconfirmed/);
    assert.equal((await expireOldMail(store, { now })).deleted, 1);
    assert.equal(await store.models.Message.exists({ _id: kept.id }), null);
  });
});
