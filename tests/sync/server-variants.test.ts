import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { runCli } from '../../gateway/bin/cli';
import { silentLogger } from '../../gateway/core/log';
import { getSyncLedger } from '../../gateway/sync/ledger';
import { startSyncer, type PassReport, type Syncer, type SyncerDeps } from '../../gateway/sync/schedule';
import type { DovecotServer } from '../support/dovecot';
import { createImapAccount, makeMessage, testConfig, testSecrets, useSyncWorld, type SyncWorld, type TestAccount } from './helpers';

/**
 * IMAP servers off the happy path, as employees' providers run them: a
 * folder the server will not open although the login works.
 */
describe('IMAP sync against servers that behave differently', function () {
  this.timeout(60_000);
  const world = useSyncWorld('sync_server_variants');
  let store: SyncWorld['store'];
  let dovecot: DovecotServer;
  const { syncers } = world;
  before(() => ({ store, dovecot } = world));

  function syncer(overrides: Partial<SyncerDeps> = {}): Syncer {
    const instance = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false, ...overrides });
    syncers.push(instance);
    return instance;
  }
  const resultFor = (report: PassReport, account: TestAccount) => report.accounts.find((a) => a.accountId === account.id);
  const storedCount = (account: TestAccount) => store.models.Message.countDocuments({ accountId: new mongoose.Types.ObjectId(account.id) });
  const statusLine = async (account: TestAccount) => {
    const out: string[] = [];
    assert.equal(await runCli(['sync-status'], store, { out: (line) => out.push(line), err: (line) => out.push(line) }), 0);
    return out.find((line) => line.startsWith(`${account.email} |`)) ?? out.join('\n');
  };

  it('says which folders the server would not open (INBOX first), never "first sync complete" without INBOX, and shows a refused Sent folder', async () => {
    const account = await createImapAccount(store, dovecot, { folders: ['Projects'] });
    await dovecot.append(account.email, 'INBOX', makeMessage({ to: account.email }).raw);
    await dovecot.append(account.email, 'Sent', makeMessage({ to: 'carol@customer.test' }).raw);
    await dovecot.append(account.email, 'Projects', makeMessage({ to: account.email }).raw);
    // Login works; the server cannot read these folders (a botched migration): EXAMINE answers NO.
    for (const folder of ['INBOX', 'Sent', 'Projects']) await dovecot.setFolderReadable(account.email, folder, false);

    const result = resultFor(await syncer().runPassNow(), account)!;
    assert.equal(result.stored, 0);
    assert.equal(result.errorCode, 'FOLDER_ERROR');
    const ledger = (await getSyncLedger(store, account.id))!;
    assert.equal(ledger.lastErrorCode, 'FOLDER_ERROR');
    assert.match(ledger.lastError, /^The server let Postroom sign in but would not let it read 3 folders: INBOX \("Internal error occurred\.[^"]*"\), Sent \("[^"]+"\), Projects \("[^"]+"\)\. /);
    assert.match(ledger.lastError, /ask your mail provider/);
    assert.deepEqual(ledger.folders.map((f) => [f.folder, /Internal error occurred/.test(f.lastError)]), [['INBOX', true], ['Projects', true], ['Sent', true]]);
    assert.equal(ledger.backfill.completed, false, 'INBOX was never read: the first sync is not complete');
    assert.doesNotMatch(await statusLine(account), /first sync complete/);

    // The provider repairs it: everything syncs, the errors go.
    for (const folder of ['INBOX', 'Sent', 'Projects']) await dovecot.setFolderReadable(account.email, folder, true);
    const repaired = resultFor(await syncer().runPassNow(), account)!;
    assert.equal(repaired.stored, 3);
    assert.equal(await storedCount(account), 3);
    const after = (await getSyncLedger(store, account.id))!;
    assert.equal(after.lastError, '');
    assert.equal(after.backfill.completed, true);
    assert.ok(after.folders.every((f) => f.lastError === ''));
  });
});
