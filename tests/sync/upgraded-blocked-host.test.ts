/**
 * Upgrading to the release with MAIL_SERVER_BLOCKED_NETWORKS: a mailbox the
 * previous release synced from a server on this machine (127.0.0.1, e.g. a
 * Dovecot next to Postroom) is refused from the first pass on. The user (account
 * page, API) and the operator (sync-status) read one sentence saying why and
 * what to change, and the syncer backs off instead of retrying every pass.
 */
import { strict as assert } from 'node:assert';
import { runCli } from '../../gateway/bin/cli';
import { silentLogger } from '../../gateway/core/log';
import { DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS, setBlockedMailServerNetworks } from '../../gateway/core/mail-server-networks';
import { startSyncer } from '../../gateway/sync/schedule';
import { createImapAccount, fillInbox, testConfig, testSecrets, useSyncWorld, type SyncWorld } from './helpers';

describe('IMAP sync of a mailbox on 127.0.0.1 after the upgrade that blocks loopback', function () {
  this.timeout(60_000);
  const world = useSyncWorld('sync_upgraded_blocked_host');
  let store: SyncWorld['store'];
  const { syncers } = world;
  before(() => ({ store } = world));
  afterEach(() => setBlockedMailServerNetworks(undefined));

  it('says in one readable sentence why it stopped, on the account (its page and API) and in sync-status, and backs off', async () => {
    const account = await createImapAccount(store, world.dovecot);
    await fillInbox(world.dovecot, account, 3);
    let clockOffset = 0;
    const now = () => new Date(Date.now() + clockOffset);
    const syncer = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, schedule: false, options: { now } });
    syncers.push(syncer);
    // The previous release: no blocked networks, the first sync completes.
    setBlockedMailServerNetworks('none');
    assert.equal((await syncer.runPassNow()).accounts.find((a) => a.accountId === account.id)!.outcome, 'synced');

    // This release, default MAIL_SERVER_BLOCKED_NETWORKS.
    setBlockedMailServerNetworks(DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS);
    const refused = (await syncer.runPassNow()).accounts.find((a) => a.accountId === account.id)!;
    assert.equal(refused.outcome, 'backoff');
    assert.equal(refused.errorCode, 'MAIL_SERVER_BLOCKED');
    const sentence = "127.0.0.1 is in a network Postroom does not connect to for mailboxes (127.0.0.0/8): the host must be the mail provider's IMAP server, not this machine or a local-only address. An administrator can change MAIL_SERVER_BLOCKED_NETWORKS.";
    const doc = (await store.models.MailAccount.findById(account.id).lean())!;
    assert.equal(doc.imap!.lastError, sentence);
    assert.equal(doc.imap!.failures, 1);
    assert.ok(doc.imap!.nextAttemptAt && doc.imap!.nextAttemptAt > now(), 'backs off');
    // Backing off: the next pass does not try again.
    assert.equal((await syncer.runPassNow()).accounts.find((a) => a.accountId === account.id), undefined);

    const out: string[] = [];
    assert.equal(await runCli(['sync-status'], store, { out: (line) => out.push(line), err: (line) => out.push(line) }), 0);
    const line = out.find((l) => l.startsWith(`${account.email} |`)) ?? out.join('\n');
    assert.ok(line.includes(`error MAIL_SERVER_BLOCKED: ${sentence}`), line);

    // Once an administrator allows it again, the next pass after the backoff syncs.
    setBlockedMailServerNetworks('none');
    clockOffset = 2 * 60 * 60_000;
    assert.equal((await syncer.runPassNow()).accounts.find((a) => a.accountId === account.id)!.outcome, 'synced');
  });
});
