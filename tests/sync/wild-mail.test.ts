import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { silentLogger } from '../../gateway/core/log';
import { createObject } from '../../gateway/crm/objects';
import { startSyncer } from '../../gateway/sync/schedule';
import { wildCorpus } from '../fixtures/wild';
import { createImapAccount, testConfig, testSecrets, useSyncWorld, type TestAccount } from './helpers';

/**
 * The same everyday mail (tests/fixtures/wild) pulled from a Dovecot
 * mailbox by the syncer, with CRM association as the syncer process runs
 * it: bounces, read receipts and vacation replies are stored, and not
 * linked to the customer as if the customer had written.
 */
describe('IMAP sync: mail as it arrives from the wild', function () {
  this.timeout(120_000);
  const world = useSyncWorld('sync_wild');
  let account: TestAccount;
  let contactId = '';
  let customerId = '';

  before(async () => {
    const deps = { store: world.store, log: silentLogger };
    customerId = (await createObject(deps, { type: 'customer', name: 'Customer Inc', domains: ['customer.test'] })).object.id;
    contactId = (await createObject(deps, { type: 'contact', name: 'Alice Customer', emails: ['alice@customer.test'] })).object.id;
    account = await createImapAccount(world.store, world.dovecot);
    await world.dovecot.appendMany(account.email, 'INBOX', wildCorpus().map((wild) => ({ raw: wild.raw, date: new Date() })));
    const syncer = startSyncer({ config: testConfig({ BUSINESS_DOMAINS: 'acme.test' }), log: silentLogger, store: world.store, secretBox: testSecrets, schedule: false });
    world.syncers.push(syncer);
    const report = await syncer.runPassNow();
    assert.equal(report.accounts.find((a) => a.accountId === account.id)?.outcome, 'synced');
  });

  const bySubject = async (subject: string | RegExp) => {
    const doc = await world.store.models.Message.findOne({ accountId: new mongoose.Types.ObjectId(account.id), subject }).lean();
    assert.ok(doc, `stored: ${String(subject)}`);
    return doc;
  };

  it('stores every message of the mailbox', async () => {
    assert.equal(await world.store.models.Message.countDocuments({ accountId: new mongoose.Types.ObjectId(account.id) }), wildCorpus().length);
  });

  it('links the invite the customer sent, not the bounce, the read receipt or the vacation reply', async () => {
    const invite = await bySubject(/^Invitation: Quarterly review/);
    assert.deepEqual(invite.linkedObjectIds.map(String).sort(), [contactId, customerId].sort());
    for (const subject of ['Undeliverable: Your quote', 'Undelivered Mail Returned to Sender', 'Read: Your quote']) {
      const doc = await bySubject(subject);
      assert.equal(doc.bulk, true, subject);
      assert.deepEqual(doc.linkedObjectIds, [], subject);
    }
    const vacations = await world.store.models.Message.find({ accountId: new mongoose.Types.ObjectId(account.id), subject: 'Out of office: Re: Your quote' }).lean();
    assert.equal(vacations.length, 2);
    for (const vacation of vacations) assert.deepEqual(vacation.linkedObjectIds, []);
  });
});
