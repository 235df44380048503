import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { makeMessage } from '../../bench/lib/messages';
import { fromRoot } from '../../gateway/core/paths';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';
import { openTestStore, testMongoUri } from '../support/store';
import { createImapAccount, TEST_SECRET_KEY, type TestAccount } from '../sync/helpers';
import { lossAndDuplicates, recordSummary, storedCounts, uriWithDatabase, waitFor } from './support';

/**
 * kill -9 of the IMAP syncer process (`node dist/gateway/bin/syncer.js
 * --once`, exactly what `npm run syncer -- --once` runs) twice in the middle
 * of a first sync, then a run to the end. The cursor only moves after a
 * batch is stored, so the killed batch is fetched again; the messages of it
 * that were already stored must be recognised: the mailbox ends up stored
 * exactly once.
 *
 * The killed syncer cannot release its account lease; it would expire after
 * its TTL (2 minutes). The test moves the lease's expiry into the past
 * instead of waiting — what the clock would do.
 */
describe('robustness: kill -9 the IMAP syncer mid-batch', function () {
  this.timeout(300_000);
  // Fifteen batches of 100 (the syncer's batch size), so that each kill lands while the syncer is
  // still busy: it stores a few hundred messages a second, two batches at a time (pipelined).
  const COUNT = 1500;
  let dovecot: DovecotServer;
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let account: TestAccount;
  let dataDir: string;
  const children = new Set<ChildProcess>();

  before(async () => {
    dovecot = await shared('dovecot', () => startDovecot());
    store = await openTestStore('robust_syncer');
    account = await createImapAccount(store, dovecot);
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-robust-syncer-'));
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await store?.drop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  /** The syncer's progress: backfill messages covered by the cursor, from its 'batch stored, cursor saved' lines. */
  function startSyncerProcess(): { child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; cursorDone: () => number } {
    let done = 0;
    const child = spawn(process.execPath, [fromRoot('dist', 'gateway', 'bin', 'syncer.js'), '--once'], {
      env: {
        ...process.env,
        NODE_ENV: 'test',
        MONGODB_URI: uriWithDatabase(testMongoUri(), store.dbName),
        SECRET_KEY: TEST_SECRET_KEY.toString('hex'),
        DATA_DIR: dataDir,
        IMAP_BACKFILL_DAYS: '30',
        HEALTH_PORT: '0',
        // info: the per-batch progress line says when to kill; only warnings and errors are echoed.
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.add(child);
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: { level?: number; msg?: string; phase?: string; done?: number } = {};
      try {
        entry = JSON.parse(line);
      } catch {
        // not a log line
      }
      if (entry.msg === 'batch stored, cursor saved' && entry.phase === 'backfill') done = entry.done ?? done;
      if ((entry.level ?? 40) >= 40 || process.env.ROBUST_LOG_LEVEL) console.log(line);
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => {
        children.delete(child);
        resolve({ code, signal });
      });
    });
    return { child, exited, cursorDone: () => done };
  }

  const countStored = () => store.models.Message.countDocuments({ mailboxKey: account.id });
  const inboxState = async () => (await store.models.FolderState.findOne({ accountId: account.id, folder: 'INBOX' }).lean()) ?? null;

  it('stores the mailbox exactly once after two kills in the middle of a batch', async () => {
    if (!fs.existsSync(fromRoot('dist', 'gateway', 'bin', 'syncer.js'))) throw new Error('dist/ is missing: run npm run build (npm run test:robustness does)');
    const now = Date.now();
    const label = `syncer-${now.toString(36)}`;
    const messages = Array.from({ length: COUNT }, (_, i) => makeMessage({ size: 4 * 1024, seed: i, label, to: account.email, date: new Date(now - (COUNT - i) * 60_000) }));
    await dovecot.appendMany(account.email, 'INBOX', messages.map((m, i) => ({ raw: m.raw, date: new Date(now - (COUNT - i) * 60_000) })));

    const kills: Array<{ stored: number; cursorDone: number }> = [];
    for (const threshold of [300, 900]) {
      const { child, exited, cursorDone } = startSyncerProcess();
      // Right after a cursor save the next batch is already being stored (batches are pipelined): mid-batch.
      await waitFor(async () => cursorDone() >= threshold || child.exitCode !== null, 120_000, `cursor past ${threshold}`, 5);
      assert.equal(child.exitCode, null, 'the syncer was still running when it was killed');
      child.kill('SIGKILL');
      const { signal } = await exited;
      assert.equal(signal, 'SIGKILL');
      const state = await inboxState();
      kills.push({ stored: await countStored(), cursorDone: state?.backfill?.done ?? 0 });
      // The dead holder's lease: let it expire now instead of after its TTL.
      await store.models.SyncLease.updateMany({}, { $set: { expiresAt: new Date(0) } });
    }

    const last = startSyncerProcess();
    const deadline = setTimeout(() => last.child.kill('SIGKILL'), 180_000);
    const { code } = await last.exited;
    clearTimeout(deadline);
    assert.equal(code, 0, 'the last syncer run finished its pass');

    console.log(`      kills: ${kills.map((k) => `${k.stored} stored, cursor covering ${k.cursorDone}`).join('; ')}`);
    assert.ok(kills.some((k) => k.stored > k.cursorDone), 'at least one kill left stored messages beyond the cursor (mid-batch)');

    const ids = messages.map((m) => m.messageId);
    const counts = await storedCounts(store, account.id, ids);
    const { stored, lost, duplicated, extra } = lossAndDuplicates(counts, ids);
    const state = await inboxState();
    recordSummary({ scenario: 'syncer kill -9 (x2) mid-batch', sent: COUNT, acknowledged: state?.backfill?.done ?? 0, stored, lost: lost.length, duplicated: duplicated.length + extra });
    assert.deepEqual(lost, [], 'nothing lost');
    assert.deepEqual(duplicated, [], 'nothing duplicated');
    assert.equal(extra, 0, 'no stray documents');
    assert.equal(state?.backfill?.completed, true, 'the first sync completed');
    assert.equal(state?.backfill?.done, COUNT, 'the cursor covers the whole mailbox');
  });
});
