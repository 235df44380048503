/**
 * The user changes an account while its first sync runs (a big mailbox takes
 * minutes): Disable, Delete, turning IMAP Support off or editing the
 * credentials stop the pass at the next batch, with the cursor exact, and a
 * deleted account leaves no folder cursors behind.
 */
import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { deleteMailAccount, setMailAccountEnabled, setUserDisabled, updateMailAccount } from '../../gateway/accounts';
import { SYSTEM_ACTOR } from '../../gateway/accounts/audit';
import { silentLogger } from '../../gateway/core/log';
import type { Associator } from '../../gateway/mail/ingest';
import { startSyncer, type Syncer } from '../../gateway/sync/schedule';
import type { DovecotServer } from '../support/dovecot';
import { captureLog, createImapAccount, fillInbox, testConfig, testSecrets, useSyncWorld, type SyncWorld, type TestAccount } from './helpers';

const TOTAL = 60;
const BATCH = 5;

describe('IMAP sync of an account the user changes meanwhile', function () {
  this.timeout(120_000);
  const world = useSyncWorld('sync_account_changes');
  let store: SyncWorld['store'];
  let dovecot: DovecotServer;
  const { syncers } = world;
  before(() => ({ store, dovecot } = world));

  /** A mailbox of TOTAL messages, synced in batches of BATCH. */
  async function bigAccount(): Promise<TestAccount> {
    const account = await createImapAccount(store, dovecot);
    await fillInbox(dovecot, account, TOTAL);
    return account;
  }

  /** Does `change` once, while the first message of the pass is being stored (the console's click, mid-sync). */
  function changingOnce(change: () => Promise<unknown>): Associator {
    let done: Promise<unknown> | undefined;
    return {
      plan: async () => {
        done ??= change();
        await done;
        return { objectIds: [] };
      },
      commit: async () => undefined,
      repair: async () => undefined,
    };
  }

  function syncer(associate: Associator | null, log = silentLogger): Syncer {
    const instance = startSyncer({ config: testConfig(), log, store, secretBox: testSecrets, associate, schedule: false, options: { batchSize: BATCH } });
    syncers.push(instance);
    return instance;
  }

  const viewerOf = (account: TestAccount) => ({ id: new mongoose.Types.ObjectId(account.ownerId), role: 'user' });
  const deps = () => ({ store, secretBox: testSecrets, actor: SYSTEM_ACTOR });
  const stored = (account: TestAccount) => store.models.Message.countDocuments({ accountId: new mongoose.Types.ObjectId(account.id) });
  const inboxCursor = async (account: TestAccount) => store.models.FolderState.findOne({ accountId: new mongoose.Types.ObjectId(account.id), folder: 'INBOX' }).lean();

  it('stops at the next batch when the account is disabled, and resumes without gaps or duplicates once enabled', async () => {
    const account = await bigAccount();
    const capture = captureLog('info');
    const report = await syncer(changingOnce(() => setMailAccountEnabled(deps(), viewerOf(account), account.id, false)), capture.log).runPassNow();
    const result = report.accounts.find((a) => a.accountId === account.id)!;
    assert.equal(result.outcome, 'stopped');
    assert.equal(result.stopReason, 'disabled');
    // The batch being stored and at most the one fetched ahead of it.
    const before = await stored(account);
    assert.ok(before <= 2 * BATCH, `stopped within two batches, stored ${before} of ${TOTAL}`);
    const line = capture.lines.find((l) => l.msg === 'imap sync pass' && l.accountId === account.id);
    assert.equal(line?.reason, 'disabled', 'the log line says why the pass stopped');
    const cursor = (await inboxCursor(account))!;
    assert.ok(cursor.backfill!.done <= before, 'the cursor never passes what is stored');

    // Disabled: later passes leave it alone.
    assert.equal((await syncer(null).runPassNow()).accounts.find((a) => a.accountId === account.id), undefined);

    await setMailAccountEnabled(deps(), viewerOf(account), account.id, true);
    const resumed = (await syncer(null).runPassNow()).accounts.find((a) => a.accountId === account.id)!;
    assert.equal(resumed.outcome, 'synced');
    assert.equal(resumed.stored, TOTAL - before);
    assert.equal(await stored(account), TOTAL);
  });

  it('stops, and skips later passes, when an admin disables the owner; resumes without gaps once enabled again', async () => {
    const account = await bigAccount();
    const admin = { ...SYSTEM_ACTOR, email: 'it@acme.test' };
    const report = await syncer(changingOnce(() => setUserDisabled(store, account.ownerId, true, admin))).runPassNow();
    const result = report.accounts.find((a) => a.accountId === account.id)!;
    assert.equal(result.outcome, 'stopped');
    assert.equal(result.stopReason, 'owner-disabled');
    const before = await stored(account);
    assert.ok(before <= 2 * BATCH, `stopped within two batches, stored ${before} of ${TOTAL}`);
    const logins = await dovecot.loginAttempts(account.email);

    // Disabled owner: later passes do not sign in to the mailbox at all.
    const later = await syncer(null).runPassNow();
    assert.equal(later.accounts.find((a) => a.accountId === account.id), undefined);
    assert.equal(await dovecot.loginAttempts(account.email), logins);

    await setUserDisabled(store, account.ownerId, false, admin);
    const resumed = (await syncer(null).runPassNow()).accounts.find((a) => a.accountId === account.id)!;
    assert.equal(resumed.outcome, 'synced');
    assert.equal(await stored(account), TOTAL);
  });

  it('stops when the account is deleted, leaving no folder cursors behind', async () => {
    const account = await bigAccount();
    const report = await syncer(changingOnce(() => deleteMailAccount({ store, actor: SYSTEM_ACTOR }, viewerOf(account), account.id))).runPassNow();
    const result = report.accounts.find((a) => a.accountId === account.id)!;
    assert.equal(result.outcome, 'stopped');
    assert.equal(result.stopReason, 'deleted');
    assert.ok((await stored(account)) <= 2 * BATCH, 'no more mail fetched for a deleted account');
    assert.equal(await store.models.FolderState.countDocuments({ accountId: new mongoose.Types.ObjectId(account.id) }), 0);
    assert.equal(await store.models.MailAccount.countDocuments({ _id: account.id }), 0, 'the pass does not bring the account back');
  });

  it('stops when the user turns IMAP Support off or changes the password', async () => {
    const off = await bigAccount();
    const turnedOff = (await syncer(changingOnce(() => updateMailAccount(deps(), viewerOf(off), off.id, { imap: { enabled: false } }))).runPassNow())
      .accounts.find((a) => a.accountId === off.id)!;
    assert.equal(turnedOff.outcome, 'stopped');
    assert.equal(turnedOff.stopReason, 'imap-off');
    assert.ok((await stored(off)) <= 2 * BATCH);

    const edited = await bigAccount();
    const changed = (await syncer(changingOnce(() => updateMailAccount(deps(), viewerOf(edited), edited.id, { imap: { password: 'a-new-app-password' } }))).runPassNow())
      .accounts.find((a) => a.accountId === edited.id)!;
    assert.equal(changed.outcome, 'stopped');
    assert.equal(changed.stopReason, 'settings-changed');
    assert.ok((await stored(edited)) <= 2 * BATCH);
    const doc = (await store.models.MailAccount.findById(edited.id).lean())!;
    assert.equal(doc.imap!.status, 'unverified', 'the new password waits for Authenticate; the old pass does not overwrite that');
  });
});
