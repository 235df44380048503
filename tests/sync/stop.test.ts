/**
 * Stopping the syncer (Ctrl-C, a restart) while a pass waits on a store
 * operation that never answers: stop() still returns, so the process can
 * exit, and the cursor has not moved past anything unacknowledged.
 */
import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { silentLogger } from '../../gateway/core/log';
import { startSyncer, type PassReport } from '../../gateway/sync/schedule';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';
import { openTestStore } from '../support/store';
import { createImapAccount, fillInbox, sleep, testConfig, testSecrets } from './helpers';

describe('IMAP syncer stop with a stalled store', function () {
  this.timeout(120_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let dovecot: DovecotServer;

  before(async () => {
    store = await openTestStore('sync_stop_stalled');
    dovecot = await shared('dovecot', () => startDovecot());
  });
  after(async () => store.drop());

  it('returns from stop() although a pass still waits on the store, with the cursor where it was', async () => {
    const account = await createImapAccount(store, dovecot);
    await fillInbox(dovecot, account, 20);

    // Fault injection: the store takes the message writes and never answers.
    const collection = store.models.Message.collection;
    const insertMany = collection.insertMany.bind(collection);
    let calls = 0;
    let fail!: (err: Error) => void;
    const stalled = new Promise<never>((_, reject) => (fail = reject));
    stalled.catch(() => undefined);
    collection.insertMany = (() => {
      calls += 1;
      return stalled;
    }) as unknown as typeof collection.insertMany;

    const syncer = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false, options: { batchSize: 5, stopTimeoutMs: 200 } });
    let pass: Promise<PassReport> | undefined;
    try {
      pass = syncer.runPassNow();
      while (calls === 0) await sleep(20);

      const stopped = await Promise.race([syncer.stop().then(() => 'returned'), sleep(30_000).then(() => 'still waiting after 30 s')]);
      assert.equal(stopped, 'returned');
      const cursor = await store.models.FolderState.findOne({ accountId: new mongoose.Types.ObjectId(account.id), folder: 'INBOX' }).lean();
      assert.equal(cursor?.backfill?.done ?? 0, 0, 'nothing acknowledged, nothing counted');
      assert.equal(await store.models.Message.countDocuments({ accountId: new mongoose.Types.ObjectId(account.id) }), 0);
    } finally {
      collection.insertMany = insertMany;
      // The store answers at last (the process would have exited): the pass ends as a store error.
      fail(Object.assign(new Error('connection to the store was closed'), { name: 'MongoNetworkError' }));
    }
    const report = await pass;
    assert.equal(report.accounts.find((a) => a.accountId === account.id)?.outcome, 'store_error');
  });
});
