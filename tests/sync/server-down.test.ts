/**
 * The IMAP server goes away in the middle of a first sync (a restart, an
 * outage): the user is told the connection was lost (not that the server
 * "answered with an error"), the account backs off, and once the server is
 * back the sync resumes where it stopped, losing and duplicating nothing.
 */
import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { runCli } from '../../gateway/bin/cli';
import { silentLogger } from '../../gateway/core/log';
import { startSyncer, type PassReport } from '../../gateway/sync/schedule';
import type { DovecotServer } from '../support/dovecot';
import { createImapAccount, fillInbox, gatedAssociator, waitForInboxCursor, testConfig, testSecrets, useSyncWorld, type SyncWorld } from './helpers';

const TOTAL = 60;
const BATCH = 5;

describe('IMAP sync when the server goes down mid-sync', function () {
  this.timeout(120_000);
  const world = useSyncWorld('sync_server_down', { ownDovecot: true }); // its own Dovecot: this test stops it
  let store: SyncWorld['store'];
  let dovecot: DovecotServer;
  const { syncers } = world;
  let clockOffset = 0;
  const now = () => new Date(Date.now() + clockOffset);
  before(() => ({ store, dovecot } = world));

  it('reports CONNECTION_LOST, backs off, then resumes without gaps or duplicates', async () => {
    const account = await createImapAccount(store, dovecot);
    await fillInbox(dovecot, account, TOTAL);
    // Holds the messages after the first two batches until the server is down.
    const held = gatedAssociator(2 * BATCH);
    const syncer = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: held, schedule: false, options: { now, batchSize: BATCH } });
    syncers.push(syncer);
    let pass: Promise<PassReport> | undefined;
    try {
      pass = syncer.runPassNow();
      await waitForInboxCursor(store, account, 2 * BATCH); // the first two batches stored, their cursor saved
      await dovecot.stop();
    } finally {
      held.release();
    }
    const down = (await pass).accounts.find((a) => a.accountId === account.id)!;
    assert.equal(down.outcome, 'backoff');
    assert.equal(down.errorCode, 'CONNECTION_LOST', down.error);
    const doc = (await store.models.MailAccount.findById(account.id).lean())!;
    assert.equal(doc.imap!.lastErrorCode, 'CONNECTION_LOST');
    assert.match(doc.imap!.lastError, /The connection to 127\.0\.0\.1:\d+ was lost \(\w+\): the server closed it or went away\. Check that the server is up; the sync picks up where it stopped\./);
    assert.doesNotMatch(doc.imap!.lastError, /answered with an error/);
    assert.equal(doc.imap!.failures, 1);
    assert.equal(doc.imap!.status, 'authenticated', 'not the credentials: no re-authentication asked for');
    const storedBefore = await store.models.Message.countDocuments({ accountId: new mongoose.Types.ObjectId(account.id) });
    assert.ok(storedBefore < TOTAL);

    // What the operator sees from a shell.
    const status = async () => {
      const out: string[] = [];
      assert.equal(await runCli(['sync-status'], store, { out: (line) => out.push(line), err: (line) => out.push(line) }), 0);
      return out.find((line) => line.startsWith(`${account.email} |`)) ?? out.join('\n');
    };
    assert.match(await status(), new RegExp(`^${account.email.replace(/[.]/g, '\\.')} \\| authenticated \\| first sync \\d+/60 \\(\\d+%\\) \\| last success never \\| 1 failed attempt, next \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC \\| error CONNECTION_LOST: The connection to `));

    await dovecot.start();
    clockOffset += 2 * 60 * 60_000; // past the backoff
    const resumed = (await syncer.runPassNow()).accounts.find((a) => a.accountId === account.id)!;
    assert.equal(resumed.outcome, 'synced');
    assert.equal(resumed.stored, TOTAL - storedBefore);
    assert.equal(await store.models.Message.countDocuments({ accountId: new mongoose.Types.ObjectId(account.id) }), TOTAL);
    const after = (await store.models.MailAccount.findById(account.id).lean())!;
    assert.equal(after.imap!.lastError, '');
    assert.equal(after.imap!.failures, 0);
    assert.match(await status(), / \| authenticated \| first sync complete \| last success \d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
  });
});
