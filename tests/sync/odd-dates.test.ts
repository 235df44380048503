import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { expireOldMail, listMessages, SYSTEM_ACTOR, updateBusinessSettings } from '../../gateway/accounts';
import { silentLogger } from '../../gateway/core/log';
import { startSyncer, type Syncer } from '../../gateway/sync/schedule';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';
import { openTestStore } from '../support/store';
import { createImapAccount, DAY, makeMessage, testConfig, testSecrets } from './helpers';

/**
 * Mailboxes carry whatever dates they were given: a migrated one has messages whose INTERNALDATE is
 * 1970-01-01 (a zero timestamp). receivedAt (the inbox order, the day search, retention) must still say
 * when the mail arrived. (Dovecot stores an APPEND dated in the future as "now", so dates ahead, which
 * other servers keep, are covered by tests/mail/arrival-time.test.ts.)
 */
describe('IMAP sync of mail with impossible server dates', function () {
  this.timeout(120_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let dovecot: DovecotServer;
  let syncer: Syncer;

  before(async () => {
    store = await openTestStore('sync_odd_dates');
    dovecot = await shared('dovecot', () => startDovecot());
    syncer = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false });
  });
  after(async () => {
    await syncer.stop();
    await store.drop();
  });

  it('a message filed with a zero INTERNALDATE (1970) is dated by its Date header: listed where it belongs, not expired on arrival', async () => {
    const account = await createImapAccount(store, dovecot);
    const now = Math.floor(Date.now() / 1000) * 1000; // IMAP dates and Date headers have whole seconds
    const written = new Date(now - 2 * DAY);
    const normal = makeMessage({ to: account.email, subject: 'Normal', date: new Date(now - DAY) });
    // Written two days ago (its Date header), filed by a migration tool with a zero INTERNALDATE.
    const zero = makeMessage({ to: account.email, subject: 'Zero internal date', date: written });
    // The first sync reads the backfill window by INTERNALDATE: the zero-dated one comes after it, as new mail.
    await dovecot.append(account.email, 'INBOX', normal.raw, { date: normal.date });
    const older = makeMessage({ to: account.email, subject: 'Older', date: new Date(now - 3 * DAY) });
    await dovecot.append(account.email, 'INBOX', older.raw, { date: older.date });
    let report = await syncer.runPassNow();
    assert.equal(report.accounts.find((a) => a.accountId === account.id)?.outcome, 'synced');
    await dovecot.append(account.email, 'INBOX', zero.raw, { date: new Date(0) });
    report = await syncer.runPassNow();
    assert.equal(report.accounts.find((a) => a.accountId === account.id)?.stored, 1);

    const stored = await store.models.Message.find({ accountId: new mongoose.Types.ObjectId(account.id) }).lean();
    const bySubject = new Map(stored.map((m) => [m.subject, m]));
    assert.equal(bySubject.get('Normal')?.receivedAt.getTime(), normal.date.getTime(), 'a true INTERNALDATE is kept');
    assert.equal(bySubject.get('Zero internal date')?.receivedAt.getTime(), written.getTime(), 'a zero INTERNALDATE falls back to the Date header');
    // The IMAP source keeps what the server said: a replayed batch records the same source again.
    assert.equal(bySubject.get('Zero internal date')!.sources[0].at?.toISOString(), '1970-01-01T00:00:00.000Z');

    // Between the mail of yesterday and of three days ago, not below years of mail.
    const page = await listMessages(store, { id: stored[0].ownerId, role: 'employee' }, {});
    assert.deepEqual(page.messages.map((m) => m.subject), ['Normal', 'Zero internal date', 'Older']);

    // Keep mail for 30 days: the mail written two days ago survives the retention pass.
    await updateBusinessSettings(store, { retentionDays: 30 }, SYSTEM_ACTOR, { businessDomains: [] });
    await expireOldMail(store);
    assert.ok(await store.models.Message.exists({ accountId: new mongoose.Types.ObjectId(account.id), subject: 'Zero internal date' }), 'not deleted as 56 years old');
  });
});
