/**
 * A user deletes a message at the moment another copy of the same mail is
 * being stored: the forwarded copy is in the inbox, the user deletes it, and
 * the IMAP sync is just writing the copy it read from the mailbox. Deleted
 * mail must stay deleted (the tombstone), whichever write lands first.
 */
import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { silentLogger } from '../../gateway/core/log';
import { deleteMessage } from '../../gateway/accounts/mailbox';
import { ingest } from '../../gateway/mail/ingest';
import { crmAssociator } from '../../gateway/crm/link';
import { createObject } from '../../gateway/crm/objects';
import { startSyncer } from '../../gateway/sync/schedule';
import { createImapAccount, makeMessage, testConfig, testSecrets, useSyncWorld } from '../sync/helpers';

/**
 * Fault injection: the next message writes wait at `when` (before they reach the store, or after it answered)
 * until `release()`; `writing` resolves once one has started. `restore()` puts the driver back.
 */
function holdMessageWrites(collection: mongoose.Collection, when: 'before' | 'after' = 'before') {
  const insertMany = collection.insertMany.bind(collection);
  let entered!: () => void;
  const writing = new Promise<void>((resolve) => (entered = resolve));
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  collection.insertMany = (async (...args: Parameters<typeof insertMany>) => {
    entered();
    if (when === 'before') {
      await gate;
      return insertMany(...args);
    }
    const answer = insertMany(...args);
    await answer.catch(() => undefined);
    await gate;
    return answer;
  }) as typeof collection.insertMany;
  return {
    writing,
    release,
    restore() {
      collection.insertMany = insertMany;
      release();
    },
  };
}

describe('a message deleted while its mailbox copy is being stored', function () {
  this.timeout(60_000);
  const world = useSyncWorld('race_delete_stored');

  /**
   * The forwarded copy is stored; the sync of the mailbox copy is held at its message write (before it
   * reaches the store, or after the store answered) while the owner deletes the forwarded copy.
   */
  async function deleteDuringSyncWrite(when: 'before' | 'after') {
    const { store, dovecot } = world;
    const account = await createImapAccount(store, dovecot);
    const accountId = new mongoose.Types.ObjectId(account.id);
    const ownerId = new mongoose.Types.ObjectId(account.ownerId);
    const mail = makeMessage({ to: account.email, subject: 'Spam to delete' });
    await dovecot.appendMany(account.email, 'INBOX', [{ raw: mail.raw, date: mail.date }]);
    const forwarded = await ingest({ store, log: silentLogger }, {
      raw: Buffer.from(mail.raw), mailboxKey: account.id, accountId, ownerId, source: { kind: 'forward' },
    });
    assert.equal(forwarded.outcome, 'stored');

    // The sync's message write waits until the user's Delete has run.
    const held = holdMessageWrites(store.models.Message.collection, when);

    const syncer = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false });
    world.syncers.push(syncer);
    try {
      const pass = syncer.runPassNow();
      await held.writing;
      await deleteMessage({ store, actor: { id: ownerId, email: account.email } }, { id: ownerId, role: 'employee' }, forwarded.id!.toString());
      held.release();
      const report = await pass;
      const outcome = report.accounts.find((a) => a.accountId === account.id);
      assert.equal(outcome?.outcome, 'synced', outcome?.error);
      assert.equal(outcome?.tombstoned, 1);
    } finally {
      held.restore();
    }

    const left = await store.models.Message.find({ mailboxKey: account.id }, { subject: 1, sources: 1 }).lean();
    assert.deepEqual(left.map((m) => m.subject), [], 'the deleted mail did not come back');
    const cursor = await store.models.FolderState.findOne({ accountId, folder: 'INBOX' }).lean();
    assert.equal(cursor?.lastUid, 1, 'the cursor moved on: the mail was handled, not retried');
    const counted = await store.models.MailAccount.findById(accountId, { messageCount: 1 }).lean();
    assert.equal(counted?.messageCount, 0, 'the account counts no message');
  }

  it('stays deleted when the delete lands between the sync\'s deletion check and its write', async () => {
    await deleteDuringSyncWrite('before');
  });

  it('is not a failed sync pass when the delete lands between the sync\'s write (a duplicate) and its update of the stored copy', async () => {
    await deleteDuringSyncWrite('after');
  });

  it('takes back the links and the count of a forwarded copy whose write got in after the Delete', async () => {
    const { store, dovecot } = world;
    const account = await createImapAccount(store, dovecot);
    const accountId = new mongoose.Types.ObjectId(account.id);
    const ownerId = new mongoose.Types.ObjectId(account.ownerId);
    const crm = { store, log: silentLogger, settings: { businessDomains: ['acme.test'] } };
    await createObject(crm, { type: 'contact', name: 'Alice Customer', emails: ['alice@customer.test'] });
    const mail = makeMessage({ to: account.email, subject: 'Deleted, then forwarded' });
    // The IMAP copy was stored (and counted); the owner deletes it as the forwarded copy is written.
    const synced = await ingest({ store, log: silentLogger }, {
      raw: Buffer.from(mail.raw), mailboxKey: account.id, accountId, ownerId, source: { kind: 'imap', folder: 'INBOX', uidValidity: '1', uid: 1 },
    });

    const held = holdMessageWrites(store.models.Message.collection);
    let outcome: string;
    try {
      const forwarded = ingest({ store, log: silentLogger, associate: crmAssociator(crm) }, {
        raw: Buffer.from(mail.raw), mailboxKey: account.id, accountId, ownerId, source: { kind: 'forward' },
      });
      await held.writing;
      await deleteMessage({ store, actor: { id: ownerId, email: account.email } }, { id: ownerId, role: 'employee' }, synced.id!.toString());
      held.release();
      outcome = (await forwarded).outcome;
    } finally {
      held.restore();
    }
    assert.equal(outcome, 'tombstoned');
    assert.equal(await store.models.Message.countDocuments({ mailboxKey: account.id }), 0, 'the deleted mail did not come back');
    assert.equal(await store.models.Link.countDocuments({ ownerId }), 0, 'no link to a message that is gone');
    assert.equal((await store.models.MailAccount.findById(accountId, { messageCount: 1 }).lean())?.messageCount, 0, 'the account counts no message');
  });
});
