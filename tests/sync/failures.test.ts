import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import net from 'node:net';
import mongoose from 'mongoose';
import { SecretBox } from '../../gateway/core/crypto';
import { silentLogger } from '../../gateway/core/log';
import { startSyncer, type PassReport, type Syncer, type SyncerDeps } from '../../gateway/sync/schedule';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';
import { openTestStore } from '../support/store';
import { createImapAccount, makeMessage, testConfig, testSecrets, type TestAccount } from './helpers';

describe('IMAP syncer failure handling', function () {
  this.timeout(120_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let dovecot: DovecotServer;
  const syncers: Syncer[] = [];
  let clockOffset = 0;
  const now = () => new Date(Date.now() + clockOffset);

  before(async () => {
    store = await openTestStore('sync_failures');
    dovecot = await shared('dovecot', () => startDovecot());
  });
  after(async () => {
    await Promise.all(syncers.map((s) => s.stop()));
    await store.drop();
  });

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

  it('stops at the last whole batch when the store fails, without backing off, and resumes without duplicates', async () => {
    const account = await createImapAccount(store, dovecot);
    const messages = Array.from({ length: 35 }, (_, i) => makeMessage({ to: account.email, date: new Date(Date.now() - (35 - i) * 60_000) }));
    await dovecot.appendMany(account.email, 'INBOX', messages.map((m) => ({ raw: m.raw, date: m.date })));

    // Fault injection: the store write that carries the 25th message fails as if the store went away
    // (message documents are written in group commits: gateway/store/group-insert.ts).
    const collection = store.models.Message.collection;
    const insertMany = collection.insertMany.bind(collection);
    let documents = 0;
    collection.insertMany = ((docs: Parameters<typeof insertMany>[0], ...rest: unknown[]) => {
      const before = documents;
      documents += docs.length;
      if (before < 25 && documents >= 25) return Promise.reject(Object.assign(new Error('connection to the store was lost'), { name: 'MongoNetworkError' }));
      return (insertMany as (...args: unknown[]) => ReturnType<typeof insertMany>)(docs, ...rest);
    }) as typeof collection.insertMany;
    let report: PassReport;
    try {
      report = await syncer({ options: { now, batchSize: 10 } }).runPassNow();
    } finally {
      collection.insertMany = insertMany;
    }
    const failed = resultFor(report, account)!;
    assert.equal(failed.outcome, 'store_error');
    const storedAfterFailure = await storedCount(account);
    const cursor = (await store.models.FolderState.findOne({ accountId: new mongoose.Types.ObjectId(account.id), folder: 'INBOX' }).lean())!;
    assert.equal(cursor.backfill!.done, 20, 'the cursor covers the two whole batches only');
    // Of the third batch, what shared no group commit with the failed write may be stored; never all of it.
    assert.ok(storedAfterFailure >= 20 && storedAfterFailure < 30, `the third batch was cut short (${storedAfterFailure} stored)`);
    let doc = await accountDoc(account);
    assert.equal(doc.imap!.failures, 0, 'not the mailbox’s fault: no backoff');
    assert.equal(doc.imap!.nextAttemptAt, null);
    assert.equal(doc.imap!.lastErrorCode, 'STORE_UNAVAILABLE');

    const resumed = resultFor(await syncer({ options: { now, batchSize: 10 } }).runPassNow(), account)!;
    assert.equal(resumed.outcome, 'synced');
    assert.equal(resumed.duplicates, storedAfterFailure - 20);
    assert.equal(await storedCount(account), 35);
    doc = await accountDoc(account);
    assert.equal(doc.imap!.lastError, '');
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
