import { ImapFlow } from 'imapflow';
import type { Logger } from '../../gateway/core/log';
import { DEFAULT_SYNC_OPTIONS } from '../../gateway/sync/options';
import { startSyncer } from '../../gateway/sync/schedule';
import { startDovecot } from '../../tests/support/dovecot';
import { captureLog, createImapAccount, testConfig, testSecrets, uniqueEmail } from '../../tests/sync/helpers';
import { openNamedStore, uniqueDbName, type StoreServer } from '../lib/env';
import { makeMessage } from '../lib/messages';
import { cpuSecondsOf } from '../lib/proc';
import { checkGoal, type Report } from '../lib/report';
import { round } from '../lib/stats';
import { itemsFromPipeline, runStoreCeiling } from '../smtp/store-ceiling';

/**
 * IMAP sync: a 5,000-message mailbox (300 with --quick) in the test
 * Dovecot. Postroom's first sync (the real syncer: lease, LIST-STATUS,
 * batched UID FETCH, ingest, CRM association, cursor) against two bare
 * baselines measured in the same run:
 *   - download only: one imapflow FETCH of every message's source;
 *   - store only: the documents Postroom stored, inserted again by a bare
 *     driver loop with the syncer's own parallelism (ingestConcurrency).
 * Postroom does both jobs, so its time is at least the slower one's; the
 * ratio (slower baseline time / Postroom time) says how well it overlaps
 * them. Then a pass over the unchanged mailbox, counting IMAP commands.
 */

export interface ImapBenchOptions {
  quick: boolean;
  store: StoreServer;
  log: Logger;
  messages?: number;
  progress: (line: string) => void;
}

/** Session setup and teardown, not part of the sync work (as in tests/sync/sync.test.ts). */
const SESSION_COMMANDS = /^\S+ (ID|AUTHENTICATE|LOGIN|CAPABILITY|NAMESPACE|ENABLE|LOGOUT|COMPRESS|STARTTLS)\b/;

export async function benchImap(options: ImapBenchOptions, report: Report): Promise<void> {
  const { progress } = options;
  const count = options.messages ?? (options.quick ? 300 : 5000);
  const dovecot = await startDovecot();
  const dbName = uniqueDbName('imap');
  const store = await openNamedStore(options.store.uri, dbName);
  try {
    const config = testConfig({ IMAP_BACKFILL_DAYS: '30', LOG_LEVEL: 'warn' });
    const account = await createImapAccount(store, dovecot, { email: uniqueEmail('bench') });
    const now = Date.now();
    const messages = Array.from({ length: count }, (_, i) =>
      makeMessage({ size: 10 * 1024, seed: i, label: `imap-${now.toString(36)}`, to: account.email, date: new Date(now - (count - i) * 60_000) }),
    );
    const t0 = performance.now();
    await dovecot.appendMany(account.email, 'INBOX', messages.map((m, i) => ({ raw: m.raw, date: new Date(now - (count - i) * 60_000) })));
    progress(`imap: ${count} messages appended to Dovecot in ${round(performance.now() - t0)} ms`);

    const bareFetch = async () => {
      const client = new ImapFlow({ ...dovecot.clientOptions(account.email, account.password), logger: false });
      await client.connect();
      const started = performance.now();
      const sources = new Map<string, Buffer>();
      try {
        await client.mailboxOpen('INBOX', { readOnly: true });
        for await (const message of client.fetch('1:*', { uid: true, source: true, envelope: true }, { uid: true })) {
          sources.set(String(message.envelope?.messageId ?? '').replace(/^<|>$/g, ''), message.source!);
        }
      } finally {
        await client.logout().catch(() => undefined);
      }
      return { ms: performance.now() - started, sources };
    };
    // Warm Dovecot's index and the page cache, so neither side pays the cold start alone.
    await bareFetch();

    const syncLog = options.log.child({ component: 'bench-imap' });
    const syncer = startSyncer({ config, log: syncLog, store, schedule: false, secretBox: testSecrets });
    let syncMs: number;
    let syncCpu: CpuPerMessage;
    try {
      const cpu = cpuMeter(options.store, count);
      const started = performance.now();
      const pass = await syncer.runPassNow();
      syncMs = performance.now() - started;
      syncCpu = cpu.stop();
      const result = pass.accounts[0];
      if (!result || result.outcome !== 'synced') throw new Error(`the first sync did not finish: ${JSON.stringify(result ?? pass.skipped)}`);
      const stored = await store.models.Message.countDocuments({ mailboxKey: account.id });
      if (stored !== count) throw new Error(`the first sync stored ${stored} of ${count} messages`);
      progress(`imap: Postroom first sync ${count} messages in ${round(syncMs)} ms (${round(count / (syncMs / 1000))} msg/s)`);
    } finally {
      await syncer.stop();
    }

    const fetched = await bareFetch();
    if (fetched.sources.size !== count) throw new Error(`bare fetch returned ${fetched.sources.size} of ${count} messages`);
    progress(`imap: bare imapflow fetch ${count} messages in ${round(fetched.ms)} ms`);

    const items = await itemsFromPipeline(store, messages.map((m) => ({ messageId: m.messageId, raw: fetched.sources.get(m.messageId)! })));
    const insertCpu = cpuMeter(options.store, count);
    const inserts = await runStoreCeiling({ uri: options.store.uri, dbName: uniqueDbName('imap_bare'), items, workers: DEFAULT_SYNC_OPTIONS.ingestConcurrency });
    const bareCpu = insertCpu.stop();
    progress(`imap: bare inserts ${count} documents in ${round(inserts.wallMs)} ms (${DEFAULT_SYNC_OPTIONS.ingestConcurrency} workers)`);

    // Unchanged mailbox: a second pass, with imapflow's command log captured.
    const capture = captureLog('debug');
    const second = startSyncer({ config, log: capture.log, store, schedule: false, secretBox: testSecrets });
    let unchanged;
    try {
      const pass = await second.runPassNow();
      unchanged = pass.accounts[0];
    } finally {
      await second.stop();
    }
    const commands = capture.commands(account.id);
    const work = commands.filter((c) => !SESSION_COMMANDS.test(c) && /^\S+ [A-Z]/.test(c));
    const folders = Math.max(1, unchanged?.folders ?? 1);
    const perFolder = work.length / folders;
    progress(`imap: unchanged pass: ${work.length} command(s) for ${folders} folder(s): ${work.map((c) => c.split(' ')[1]).join(', ') || 'none'}; stored ${unchanged?.stored}`);

    const slower = Math.max(fetched.ms, inserts.wallMs);
    const rate = count / (syncMs / 1000);
    const baselineRate = count / (slower / 1000);
    const ratio = rate / baselineRate;
    report.add({
      name: 'imap.sync',
      value: rate,
      unit: 'msg/s',
      baseline: baselineRate,
      ratio,
      goal: '>= 0.8',
      met: checkGoal(ratio, '>= 0.8'),
      detail: `first sync of ${count} messages: ${round(syncMs)} ms; bare fetch ${round(fetched.ms)} ms, bare inserts ${round(inserts.wallMs)} ms (baseline = the slower: ${fetched.ms >= inserts.wallMs ? 'fetch' : 'inserts'})`,
    });
    report.add({ name: 'imap.sync.cpu_syncer', value: syncCpu.selfMs, unit: 'ms/msg', baseline: bareCpu.selfMs, ratio: null, detail: 'CPU time of the syncer per message (baseline: the bare insert loop)' });
    if (syncCpu.storeMs !== null) {
      report.add({ name: 'imap.sync.cpu_store', value: syncCpu.storeMs, unit: 'ms/msg', baseline: bareCpu.storeMs, ratio: null, detail: 'CPU time of the embedded FerretDB per message (baseline: during the bare inserts)' });
    }
    report.add({
      name: 'imap.sync.unchanged_round_trips',
      value: perFolder,
      unit: 'commands/folder',
      baseline: null,
      ratio: null,
      goal: '<= 1',
      met: checkGoal(perFolder, '<= 1') === true && (unchanged?.stored ?? 1) === 0,
      detail: `unchanged mailbox: ${work.length} command(s) after login for ${folders} folder(s) (${work.map((c) => c.split(' ')[1]).join(', ')}); ${unchanged?.stored ?? '?'} stored`,
    });
  } finally {
    await store.conn.dropDatabase().catch(() => undefined);
    await store.close();
    await dovecot.stop();
  }
}

interface CpuPerMessage {
  /** This process (the syncer, or the bare loop). */
  selfMs: number;
  /** The embedded FerretDB; null on an external store. */
  storeMs: number | null;
}

/** CPU milliseconds per message of this process and of the embedded store, from now until stop(). */
function cpuMeter(store: StoreServer, count: number): { stop(): CpuPerMessage } {
  const storePid = store.embedded?.process.pid;
  const self = process.cpuUsage();
  const storeBefore = storePid ? cpuSecondsOf(storePid) : null;
  return {
    stop() {
      const used = process.cpuUsage(self);
      const storeAfter = storePid ? cpuSecondsOf(storePid) : null;
      return {
        selfMs: round((used.user + used.system) / 1000 / count),
        storeMs: storeBefore !== null && storeAfter !== null ? round(((storeAfter - storeBefore) * 1000) / count) : null,
      };
    },
  };
}
