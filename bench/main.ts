/**
 * The benchmark run (started by bench/run.ts): SMTP ingest tiers, IMAP sync
 * and the console, each next to the baseline it is judged against, all on
 * loopback servers started here. Prints progress to stderr, one JSON line
 * per figure and finally a table to stdout.
 */
import os from 'node:os';
import { createLogger } from '../gateway/core/log';
import { benchConsole } from './console/console';
import { benchImap } from './imap/sync';
import { startMailWorld, startStoreServer } from './lib/env';
import { Report } from './lib/report';
import { benchSmtp } from './smtp/ingest';

const SECTIONS = ['smtp', 'imap', 'console'] as const;
type Section = (typeof SECTIONS)[number];

interface Args {
  quick: boolean;
  gate: boolean;
  only: Set<Section>;
  numbers: Record<string, number>;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, gate: false, only: new Set(SECTIONS), numbers: {} };
  for (const arg of argv) {
    if (arg === '--quick') args.quick = true;
    else if (arg === '--gate') args.gate = true;
    else if (arg.startsWith('--only=')) {
      const wanted = arg.slice(7).split(',').filter(Boolean);
      const unknown = wanted.filter((w) => !SECTIONS.includes(w as Section));
      if (unknown.length) throw new Error(`unknown section(s) ${unknown.join(', ')}; known: ${SECTIONS.join(', ')}`);
      args.only = new Set(wanted as Section[]);
    } else if (/^--[a-z-]+=\d+$/.test(arg)) {
      const [name, value] = arg.slice(2).split('=');
      args.numbers[name] = Number(value);
    } else {
      throw new Error(`unknown argument ${arg} (known: --quick, --gate, --only=smtp,imap,console, --smtp-small=N, --smtp-large=N, --imap-messages=N, --console-messages=N, --console-seconds=N)`);
    }
  }
  return args;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const progress = (line: string) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
  // Component logs (gateway, syncer, admin) only when they warn.
  const log = createLogger({ level: process.env.BENCH_LOG_LEVEL ?? 'warn', destination: process.stderr, pretty: false });
  const report = new Report();
  const store = await startStoreServer();
  progress(`${args.quick ? 'quick' : 'full'} run; store: ${store.kind}${store.kind === 'ferretdb' ? ' 1.24 (embedded, SQLite)' : ''}; ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  report.note(`store: ${store.kind === 'mongodb' ? 'MongoDB (MONGODB_URI)' : 'FerretDB 1.24 embedded (SQLite): range filters scan, so console figures are reported, not judged'}`);
  const world = await startMailWorld();
  let failed = false;
  const section = async (name: Section, run: () => Promise<void>) => {
    if (!args.only.has(name)) return;
    const t0 = Date.now();
    try {
      await run();
    } catch (err) {
      failed = true;
      report.note(`${name}: FAILED: ${(err as Error).stack ?? err}`);
    }
    progress(`${name} section took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  };
  try {
    await section('smtp', () =>
      benchSmtp({ quick: args.quick, store, world, log, progress, counts: { small: args.numbers['smtp-small'], large: args.numbers['smtp-large'] } }, report),
    );
    await section('imap', () => benchImap({ quick: args.quick, store, log, progress, messages: args.numbers['imap-messages'] }, report));
    await section('console', () =>
      benchConsole({ quick: args.quick, store, log, progress, messages: args.numbers['console-messages'], seconds: args.numbers['console-seconds'] }, report),
    );
  } finally {
    await world.stop();
    await store.stop();
  }

  console.log('');
  console.log(report.table());
  for (const note of report.notes) console.log(`note: ${note}`);
  const missed = report.figures.filter((f) => f.met === false);
  console.log(`\nbench: ${report.figures.length} figures in ${((Date.now() - started) / 1000).toFixed(0)} s; ${missed.length ? `goals missed: ${missed.map((f) => f.name).join(', ')}` : 'every judged goal met'}`);
  if (failed) return 2;
  return args.gate && missed.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(err.stack ?? err);
    process.exit(2);
  },
);
