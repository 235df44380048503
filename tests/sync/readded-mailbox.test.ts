import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { createMailAccount, createUser, deleteMailAccount, deleteMessage, listMessages, SYSTEM_ACTOR } from '../../gateway/accounts';
import { silentLogger } from '../../gateway/core/log';
import { ingest } from '../../gateway/mail/ingest';
import { startSyncer } from '../../gateway/sync/schedule';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';
import { openTestStore } from '../support/store';
import { makeMessage, testConfig, testSecrets, uniqueEmail } from './helpers';

/**
 * An employee removes a mailbox (a password mix-up, a clean start) and adds
 * it again. Its mail was kept, shown as "deleted account"; the mailbox's
 * first sync after the re-add reads the same messages again. The inbox must
 * still show each message once, and mail the employee deleted must stay
 * deleted.
 */
describe('a mailbox deleted and added again', function () {
  this.timeout(120_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let dovecot: DovecotServer;

  before(async () => {
    store = await openTestStore('sync_readded');
    dovecot = await shared('dovecot', () => startDovecot());
  });
  after(async () => {
    await store.drop();
  });

  const deps = () => ({ store, actor: SYSTEM_ACTOR });
  async function syncPass() {
    const syncer = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false });
    try {
      return await syncer.runPassNow();
    } finally {
      await syncer.stop();
    }
  }
  /** Add the mailbox as the console does, then turn IMAP on with the mailbox's password (sealed as the console seals it). */
  async function addMailbox(ownerId: string, email: string, password: string) {
    const view = await createMailAccount(store, ownerId, email, { gatewayDomain: 'in.postroom.test' });
    const account = (await store.models.MailAccount.findById(view.id))!;
    account.set('imap', { enabled: true, host: dovecot.host, port: dovecot.tlsPort, tls: 'implicit', username: email, status: 'authenticated', folders: [] });
    account.imap!.passwordEnc = testSecrets.seal(password, account._id.toString());
    await account.save();
    return { ...view, messageCount: view.messageCount };
  }

  it('takes its kept mail back: one copy of each message, deleted mail stays deleted, the counter counts them once', async () => {
    const email = uniqueEmail('readd');
    const password = 'pw-readd-1';
    await dovecot.addUser(email, password);
    const user = await createUser(store, { email: `owner-${email}` });
    const viewer = { id: new mongoose.Types.ObjectId(user.id), role: 'employee' };
    const mail = Array.from({ length: 4 }, (_, i) => makeMessage({ to: email, date: new Date(Date.now() - (5 - i) * 3600_000) }));
    await dovecot.appendMany(email, 'INBOX', mail.map((m) => ({ raw: m.raw, date: m.date })));

    const first = await addMailbox(user.id, email, password);
    await syncPass();
    const unwanted = (await store.models.Message.findOne({ messageId: mail[1].messageId }).lean())!;
    await deleteMessage(deps(), viewer, unwanted._id.toString());
    await deleteMailAccount(deps(), viewer, first.id);
    assert.equal((await listMessages(store, viewer, {})).messages.length, 3, 'the deleted account\'s mail is kept');

    const again = await addMailbox(user.id, email, password);
    assert.equal(again.messageCount, 3, 'the new account counts the mail it took back');
    const report = await syncPass();
    const result = report.accounts.find((a) => a.accountId === again.id)!;
    assert.equal(result.outcome, 'synced');
    assert.equal(result.stored, 0, 'nothing stored a second time');
    assert.equal(result.tombstoned, 1, 'the message deleted before stays deleted');

    // The provider forwards a message the sync already read: recognised too.
    await ingest({ store, log: silentLogger }, {
      raw: Buffer.from(`Received: from mx.provider.test by in.postroom.test; ${new Date().toUTCString()}\r\n${mail[3].raw}`),
      mailboxKey: again.id, accountId: new mongoose.Types.ObjectId(again.id), ownerId: viewer.id, source: { kind: 'forward' },
    });

    const inbox = (await listMessages(store, viewer, {})).messages;
    assert.deepEqual(inbox.map((m) => m.subject).sort(), [mail[0], mail[2], mail[3]].map((m) => m.subject).sort(), 'each message once, the deleted one not back');
    assert.ok(inbox.every((m) => m.accountId === again.id), 'shown under the mailbox, not as "deleted account"');
    assert.equal((await store.models.MailAccount.findById(again.id).lean())?.messageCount, 3);
  });

  it('leaves another employee\'s kept mail where it is when they add the same address', async () => {
    const email = uniqueEmail('handover');
    const password = 'pw-handover-1';
    await dovecot.addUser(email, password);
    const leaver = await createUser(store, { email: `leaver-${email}` });
    const successor = await createUser(store, { email: `successor-${email}` });
    const message = makeMessage({ to: email, date: new Date(Date.now() - 3600_000) });
    await dovecot.append(email, 'INBOX', message.raw, { date: message.date });

    const old = await addMailbox(leaver.id, email, password);
    await syncPass();
    await deleteMailAccount(deps(), { id: new mongoose.Types.ObjectId(leaver.id), role: 'employee' }, old.id);

    const taken = await addMailbox(successor.id, email, password);
    assert.equal(taken.messageCount, 0);
    const kept = (await store.models.Message.findOne({ messageId: message.messageId, ownerId: new mongoose.Types.ObjectId(leaver.id) }).lean())!;
    assert.equal(kept.accountId?.toString(), old.id, 'the leaver\'s copy stays theirs');
    await syncPass();
    assert.equal(await store.models.Message.countDocuments({ messageId: message.messageId, ownerId: new mongoose.Types.ObjectId(successor.id) }), 1, 'the successor gets their own copy');
  });
});
