import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import net from 'node:net';
import mongoose from 'mongoose';
import { SecretBox } from '../../gateway/core/crypto';
import { silentLogger } from '../../gateway/core/log';
import { startSyncer, type PassReport, type Syncer, type SyncerDeps } from '../../gateway/sync/schedule';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { createImapAccount, fillInbox, makeMessage, testConfig, testSecrets, useSyncWorld, type SyncWorld, type TestAccount } from './helpers';

describe('IMAP syncer failure handling', function () {
  this.timeout(120_000);
  const world = useSyncWorld('sync_failures');
  let store: SyncWorld['store'];
  let dovecot: DovecotServer;
  const { syncers } = world;
  let clockOffset = 0;
  const now = () => new Date(Date.now() + clockOffset);
  before(() => ({ store, dovecot } = world));

  function syncer(overrides: Partial<SyncerDeps> = {}): Syncer {
    const instance = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false, options: { now }, ...overrides });
    syncers.push(instance);
    return instance;
  }
  const resultFor = (report: PassReport, account: TestAccount) => report.accounts.find((a) => a.accountId === account.id);
  const accountDoc = async (account: TestAccount) => (await store.models.MailAccount.findById(account.id).lean())!;
  const storedCount = (account: TestAccount) => store.models.Message.countDocuments({ accountId: new mongoose.Types.ObjectId(account.id) });

  it('records a wrong password with the server text and does not retry until the user re-authenticates', async () => {
    const account = await createImapAccount(store, dovecot, { storedPassword: 'not-the-password' });
    await dovecot.append(account.email, 'INBOX', makeMessage({ to: account.email }).raw);

    const first = resultFor(await syncer().runPassNow(), account);
    assert.equal(first?.outcome, 'auth_failed');
    let doc = await accountDoc(account);
    assert.equal(doc.imap!.status, 'failing');
    assert.equal(doc.imap!.lastErrorCode, 'AUTH_FAILED');
    assert.match(doc.imap!.lastError, /Authentication failed\./, 'the server text is shown');
    assert.equal(doc.imap!.failures, 0, 'not a network failure: no backoff counter');
    assert.ok(!doc.imap!.lastError.includes('not-the-password'));

    // Later passes, also by other syncers, leave it alone: no retry storm
    // that would get the user locked out by their provider.
    for (let i = 0; i < 4; i++) {
      const report = await syncer().runPassNow();
      assert.equal(resultFor(report, account), undefined);
    }
    assert.equal(await dovecot.loginAttempts(account.email), 1);

    // The user enters the right password and authenticates in the console.
    await store.models.MailAccount.updateOne(
      { _id: account.id },
      { $set: { 'imap.passwordEnc': testSecrets.seal(account.password, account.id), 'imap.status': 'authenticated', 'imap.lastError': '', 'imap.lastErrorCode': '' } },
    );
    const recovered = resultFor(await syncer().runPassNow(), account);
    assert.equal(recovered?.outcome, 'synced');
    assert.equal(recovered?.stored, 1);
    assert.equal(await dovecot.loginAttempts(account.email), 2);
    doc = await accountDoc(account);
    assert.equal(doc.imap!.status, 'authenticated');
    assert.equal(doc.imap!.lastError, '');
  });

  it('backs off, and keeps the account authenticated, when the server cannot check passwords for a while (NO [UNAVAILABLE])', async () => {
    const account = await createImapAccount(store, dovecot);
    await dovecot.append(account.email, 'INBOX', makeMessage({ to: account.email }).raw);
    await dovecot.failAuth(account.email, true);
    let result: PassReport['accounts'][number] | undefined;
    try {
      result = resultFor(await syncer().runPassNow(), account);
    } finally {
      await dovecot.failAuth(account.email, false);
    }
    assert.equal(result?.outcome, 'backoff', 'a server-side outage is retried, not taken for a wrong password');
    let doc = await accountDoc(account);
    assert.equal(doc.imap!.status, 'authenticated', 'the user has nothing to re-enter');
    assert.equal(doc.imap!.lastErrorCode, 'SERVER_UNAVAILABLE');
    assert.match(doc.imap!.lastError, /Temporary authentication failure/);
    assert.equal(doc.imap!.failures, 1);

    // Once the backoff elapsed, the next pass syncs on its own.
    clockOffset += 61_000;
    assert.equal(resultFor(await syncer().runPassNow(), account)?.outcome, 'synced');
    doc = await accountDoc(account);
    assert.equal(doc.imap!.lastError, '');
    assert.equal(await storedCount(account), 1);
  });

  it('marks a password it cannot decrypt (SECRET_KEY changed) as failing without trying to log in', async () => {
    const account = await createImapAccount(store, dovecot);
    const otherKey = new SecretBox(crypto.randomBytes(32));
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { 'imap.passwordEnc': otherKey.seal(account.password, account.id) } });
    const result = resultFor(await syncer().runPassNow(), account);
    assert.equal(result?.outcome, 'auth_failed');
    const doc = await accountDoc(account);
    assert.equal(doc.imap!.status, 'failing');
    assert.equal(doc.imap!.lastErrorCode, 'SECRET_UNREADABLE');
    assert.match(doc.imap!.lastError, /cannot be decrypted/);
    assert.equal(await dovecot.loginAttempts(account.email), 0);
  });

  it('stops at the last whole batch when the store fails, even with the next batch stored, without backing off, and resumes without duplicates', async () => {
    const account = await createImapAccount(store, dovecot);
    // UIDs 1..35, oldest first; the backfill takes them newest first in batches of 10: 35–26, 25–16, 15–6, 5–1.
    const messages = await fillInbox(dovecot, account, 35);
    const failing = messages[19].messageId; // UID 20, in the second batch
    const thirdBatch = new Set(messages.slice(5, 15).map((m) => m.messageId));

    // Fault injection: the store loses the write of UID 20 (the other documents of its group commit are
    // written, as a bulk write error names only the failed one) and takes a while to say so, so the
    // third batch is fetched and stored meanwhile (batches are pipelined: gateway/sync/sync-folder.ts).
    const collection = store.models.Message.collection;
    const insertMany = collection.insertMany.bind(collection);
    collection.insertMany = (async (docs: Array<{ messageId?: string }>, ...rest: unknown[]) => {
      const index = docs.findIndex((doc) => doc.messageId === failing);
      if (index < 0) return (insertMany as (...args: unknown[]) => ReturnType<typeof insertMany>)(docs, ...rest);
      const others = docs.filter((_, i) => i !== index);
      if (others.length > 0) await (insertMany as (...args: unknown[]) => ReturnType<typeof insertMany>)(others, ...rest);
      await new Promise((resolve) => setTimeout(resolve, 500));
      throw Object.assign(new Error('connection to the store was lost'), { writeErrors: [{ index, code: 6, errmsg: 'connection to the store was lost' }] });
    }) as unknown as typeof collection.insertMany;
    let report: PassReport;
    try {
      report = await syncer({ options: { now, batchSize: 10 } }).runPassNow();
    } finally {
      collection.insertMany = insertMany;
    }
    const failed = resultFor(report, account)!;
    assert.equal(failed.outcome, 'store_error');
    const stored = await store.models.Message.find({ accountId: new mongoose.Types.ObjectId(account.id) }, { messageId: 1 }).lean();
    const cursor = (await store.models.FolderState.findOne({ accountId: new mongoose.Types.ObjectId(account.id), folder: 'INBOX' }).lean())!;
    assert.ok(!stored.some((m) => m.messageId === failing), 'the lost write is not stored');
    assert.ok(stored.some((m) => thirdBatch.has(m.messageId)), 'the third batch was (partly) stored while the second one failed');
    assert.equal(cursor.backfill!.done, 10, 'the cursor covers the first batch only: never past the failed one');
    assert.equal(cursor.backfill!.belowUid, 26);
    let doc = await accountDoc(account);
    assert.equal(doc.imap!.failures, 0, 'not the mailbox’s fault: no backoff');
    assert.equal(doc.imap!.nextAttemptAt, null);
    assert.equal(doc.imap!.lastErrorCode, 'STORE_UNAVAILABLE');
    assert.equal(doc.messageCount, stored.length, 'the account counts what was stored, also of the unfinished batches');

    const resumed = resultFor(await syncer({ options: { now, batchSize: 10 } }).runPassNow(), account)!;
    assert.equal(resumed.outcome, 'synced');
    assert.equal(resumed.duplicates, stored.length - 10);
    assert.equal(resumed.stored, 35 - stored.length);
    assert.equal(await storedCount(account), 35);
    doc = await accountDoc(account);
    assert.equal(doc.imap!.lastError, '');
    assert.equal(doc.messageCount, 35);
  });

  describe('network trouble', () => {
    let privateDovecot: DovecotServer;
    let silent: net.Server;
    const silentSockets = new Set<net.Socket>();

    before(async () => {
      privateDovecot = await startDovecot();
      // Accepts connections and never says a word: a greeting timeout.
      silent = net.createServer((socket) => {
        silentSockets.add(socket);
        socket.on('close', () => silentSockets.delete(socket));
      });
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    });
    after(async () => {
      for (const socket of silentSockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
      await privateDovecot.stop();
    });

    it('ends a pass that a server keeps alive without ever finishing (a byte now and then), so the slot is freed and the account backs off', async () => {
      // Greets, then answers every command one byte at a time, never a whole line: never silent long enough for the socket timeout.
      const drips = new Set<NodeJS.Timeout>();
      const dripping = net.createServer((socket) => {
        socket.write('* OK [CAPABILITY IMAP4rev1] ready\r\n');
        socket.once('data', () => {
          const drip = setInterval(() => socket.write('*'), 100);
          drips.add(drip);
          socket.on('close', () => { clearInterval(drip); drips.delete(drip); });
        });
        socket.on('error', () => undefined);
      });
      await new Promise<void>((resolve) => dripping.listen(0, '127.0.0.1', resolve));
      try {
        const slow = await createImapAccount(store, dovecot, { imap: { port: (dripping.address() as net.AddressInfo).port, tls: 'none' } });
        const healthy = await createImapAccount(store, dovecot);
        await dovecot.append(healthy.email, 'INBOX', makeMessage({ to: healthy.email }).raw);
        // One slot: without a bound on the pass, the healthy account would wait behind the dripping one for good.
        const report = await syncer({ config: testConfig({ IMAP_SYNC_CONCURRENCY: '1' }), options: { now, socketTimeoutMs: 60_000, passDeadlineMs: 2000 } }).runPassNow();
        assert.equal(resultFor(report, slow)?.outcome, 'backoff');
        assert.equal(resultFor(report, healthy)?.outcome, 'synced');
        assert.equal(resultFor(report, healthy)?.stored, 1);
        const doc = await accountDoc(slow);
        assert.equal(doc.imap!.lastErrorCode, 'IMAP_TOO_SLOW');
        assert.match(doc.imap!.lastError, /^The IMAP server at 127\.0\.0\.1:\d+ kept the connection open without finishing anything for 1 min/);
        assert.equal(doc.imap!.failures, 1);
      } finally {
        for (const drip of drips) clearInterval(drip);
        dripping.close();
      }
    });

    it('backs off one account exponentially while the others keep syncing, then recovers', async () => {
      const down = await createImapAccount(store, privateDovecot);
      const mail = makeMessage({ to: down.email });
      await privateDovecot.append(down.email, 'INBOX', mail.raw);
      const timeout = await createImapAccount(store, dovecot, { imap: { port: (silent.address() as net.AddressInfo).port, tls: 'none' } });
      const tlsMismatch = await createImapAccount(store, dovecot, { imap: { port: dovecot.port, tls: 'implicit' } }); // TLS spoken to the plain port
      const healthy = await createImapAccount(store, dovecot);
      await dovecot.append(healthy.email, 'INBOX', makeMessage({ to: healthy.email }).raw);
      const options = { now, greetingTimeoutMs: 1500, connectionTimeoutMs: 3000 };

      await privateDovecot.stop();
      let started = now();
      let report = await syncer({ options }).runPassNow();
      assert.equal(resultFor(report, healthy)?.outcome, 'synced', 'a failing account does not block the others');
      assert.equal(resultFor(report, healthy)?.stored, 1);
      const expectedCodes: Array<[TestAccount, string]> = [[down, 'CONNECTION_REFUSED'], [timeout, 'TIMEOUT'], [tlsMismatch, 'TLS_ERROR']];
      for (const [account, code] of expectedCodes) {
        assert.equal(resultFor(report, account)?.outcome, 'backoff', code);
        const doc = await accountDoc(account);
        assert.equal(doc.imap!.lastErrorCode, code);
        assert.equal(doc.imap!.failures, 1);
        assert.equal(doc.imap!.status, 'authenticated', 'still authenticated: only waiting');
        const delay = doc.imap!.nextAttemptAt!.getTime() - started.getTime();
        assert.ok(delay >= 60_000 && delay < 70_000, `first backoff is 1 min (was ${delay} ms)`);
      }

      // Not due yet: the next pass does not touch it.
      report = await syncer({ options }).runPassNow();
      assert.equal(resultFor(report, down), undefined);

      // A minute later it is tried again, still down: 2 min.
      clockOffset += 61_000;
      started = now();
      report = await syncer({ options }).runPassNow();
      assert.equal(resultFor(report, down)?.outcome, 'backoff');
      let doc = await accountDoc(down);
      assert.equal(doc.imap!.failures, 2);
      const delay = doc.imap!.nextAttemptAt!.getTime() - started.getTime();
      assert.ok(delay >= 120_000 && delay < 130_000, `second backoff is 2 min (was ${delay} ms)`);

      // The server is back; once the backoff elapsed the account syncs and the counter resets.
      await privateDovecot.start();
      clockOffset += 121_000;
      report = await syncer({ options }).runPassNow();
      assert.equal(resultFor(report, down)?.outcome, 'synced');
      doc = await accountDoc(down);
      assert.equal(doc.imap!.failures, 0);
      assert.equal(doc.imap!.nextAttemptAt, null);
      assert.equal(doc.imap!.lastError, '');
      assert.equal(await storedCount(down), 1);
    });
  });
});
