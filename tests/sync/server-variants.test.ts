import { strict as assert } from 'node:assert';
import net from 'node:net';
import mongoose from 'mongoose';
import { runCli } from '../../gateway/bin/cli';
import { silentLogger } from '../../gateway/core/log';
import { getSyncLedger } from '../../gateway/sync/ledger';
import { buildApp, makeUser, signIn } from '../admin/fixtures';
import { startSyncer, type PassReport, type Syncer, type SyncerDeps } from '../../gateway/sync/schedule';
import { ImapFlow } from 'imapflow';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { createImapAccount, DAY, fillInbox, gatedAssociator, makeMessage, sleep, testConfig, testSecrets, useSyncWorld, type SyncWorld, type TestAccount } from './helpers';

/**
 * IMAP servers off the happy path, as employees' providers run them: a
 * folder the server will not open although the login works; a server that
 * goes quiet in the middle of a FETCH or never says UIDNEXT (through a
 * loopback proxy); an INBOX restored from a backup; scattered UIDs against
 * a short command-line limit; mail expunged between listing and FETCH; a
 * Courier-like server (prefix "INBOX.", separator ".", few capabilities).
 */

/** What the proxy knows of one connection: message FETCHes (BODY.PEEK[]) the client asked for so far. */
interface ProxiedConnection {
  fetches: number;
  /** Free for the hook's own counting. */
  passed: number;
}

/**
 * A TCP proxy in front of Dovecot's plain port that lets a test change what
 * the server says: `fromServer` gets each chunk from the server and returns
 * what the client receives (an empty buffer: nothing, the connection stays
 * open and silent).
 */
interface ImapProxy {
  port: number;
  fromServer: (data: Buffer, connection: ProxiedConnection) => Buffer;
  close(): Promise<void>;
}

async function imapProxy(targetPort: number): Promise<ImapProxy> {
  const sockets = new Set<net.Socket>();
  const proxy: ImapProxy = { port: 0, fromServer: (data) => data, close: async () => undefined };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    const connection: ProxiedConnection = { fetches: 0, passed: 0 };
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (data: Buffer) => {
      connection.fetches += (data.toString('latin1').match(/BODY\.PEEK\[\]/g) ?? []).length;
      upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => {
      const out = proxy.fromServer(data, connection);
      if (out.length > 0) client.write(out);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = (server.address() as net.AddressInfo).port;
  proxy.close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return proxy;
}

/** Once `fetch` message FETCHes were asked for, only 200 more bytes of the server's answers come through, then silence. */
function stallAtFetch(fetch: number) {
  return (data: Buffer, connection: ProxiedConnection): Buffer => {
    if (connection.fetches < fetch) return data;
    const through = data.subarray(0, Math.max(0, 200 - connection.passed));
    connection.passed += through.length;
    return through;
  };
}

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
    // The account page: the error, every refused folder's row, and a first sync that waits for it.
    const owner = await makeUser(store, `owner-refused-${account.email}`);
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { ownerId: new mongoose.Types.ObjectId(owner.id.toString()) } });
    const { agent } = await signIn(buildApp(store).app, owner.email);
    const page = (await agent.get(`/preferences/email/${account.id}`).expect(200)).text;
    assert.match(page, /id="imap-last-error"><strong>FOLDER_ERROR<\/strong>: The server let Postroom sign in but would not let it read 3 folders: INBOX/);
    assert.match(page, /First sync: not started; it begins once the problem above is solved\./);
    assert.doesNotMatch(page, /First sync complete|First sync: starting/);
    for (const folder of ['INBOX', 'Sent', 'Projects']) assert.match(page, new RegExp(`<td>${folder}</td>`));

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

  it('reports a server that goes quiet mid-FETCH as a timeout, not as a lost connection, backs off, and the next pass resumes', async () => {
    const proxy = await imapProxy(dovecot.port);
    let clockOffset = 0;
    const options = { batchSize: 10, socketTimeoutMs: 1000, now: () => new Date(Date.now() + clockOffset) };
    try {
      const account = await createImapAccount(store, dovecot, { imap: { port: proxy.port, tls: 'none' } });
      await fillInbox(dovecot, account, 30);
      proxy.fromServer = stallAtFetch(2); // the first batch comes through, the second never finishes

      const stalled = resultFor(await syncer({ options }).runPassNow(), account)!;
      assert.equal(stalled.outcome, 'backoff');
      assert.equal(stalled.errorCode, 'TIMEOUT', stalled.error);
      const ledger = (await getSyncLedger(store, account.id))!;
      assert.equal(ledger.lastErrorCode, 'TIMEOUT');
      assert.match(ledger.lastError, /^127\.0\.0\.1:\d+ stopped answering in the middle of the sync: nothing came for 1 s \(ETIMEOUT\), so Postroom closed the connection\. What was stored stays; the next attempt resumes there\.$/);
      assert.equal(ledger.failures, 1);
      assert.equal(ledger.status, 'authenticated', 'not the credentials');
      assert.equal(await storedCount(account), 10, 'the first batch is stored');

      proxy.fromServer = (data) => data;
      clockOffset += 2 * 60 * 60_000; // past the backoff
      const resumed = resultFor(await syncer({ options }).runPassNow(), account)!;
      assert.equal(resumed.outcome, 'synced');
      assert.equal(resumed.stored, 20);
      assert.equal(resumed.duplicates, 0);
      assert.equal(await storedCount(account), 30);
    } finally {
      await proxy.close();
    }
  });

  it('syncs a server that never says UIDNEXT (Winmail Pro, mail.163.com): new mail is read, not skipped for good', async () => {
    const proxy = await imapProxy(dovecot.port);
    // RFC 3501 §6.3.1 requires UIDNEXT in the SELECT/EXAMINE answer; some servers leave it out, here also from STATUS.
    proxy.fromServer = (data) => Buffer.from(data.toString('latin1').replace(/\* OK \[UIDNEXT \d+\][^\r\n]*\r\n/g, '').replace(/ ?UIDNEXT \d+/g, ''), 'latin1');
    try {
      const account = await createImapAccount(store, dovecot, { imap: { port: proxy.port, tls: 'none' } });
      await fillInbox(dovecot, account, 5);
      const first = resultFor(await syncer().runPassNow(), account)!;
      assert.equal(first.outcome, 'synced', first.error);
      assert.equal(first.stored, 5);

      await fillInbox(dovecot, account, 3);
      const second = resultFor(await syncer().runPassNow(), account)!;
      assert.equal(second.stored, 3);
      assert.equal(second.duplicates, 0);
      const third = resultFor(await syncer().runPassNow(), account)!;
      assert.equal(third.stored + third.duplicates, 0, 'nothing fetched twice');
      assert.equal(await storedCount(account), 8);
      const inbox = (await getSyncLedger(store, account.id))!.folders.find((f) => f.folder === 'INBOX')!;
      assert.equal(inbox.lastUid, 8);
      assert.equal(inbox.stalled, false);
    } finally {
      await proxy.close();
    }
  });

  it('reads the mail of an INBOX restored from a backup (UIDNEXT went back under the same UIDVALIDITY), storing nothing twice', async () => {
    const account = await createImapAccount(store, dovecot);
    await fillInbox(dovecot, account, 3);
    const restore = await dovecot.backupInbox(account.email);
    await fillInbox(dovecot, account, 2); // UIDs 4 and 5
    assert.equal(resultFor(await syncer().runPassNow(), account)?.stored, 5);

    // The provider restores last night's backup (UIDs 1-3, UIDNEXT 4): the next mail gets UID 4 again.
    await restore();
    const [arrived] = await fillInbox(dovecot, account, 1);
    const result = resultFor(await syncer().runPassNow(), account)!;
    assert.equal(result.outcome, 'synced', result.error);
    assert.equal(result.stored, 1, 'the mail that arrived after the restore');
    assert.equal(result.duplicates, 3, 'the restored mail is read again (its UIDs can no longer be trusted), not stored again');
    assert.equal(await storedCount(account), 6);
    assert.ok(await store.models.Message.exists({ messageId: arrived.messageId }));
    const inbox = (await getSyncLedger(store, account.id))!.folders.find((f) => f.folder === 'INBOX')!;
    assert.equal(inbox.lastUid, 4);
    assert.equal(inbox.uidNext, 5);
    assert.equal(inbox.backfill.completed, true);
    assert.equal(inbox.resync?.reason, 'uids-reused', 'the API says why the folder was read again');

    // While such a re-read runs (a big folder takes several passes), the page and sync-status say why the
    // first sync is back; here the re-read is made to look unfinished.
    await store.models.FolderState.updateOne({ accountId: new mongoose.Types.ObjectId(account.id), folder: 'INBOX' }, { $set: { 'backfill.completed': false } });
    const owner = await makeUser(store, `owner-restored-${account.email}`);
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { ownerId: new mongoose.Types.ObjectId(owner.id.toString()) } });
    const { agent } = await signIn(buildApp(store).app, owner.email);
    const page = (await agent.get(`/preferences/email/${account.id}`).expect(200)).text;
    assert.match(page, /The server restored this folder from a backup \(its message numbers were handed out again\), so it is being read again from the last 30 days; mail already in Postroom is not stored twice\./);
    assert.match(await statusLine(account), / \| re-reading INBOX \(uids-reused \d{4}-\d\d-\d\d \d\d:\d\d UTC\)/);
    await store.models.FolderState.updateOne({ accountId: new mongoose.Types.ObjectId(account.id), folder: 'INBOX' }, { $set: { 'backfill.completed': true } });

    // And from there on as usual.
    await fillInbox(dovecot, account, 1);
    const next = resultFor(await syncer().runPassNow(), account)!;
    assert.equal(next.stored, 1);
    assert.equal(next.duplicates, 0);
  });

  describe('a Courier-like server: "INBOX." prefix, "." separator, no SPECIAL-USE, CONDSTORE, ESEARCH, IDLE or LIST-STATUS', () => {
    let courier: DovecotServer;
    before(async () => {
      courier = await startDovecot({ variant: { namespacePrefix: 'INBOX.', separator: '.', sentFolder: false, imapCapability: 'IMAP4rev1 LITERAL+ SASL-IR ID ENABLE NAMESPACE UIDPLUS UNSELECT' } });
    });
    after(() => courier?.stop());

    it('syncs INBOX, the Sent folder found by its name, and picked folders named outside ASCII; suggests the prefixed name of a misspelt one', async () => {
      const account = await createImapAccount(store, courier, { folders: ['INBOX.Entwürfe', 'INBOX.R&D "2026"', 'Projects'] });
      for (const folder of ['INBOX', 'INBOX.Sent Items', 'INBOX.Entwürfe', 'INBOX.R&D "2026"', 'INBOX.Projects']) await courier.append(account.email, folder, makeMessage({ to: account.email, subject: folder }).raw);
      const first = resultFor(await syncer().runPassNow(), account)!;
      assert.equal(first.outcome, 'synced', first.error);
      assert.equal(first.stored, 4);
      const ledger = (await getSyncLedger(store, account.id))!;
      assert.deepEqual(ledger.folders.map((f) => [f.folder, f.backfill.completed]), [['INBOX', true], ['INBOX.Entwürfe', true], ['INBOX.R&D "2026"', true], ['INBOX.Sent Items', true], ['Projects', false]]);
      assert.match(ledger.folders.find((f) => f.folder === 'Projects')!.lastError, /the server has "INBOX\.Projects"/);
      // Without LIST-STATUS: one STATUS per synced folder tells that nothing changed.
      const second = resultFor(await syncer().runPassNow(), account)!;
      assert.equal(second.unchangedFolders, 4);
    });

    it('lists only the Sent folder the server has now when it changes (renamed, a language change), not the old one for good', async () => {
      const account = await createImapAccount(store, courier);
      await courier.append(account.email, 'INBOX.Sent Items', makeMessage({ to: 'carol@customer.test' }).raw);
      assert.equal(resultFor(await syncer().runPassNow(), account)?.stored, 1);
      assert.deepEqual((await getSyncLedger(store, account.id))!.folders.map((f) => f.folder), ['INBOX', 'INBOX.Sent Items']);

      const client = new ImapFlow({ ...courier.clientOptions(account.email, account.password), logger: false });
      await client.connect();
      try {
        await client.mailboxRename('INBOX.Sent Items', 'INBOX.Old mail');
      } finally {
        await client.logout();
      }
      await courier.append(account.email, 'INBOX.Sent', makeMessage({ to: 'dave@customer.test' }).raw);
      const result = resultFor(await syncer().runPassNow(), account)!;
      assert.equal(result.stored, 1);
      const ledger = (await getSyncLedger(store, account.id))!;
      assert.deepEqual(ledger.folders.map((f) => f.folder), ['INBOX', 'INBOX.Sent']);
      assert.equal(ledger.backfill.completed, true);
    });
  });

  it('backfills a mailbox whose recent mail has scattered UIDs (migrated, or much deleted) without a command line the server refuses', async () => {
    // Dovecot refuses command lines over imap_max_line_length (64k by default; 1k here, so a few hundred
    // UIDs show it). A mailbox migrated in no particular date order has the backfill window's UIDs scattered:
    // one UID FETCH of all their sizes was 'Too long argument', at every pass, and INBOX never synced.
    const strict = await startDovecot({ variant: { maxLineLength: '1k' } });
    try {
      const account = await createImapAccount(store, strict);
      const now = Date.now();
      const old = Array.from({ length: 1000 }, (_, i) => ({ raw: makeMessage({ to: account.email }).raw, date: new Date(now - 200 * DAY + i * 60_000) }));
      const mixed = Array.from({ length: 500 }, (_, i) => ({ raw: makeMessage({ to: account.email }).raw, date: new Date(now - (i % 2 === 0 ? 10 : 90) * DAY + i * 60_000) }));
      await strict.appendMany(account.email, 'INBOX', [...old, ...mixed]);
      const result = resultFor(await syncer().runPassNow(), account)!;
      assert.equal(result.outcome, 'synced', result.error);
      assert.equal(result.error, undefined);
      assert.equal(result.stored, 250, 'every other one of UIDs 1001-1500 is inside the 30-day window');
      const inbox = (await getSyncLedger(store, account.id))!.folders.find((f) => f.folder === 'INBOX')!;
      assert.equal(inbox.backfill.completed, true);
      assert.equal(inbox.lastError, '');
      assert.equal(inbox.resync, null, 'a first sync is not a re-read');
    } finally {
      await strict.stop();
    }
  });

  it('stores the rest, with no error and no stall, when messages are expunged between the listing and their FETCH', async () => {
    const account = await createImapAccount(store, dovecot);
    await fillInbox(dovecot, account, 30);
    // Backfill newest first in batches of 10: UIDs 30-21, 20-11, 10-1. The gate holds the first batch's
    // sixth message, so the third batch is listed but not fetched yet when the user deletes UIDs 1-5.
    const gate = gatedAssociator(5);
    let planned = 0;
    const counting = { ...gate, plan: async (...args: Parameters<typeof gate.plan>) => { planned += 1; return gate.plan(...args); } };
    const pass = syncer({ associate: counting, options: { batchSize: 10 } }).runPassNow();
    try {
      while (planned < 6) await sleep(20);
      const client = new ImapFlow({ ...dovecot.clientOptions(account.email, account.password), logger: false });
      await client.connect();
      try {
        await client.mailboxOpen('INBOX');
        await client.messageDelete('1:5', { uid: true });
      } finally {
        await client.logout();
      }
    } finally {
      gate.release();
    }
    const result = resultFor(await pass, account)!;
    assert.equal(result.outcome, 'synced', result.error);
    assert.equal(result.error, undefined);
    assert.equal(result.stored, 25);
    const inbox = (await getSyncLedger(store, account.id))!.folders.find((f) => f.folder === 'INBOX')!;
    assert.equal(inbox.backfill.completed, true);
    assert.deepEqual([inbox.backfill.done, inbox.backfill.total], [25, 25], '"first sync complete: 25 messages read", not 30');
    assert.equal(inbox.stalled, false);
    assert.equal(inbox.lastError, '');
    const again = resultFor(await syncer().runPassNow(), account)!;
    assert.equal(again.stored + again.duplicates, 0);
    assert.equal(await storedCount(account), 25);
  });

  it('a server that offers CONDSTORE without ENABLE: a flag change costs one EXAMINE, not one at every pass after it', async () => {
    // HIGHESTMODSEQ comes with LIST-STATUS, but imapflow enables CONDSTORE through ENABLE (RFC 5161) only, so
    // the session cannot ask CHANGEDSINCE; a mod-sequence kept for a catch-up that never comes opened INBOX at
    // every later pass (d12d7c8).
    const noEnable = await startDovecot({ variant: { imapCapability: 'IMAP4rev1 LITERAL+ SASL-IR ID NAMESPACE UIDPLUS UNSELECT SPECIAL-USE LIST-STATUS CONDSTORE' } });
    try {
      const account = await createImapAccount(store, noEnable);
      for (const subject of ['Read on the phone later', 'Not read']) await noEnable.append(account.email, 'INBOX', makeMessage({ to: account.email, subject }).raw);
      assert.equal(resultFor(await syncer().runPassNow(), account)!.outcome, 'synced');
      const unchanged = resultFor(await syncer().runPassNow(), account)!;
      assert.equal(unchanged.unchangedFolders, unchanged.folders, 'nothing changed: no folder opened');
      const phone = new ImapFlow({ ...noEnable.clientOptions(account.email, account.password), logger: false });
      await phone.connect();
      try {
        await phone.mailboxOpen('INBOX');
        await phone.messageFlagsAdd({ subject: 'Read on the phone later' }, ['\\Seen']);
      } finally {
        await phone.logout();
      }
      const changed = resultFor(await syncer().runPassNow(), account)!;
      assert.equal(changed.outcome, 'synced', changed.error);
      assert.equal(changed.unchangedFolders, changed.folders - 1, 'INBOX opened once for its new mod-sequence');
      const after = resultFor(await syncer().runPassNow(), account)!;
      assert.equal(after.unchangedFolders, after.folders, 'and not again');
      // Without CHANGEDSINCE the change is not read (README): Postroom has the mail as it was.
      assert.equal(await store.models.Message.countDocuments({ accountId: new mongoose.Types.ObjectId(account.id), unread: true }), 2);
    } finally {
      await noEnable.stop();
    }
  });
});
