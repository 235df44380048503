import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mongoose from 'mongoose';
import { silentLogger } from '../../gateway/core/log';
import { freePort } from '../../gateway/store/embedded-ferretdb';
import { accountLeaseKey } from '../../gateway/sync/lease';
import { startSyncer, type Syncer } from '../../gateway/sync/schedule';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';
import { openTestStore, testMongoUri } from '../support/store';
import { createImapAccount, makeMessage, sleep, TEST_SECRET_KEY, testConfig, testSecrets, type TestAccount } from './helpers';

const ROOT = path.resolve(__dirname, '../..');

describe('IMAP syncer: leases, crashes and shutdown', function () {
  this.timeout(180_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let dovecot: DovecotServer;
  let dataDir: string;
  const children = new Set<ChildProcess>();

  before(async () => {
    store = await openTestStore('sync_concurrency');
    dovecot = await shared('dovecot', () => startDovecot());
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-syncer-'));
  });
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await store.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const accountId = (account: TestAccount) => new mongoose.Types.ObjectId(account.id);
  const storedCount = (account: TestAccount) => store.models.Message.countDocuments({ accountId: accountId(account) });
  const inboxState = (account: TestAccount) => store.models.FolderState.findOne({ accountId: accountId(account), folder: 'INBOX' }).lean();

  async function mailboxOf(size: number): Promise<{ account: TestAccount; messageIds: string[] }> {
    const account = await createImapAccount(store, dovecot);
    const now = Date.now();
    const messages = Array.from({ length: size }, (_, i) => makeMessage({ to: account.email, date: new Date(now - (size - i) * 60_000) }));
    await dovecot.appendMany(account.email, 'INBOX', messages.map((m) => ({ raw: m.raw, date: m.date })));
    return { account, messageIds: messages.map((m) => m.messageId) };
  }

  /** Every message of the mailbox is stored exactly once, with exactly one IMAP source. */
  async function assertStoredExactlyOnce(account: TestAccount, messageIds: string[]): Promise<void> {
    const stored = await store.models.Message.find({ accountId: accountId(account) }, { messageId: 1, sources: 1 }).lean();
    assert.equal(stored.length, messageIds.length);
    assert.deepEqual(new Set(stored.map((m) => m.messageId)), new Set(messageIds));
    for (const message of stored) assert.equal(message.sources.filter((s) => s.kind === 'imap').length, 1, `one IMAP source on ${message.messageId}`);
  }

  /** `npm run syncer` from source: the real process entry point, against this test's database. */
  function spawnSyncer(args: string[] = [], env: Record<string, string> = {}): ChildProcess & { output: () => string; exited: Promise<number | null> } {
    const uri = new URL(testMongoUri());
    uri.pathname = `/${store.dbName}`;
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'gateway/bin/syncer.ts', ...args], {
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_ENV: 'test',
        MONGODB_URI: uri.toString(),
        SECRET_KEY: TEST_SECRET_KEY.toString('hex'),
        DATA_DIR: dataDir,
        IMAP_SYNC_CRON: '* * * * * *', // every second
        IMAP_SYNC_CONCURRENCY: '2',
        LOG_LEVEL: 'info',
        HEALTH_PORT: '0',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }));
    return Object.assign(child, { output: () => output, exited });
  }

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number, child?: { output: () => string }): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${child?.output() ?? ''}`);
      await sleep(20);
    }
  }

  it('two syncers started at once sync each account exactly once, never together', async () => {
    const mailboxes = await Promise.all(Array.from({ length: 4 }, () => mailboxOf(120)));
    const syncers: Syncer[] = [0, 1].map(() =>
      startSyncer({ config: testConfig({ IMAP_SYNC_CONCURRENCY: '2' }), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false }),
    );
    assert.notEqual(syncers[0].holder, syncers[1].holder);
    const reports = await Promise.all(syncers.map((s) => s.runPassNow()));
    await Promise.all(syncers.map((s) => s.stop()));

    for (const { account, messageIds } of mailboxes) {
      const runs = reports.flatMap((report, i) => report.accounts.filter((a) => a.accountId === account.id).map((a) => ({ ...a, syncer: i })));
      assert.equal(runs.length, 1, `${account.id} synced by exactly one syncer (runs: ${JSON.stringify(runs.map((r) => r.syncer))})`);
      assert.equal(runs[0].outcome, 'synced');
      assert.equal(runs[0].stored, 120);
      await assertStoredExactlyOnce(account, messageIds);
    }
    const skipped = reports.flatMap((r) => r.skipped);
    assert.ok(skipped.some((s) => s.reason === 'leased'), `the syncers contended for an account (skips: ${JSON.stringify(skipped)})`);
    assert.ok(reports.every((r) => r.accounts.length > 0), 'both syncers did work');
    assert.equal(await store.models.SyncLease.countDocuments({}), 0, 'leases released');
  });

  it('a syncer killed in the middle of a batch loses and duplicates nothing once restarted', async () => {
    // Ten batches of 100: kills are aimed well before the last one (at most the 7th), so work is always
    // left to resume. On a loaded machine a kill can land between batches more than once in a row.
    const TOTAL = 1000;
    const { account, messageIds } = await mailboxOf(TOTAL);
    // Kill it (SIGKILL: no cleanup at all) while a batch of 100 is half stored: right after its
    // progress line says a batch's cursor was saved (the next batch is being stored by then:
    // batches are pipelined). Should a kill still land between batches, the dead syncer's lease is
    // expired and it is tried again, later in the mailbox.
    let storedAtKill = 0;
    let cursor: Awaited<ReturnType<typeof inboxState>> = null;
    for (let attempt = 1; ; attempt++) {
      const syncer = spawnSyncer();
      const aim = 100 * (attempt + 1);
      const cursorPast = () =>
        syncer
          .output()
          .split('\n')
          .some((line) => line.includes('"batch stored, cursor saved"') && line.includes(account.id) && Number(/"done":(\d+)/.exec(line)?.[1] ?? 0) >= aim);
      await waitFor(`the cursor past ${aim}`, async () => cursorPast(), 90_000, syncer).finally(() => syncer.kill('SIGKILL'));
      await syncer.exited;
      // A write the killed process had already sent may still be applied by
      // the store after the process is gone: count once the number is stable.
      storedAtKill = await storedCount(account);
      for (let settled = 0; settled < 3; ) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        const now = await storedCount(account);
        settled = now === storedAtKill ? settled + 1 : 0;
        storedAtKill = now;
      }
      cursor = await inboxState(account);
      assert.ok(storedAtKill < TOTAL, 'the syncer finished the mailbox before the kill landed');
      assert.equal(cursor!.backfill!.done % 100, 0, 'the cursor only ever covers whole batches');

      // The dead process never released its lease; it expires after the TTL
      // (lease.test.ts shows expiry). Fast-forward that instead of waiting 2 min.
      const lease = await store.models.SyncLease.findOne({ key: accountLeaseKey(account.id) }).lean();
      assert.ok(lease && lease.expiresAt > new Date(), 'the crashed holder still held the lease');
      await store.models.SyncLease.updateOne({ _id: lease._id }, { $set: { expiresAt: new Date(Date.now() - 1000) } });

      if (cursor!.backfill!.done < storedAtKill) break; // killed mid-batch: what this test is about
      assert.ok(attempt < 6, `six kills all landed between batches (${storedAtKill} stored, cursor covers ${cursor!.backfill!.done})`);
    }

    const restarted = spawnSyncer(['--once']);
    assert.equal(await restarted.exited, 0, restarted.output());
    const passLine = restarted.output().split('\n').map((line) => (line.startsWith('{') ? JSON.parse(line) : {})).find((line) => line.msg === 'imap sync pass' && line.accountId === account.id);
    assert.ok(passLine, restarted.output());
    // The half-stored batch was fetched again and folded into what was there.
    assert.equal(passLine.duplicates, storedAtKill - cursor!.backfill!.done);
    assert.equal(passLine.stored, TOTAL - storedAtKill);
    await assertStoredExactlyOnce(account, messageIds);
    const done = await inboxState(account);
    assert.equal(done!.backfill!.completed, true);
    assert.equal(done!.backfill!.done, TOTAL);
    assert.equal(done!.backfill!.total, TOTAL);
    assert.equal(done!.lag, 0);
  });

  it('serves its counts on GET /metrics (HEALTH_PORT) for Prometheus', async () => {
    const { account, messageIds } = await mailboxOf(30);
    const healthPort = await freePort();
    const syncer = spawnSyncer([], { HEALTH_PORT: String(healthPort) });
    try {
      await waitFor('the mailbox synced', async () => syncer.output().split('\n').some((line) => line.includes('"imap sync pass"') && line.includes(account.id)), 90_000, syncer);
      await assertStoredExactlyOnce(account, messageIds);
      const text = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
      const value = (series: string) => Number(text.split('\n').find((line) => line.startsWith(`${series} `))?.slice(series.length + 1));
      assert.ok(value('postroom_imap_account_syncs_total{outcome="synced"}') >= 1, text.slice(0, 2000));
      assert.equal(value('postroom_messages_total{source="imap",outcome="stored"}'), 30);
      assert.ok(value('postroom_imap_account_sync_seconds_count{outcome="synced"}') >= 1);
      assert.doesNotMatch(text, new RegExp(account.email.replace(/[.]/g, '\\.')), 'no mailbox in any label');
    } finally {
      syncer.kill('SIGTERM');
      await syncer.exited;
    }
  });

  it('SIGTERM lets the current batch finish, saves its cursor and releases the lease', async () => {
    const { account, messageIds } = await mailboxOf(600);
    const syncer = spawnSyncer();
    // The syncer's own progress line, written when a batch is stored and its cursor saved: SIGTERM then
    // lands in a later batch, however fast the syncer is (a count of stored messages would lag behind it).
    await waitFor('the first batch stored', async () => syncer.output().includes('batch stored, cursor saved'), 90_000, syncer);
    syncer.kill('SIGTERM');
    assert.equal(await syncer.exited, 0, syncer.output());
    assert.match(syncer.output(), /stopping the syncer/);

    const stored = await storedCount(account);
    const cursor = await inboxState(account);
    assert.ok(stored < 600, 'stopped before the end');
    assert.equal(cursor!.backfill!.done, stored, 'the batch in flight was finished and its cursor saved');
    assert.equal(cursor!.backfill!.completed, false);
    assert.equal(await store.models.SyncLease.countDocuments({ key: accountLeaseKey(account.id) }), 0, 'lease released on the way out');

    const resumed = spawnSyncer(['--once']);
    assert.equal(await resumed.exited, 0, resumed.output());
    await assertStoredExactlyOnce(account, messageIds);
  });
});
