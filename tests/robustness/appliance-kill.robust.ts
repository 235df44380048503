import { strict as assert } from 'node:assert';
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createBusiness, FORWARDING_SENDER, GATEWAY_DOMAIN, openNamedStore, startMailWorld, type Business, type MailWorld } from '../../bench/lib/env';
import { makeMessage, makeMessages } from '../../bench/lib/messages';
import { freePort } from '../../bench/lib/proc';
import { dotStuff } from '../../bench/lib/smtp-client';
import { sendUntilStored, type DeliveryRecord } from '../../bench/lib/smtp-load';
import { fromRoot } from '../../gateway/core/paths';
import type { Store } from '../../gateway/store';
import { startAppliance as spawnAppliance } from '../support/appliance';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';
import { createImapAccount, TEST_SECRET_KEY, type TestAccount } from '../sync/helpers';
import { lossAndDuplicates, recordSummary, storedCounts, waitFor } from './support';

/**
 * `npm start` as an on-prem operator runs it (embedded store, every part in
 * one terminal), while mail arrives over SMTP and an IMAP mailbox is synced:
 * kill -9 of each process in turn — the Haraka child, the embedded FerretDB,
 * and the appliance itself (the supervisor, which runs the admin and the
 * syncer), which the operator starts again. Then Ctrl-C (SIGTERM) under load.
 *
 * Every message that got a 250 must be stored exactly once, the mailbox
 * must be stored exactly once, the appliance must recover by itself from
 * the death of a part, and a stop must leave nothing running.
 */
describe('robustness: kill -9 each process of npm start under SMTP and IMAP load', function () {
  this.timeout(180_000);
  let world: MailWorld;
  let dovecot: DovecotServer;
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  let appliance: { child: ChildProcess; output: string[] } | undefined;
  let store: Store | undefined;
  let storeUri = '';

  const markerFile = () => path.join(dataDir, 'store', 'running.json');
  const marker = () => JSON.parse(fs.readFileSync(markerFile(), 'utf8')) as { uri: string; pid: number; ferretdbPid: number };
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  /** The Haraka child of the running appliance. */
  const harakaPid = (): number | undefined => {
    const parent = appliance?.child.pid;
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === parent && /haraka/.test(fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8'))) return Number(entry);
      } catch {
        // gone meanwhile
      }
    }
    return undefined;
  };
  const healthy = async () => {
    try {
      return (await fetch(`http://127.0.0.1:${env.ADMIN_PORT}/healthz`)).status === 200;
    } catch {
      return false;
    }
  };
  const smtpListening = () =>
    new Promise<boolean>((resolve) => {
      const socket = net.connect(Number(env.SMTP_PORT), '127.0.0.1');
      socket.setTimeout(2000, () => socket.destroy());
      socket.once('data', (chunk) => {
        socket.end('QUIT\r\n');
        resolve(chunk.toString().startsWith('220'));
      });
      socket.once('error', () => resolve(false));
      socket.once('close', () => resolve(false));
    });

  async function startAppliance(): Promise<void> {
    appliance = spawnAppliance(env);
    const { output } = appliance;
    await waitFor(async () => (await healthy()) && (await smtpListening()), 60_000, `the appliance to be up:\n${output.join('').slice(-3000)}`, 200);
    // The embedded store's address changes with each start of the appliance: reconnect to it.
    if (marker().uri !== storeUri) {
      await store?.close().catch(() => undefined);
      storeUri = marker().uri;
      store = await openNamedStore(storeUri, 'postroom');
    }
  }

  before(async () => {
    if (!fs.existsSync(fromRoot('dist', 'gateway', 'bin', 'start-all.js'))) throw new Error('dist/ is missing: run npm run build (npm run test:robustness does)');
    world = await startMailWorld();
    dovecot = await shared('dovecot', () => startDovecot());
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-robust-appliance-'));
    env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
      XDG_CACHE_HOME: process.env.XDG_CACHE_HOME,
      POSTROOM_FERRETDB_BIN: process.env.POSTROOM_FERRETDB_BIN,
      // The test mail servers are on loopback, which the default refuses (tests/support/prepare-env.ts).
      MAIL_SERVER_BLOCKED_NETWORKS: process.env.MAIL_SERVER_BLOCKED_NETWORKS,
      DATA_DIR: dataDir,
      SMTP_PORT: String(await freePort()),
      ADMIN_PORT: String(await freePort()),
      GATEWAY_DOMAIN,
      BUSINESS_DOMAINS: 'acme.test',
      DNS_SERVERS: world.dns.address,
      SECRET_KEY: TEST_SECRET_KEY.toString('hex'),
      // A pass every two seconds (a sixth field in front is seconds), so the sync runs through the kills.
      IMAP_SYNC_CRON: '*/2 * * * * *',
      IMAP_BACKFILL_DAYS: '30',
      LOG_LEVEL: process.env.ROBUST_LOG_LEVEL ?? 'info',
    };
    for (const [name, value] of Object.entries(env)) if (value === undefined) delete env[name];
    await startAppliance();
  });

  after(async () => {
    if (appliance && appliance.child.exitCode === null && appliance.child.signalCode === null) {
      appliance.child.kill('SIGINT');
      await new Promise((resolve) => appliance!.child.once('exit', resolve));
    }
    await store?.close().catch(() => undefined);
    await world?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('stores every acknowledged message and the IMAP mailbox exactly once across kills of Haraka, the store and the appliance', async () => {
    const business: Business = await createBusiness(store!);
    const account: TestAccount = await createImapAccount(store!, dovecot);
    const now = Date.now();
    const label = `appliance-${now.toString(36)}`;
    const IMAP_COUNT = 600;
    const mailbox = Array.from({ length: IMAP_COUNT }, (_, i) => makeMessage({ size: 4 * 1024, seed: i, label: `${label}-imap`, to: account.email, date: new Date(now - (IMAP_COUNT - i) * 60_000) }));
    await dovecot.appendMany(account.email, 'INBOX', mailbox.map((m, i) => ({ raw: m.raw, date: new Date(now - (IMAP_COUNT - i) * 60_000) })));

    const messages = makeMessages(400, 8 * 1024, label);
    const stuffed = await Promise.all(messages.map(async (m) => dotStuff(await world.sign(m.raw))));

    // Each kill after a share of the acknowledgements: Haraka, the store, the appliance itself.
    const plan: Array<{ after: number; what: 'haraka' | 'store' | 'appliance' }> = [
      { after: 40, what: 'haraka' },
      { after: 110, what: 'store' },
      { after: 180, what: 'appliance' },
      { after: 260, what: 'store' },
      { after: 330, what: 'haraka' },
    ];
    const done: string[] = [];
    let acknowledged = 0;
    let scheduled = 0;
    let killing: Promise<void> = Promise.resolve();
    const kill = async (what: 'haraka' | 'store' | 'appliance') => {
      if (what === 'haraka') {
        const pid = harakaPid();
        assert.ok(pid, 'a Haraka child is running');
        process.kill(pid, 'SIGKILL');
      } else if (what === 'store') {
        process.kill(marker().ferretdbPid, 'SIGKILL');
      } else {
        const old = appliance!.child;
        const { ferretdbPid } = marker();
        const exited = new Promise((resolve) => old.once('exit', resolve));
        old.kill('SIGKILL');
        await exited;
        // The operator runs npm start again once the old Haraka let go of the port.
        await waitFor(() => !alive(ferretdbPid), 20_000, 'the store to stop with its appliance');
        await waitFor(async () => !(await smtpListening()), 30_000, 'the orphaned Haraka to stop');
        // The dead appliance's syncer could not release its lease; it expires after its TTL (2 minutes): what the clock would do.
        await store!.models.SyncLease.updateMany({}, { $set: { expiresAt: new Date(0) } }).catch(() => undefined);
        await startAppliance();
        await store!.models.SyncLease.updateMany({}, { $set: { expiresAt: new Date(0) } });
      }
      done.push(what);
    };

    const records: DeliveryRecord[] = await sendUntilStored({
      port: () => Number(env.SMTP_PORT),
      messages: stuffed,
      envelope: { from: FORWARDING_SENDER, to: [business.forwardingAddress] },
      clients: 10,
      retryDelayMs: 300,
      maxAttempts: 200,
      deadlineMs: 120_000,
      replyTimeoutMs: 30_000,
      onOutcome: (_record, reply) => {
        if (reply?.code !== 250) return;
        acknowledged++;
        if (scheduled < plan.length && acknowledged >= plan[scheduled].after) {
          const { what } = plan[scheduled++];
          killing = killing.then(() => kill(what));
        }
      },
    });
    await killing;
    assert.deepEqual(done, ['haraka', 'store', 'appliance', 'store', 'haraka'], 'every process was killed under load');

    // The last kills can land after the last message was acknowledged: the appliance notices the store's exit
    // (and restarts it) a moment later, so the line is waited for, not expected at once.
    await waitFor(() => /embedded store \(FerretDB\) restarted/.test(appliance!.output.join('')), 30_000, 'the embedded store restart to be logged')
      .catch(() => undefined);
    assert.match(appliance!.output.join(''), /embedded store \(FerretDB\) restarted/);
    const unacknowledged = records.filter((r) => !r.acknowledged);
    assert.deepEqual(unacknowledged.map((r) => ({ index: r.index, outcomes: r.outcomes.slice(-3).map((o) => `${o.code} ${o.text}`) })), [], 'every message was finally acknowledged');
    // 250 only for what the store has: the IDs acknowledged before a kill are there exactly once.
    const ids = messages.map((m) => m.messageId);
    const counts = await storedCounts(store!, business.accountId, ids);
    const smtp = lossAndDuplicates(counts, ids);
    recordSummary({ scenario: 'npm start: kill -9 each process', sent: ids.length, acknowledged: records.filter((r) => r.acknowledged).length, stored: smtp.stored, lost: smtp.lost.length, duplicated: smtp.duplicated.length + smtp.extra });
    assert.deepEqual(smtp.lost, [], 'no acknowledged message lost');
    assert.deepEqual(smtp.duplicated, [], 'nothing duplicated');
    assert.equal(smtp.extra, 0, 'no stray documents');

    // The sync goes on by itself after the kills and covers the mailbox exactly once.
    const inbox = () => store!.models.FolderState.findOne({ accountId: account.id, folder: 'INBOX' }).lean();
    await waitFor(async () => (await inbox())?.backfill?.completed === true, 90_000, `the first sync to complete:\n${appliance!.output.join('').slice(-3000)}`, 500);
    const imapIds = mailbox.map((m) => m.messageId);
    const imap = lossAndDuplicates(await storedCounts(store!, account.id, imapIds), imapIds);
    recordSummary({ scenario: 'npm start: IMAP through the kills', sent: IMAP_COUNT, acknowledged: (await inbox())?.backfill?.done ?? 0, stored: imap.stored, lost: imap.lost.length, duplicated: imap.duplicated.length + imap.extra });
    assert.deepEqual(imap.lost, [], 'no message of the mailbox lost');
    assert.deepEqual(imap.duplicated, [], 'no message of the mailbox stored twice');
    assert.equal(imap.extra, 0, 'no stray documents in the mailbox');
  });

  it('a SIGTERM under load stops everything gracefully: no 250 without a stored message, nothing left running', async () => {
    const business = await createBusiness(store!);
    const label = `appliance-term-${crypto.randomBytes(3).toString('hex')}`;
    const messages = makeMessages(200, 8 * 1024, label);
    const stuffed = await Promise.all(messages.map(async (m) => dotStuff(await world.sign(m.raw))));
    const child = appliance!.child;
    const { ferretdbPid } = marker();
    const haraka = harakaPid()!;
    let acknowledged = 0;
    let exit: Promise<number | null> | undefined;
    const records = await sendUntilStored({
      port: () => Number(env.SMTP_PORT),
      messages: stuffed,
      envelope: { from: FORWARDING_SENDER, to: [business.forwardingAddress] },
      clients: 10,
      retryDelayMs: 200,
      maxAttempts: 3,
      deadlineMs: 20_000,
      replyTimeoutMs: 30_000,
      onOutcome: (_record, reply) => {
        if (reply?.code === 250 && ++acknowledged === 50) {
          exit = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
          child.kill('SIGTERM');
        }
      },
    });
    assert.ok(exit, 'the appliance was stopped under load');
    assert.equal(await exit, 0, `a clean stop:\n${appliance!.output.join('').slice(-3000)}`);
    await waitFor(() => !alive(haraka) && !alive(ferretdbPid), 30_000, 'Haraka and the store to stop with the appliance');
    assert.ok(!fs.existsSync(markerFile()), 'the running marker is removed');
    assert.equal(await smtpListening(), false, 'nothing listens on SMTP_PORT');
    assert.equal(await healthy(), false, 'nothing listens on ADMIN_PORT');

    // Read what was stored with the appliance's store started again.
    await startAppliance();
    const ids = messages.map((m) => m.messageId);
    const counts = await storedCounts(store!, business.accountId, ids);
    const acked = records.filter((r) => r.acknowledged).map((r) => ids[r.index]);
    assert.ok(acked.length >= 50);
    assert.deepEqual(acked.filter((id) => counts.get(id) !== 1), [], 'every 250 was for a message stored exactly once');
    assert.deepEqual(ids.filter((id) => (counts.get(id) ?? 0) > 1), [], 'nothing stored twice');
  });
});
