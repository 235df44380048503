import type { Logger } from '../../gateway/core/log';
import { createBusiness, FORWARDING_SENDER, openNamedStore, startPostroomGateway, uniqueDbName, type MailWorld, type StoreServer } from '../lib/env';
import { makeMessages, type BenchMessage } from '../lib/messages';
import { cpuSecondsOf, memoryOf, resetPeak, RssSampler } from '../lib/proc';
import { checkGoal, type Report } from '../lib/report';
import { dotStuff, SmtpConnection } from '../lib/smtp-client';
import { runLoad, type LoadResult } from '../lib/smtp-load';
import { round, summarize } from '../lib/stats';
import { startAcceptingHaraka } from './haraka-accept';
import { startSmtpSink } from './sink';
import { itemsFromPipeline, runStoreCeiling, type CeilingResult } from './store-ceiling';

/**
 * SMTP ingest, four tiers in one run, the same client (20 concurrent
 * connections, no pipelining) and the same messages for each:
 *   (a) Postfix smtp-sink — the machine's SMTP ceiling
 *   (b) Haraka configured like Postroom, accept-only queue — Haraka's ceiling
 *   (c) Postroom's gateway — SPF/DKIM/DMARC/ARC, parse, store, associate
 *   (d) the same documents by a bare driver loop — the store's ceiling
 * for 10 KB and 1 MB messages; then one 50 MB message through (c) with the
 * gateway's resident memory watched.
 */

export interface SmtpBenchOptions {
  quick: boolean;
  store: StoreServer;
  world: MailWorld;
  log: Logger;
  /** Override the message counts (10 KB, 1 MB). */
  counts?: { small?: number; large?: number };
  progress: (line: string) => void;
}

interface SizeResults {
  label: '10k' | '1m';
  size: number;
  count: number;
  sink?: LoadResult;
  haraka?: LoadResult;
  pipeline?: LoadResult;
  pipelinePeakRssMb?: number;
  /** CPU milliseconds per accepted message: the gateway (Haraka + plugins) and the store process (embedded FerretDB). */
  pipelineCpu?: { gatewayMs: number; storeMs: number | null };
  ceiling?: CeilingResult;
  /** CPU per message during (d): FerretDB, and the bare loop itself (this process). */
  ceilingCpu?: { loopMs: number; storeMs: number | null };
}

const WARMUP = 20;
const describe = (r: LoadResult) => {
  const l = summarize(r.latencies);
  return `${round(r.rate)} msg/s, p50 ${round(l.p50)} ms, p99 ${round(l.p99)} ms, ${r.accepted}/${r.sent} accepted${r.samples.length ? `; e.g. ${r.samples[0]}` : ''}`;
};

async function signAll(world: MailWorld, messages: BenchMessage[]): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const message of messages) out.push(dotStuff(await world.sign(message.raw)));
  return out;
}

export async function benchSmtp(options: SmtpBenchOptions, report: Report): Promise<void> {
  const { world, progress } = options;
  const sizes: SizeResults[] = [
    { label: '10k', size: 10 * 1024, count: options.counts?.small ?? (options.quick ? 200 : 1000) },
    { label: '1m', size: 1024 * 1024, count: options.counts?.large ?? (options.quick ? 20 : 100) },
  ];
  const runId = Date.now().toString(36);

  // Messages: generated and DKIM-signed once; every tier gets the same bytes.
  const sets = new Map<string, { messages: BenchMessage[]; stuffed: Buffer[]; warmup: Buffer[] }>();
  for (const size of sizes) {
    const messages = makeMessages(size.count, size.size, `${runId}-${size.label}`);
    const warm = makeMessages(WARMUP, size.size, `${runId}-${size.label}-warm`);
    sets.set(size.label, { messages, stuffed: await signAll(world, messages), warmup: await signAll(world, warm) });
    progress(`smtp: ${size.count} messages of ${size.label} generated and signed`);
  }

  // (a) smtp-sink
  try {
    const sink = await startSmtpSink({ log: progress });
    try {
      for (const size of sizes) {
        const set = sets.get(size.label)!;
        const envelope = { from: FORWARDING_SENDER, to: ['bob@sink.test'] };
        await runLoad({ port: sink.port, messages: set.warmup, envelope });
        size.sink = await runLoad({ port: sink.port, messages: set.stuffed, envelope });
        progress(`smtp (a) smtp-sink ${sink.version} ${size.label}: ${describe(size.sink)}`);
      }
    } finally {
      await sink.stop();
    }
  } catch (err) {
    report.note(`smtp-sink tier skipped: ${(err as Error).message}`);
  }

  // (b) Haraka, accept-only
  const haraka = await startAcceptingHaraka({ maxMessageSize: 64 * 1024 * 1024 });
  try {
    for (const size of sizes) {
      const set = sets.get(size.label)!;
      const envelope = { from: FORWARDING_SENDER, to: ['bob@haraka.test'] };
      await runLoad({ port: haraka.port, messages: set.warmup, envelope });
      size.haraka = await runLoad({ port: haraka.port, messages: set.stuffed, envelope });
      progress(`smtp (b) Haraka accept-only ${size.label}: ${describe(size.haraka)}`);
    }
  } finally {
    await haraka.stop();
  }

  // (c) Postroom's gateway, fresh database
  const dbName = uniqueDbName('smtp');
  const store = await openNamedStore(options.store.uri, dbName);
  let rss50: { baselineMb: number; peakMb: number; sampledMb: number; code: number; ms: number; storedBytes: number } | null = null;
  try {
    const business = await createBusiness(store);
    const running = await startPostroomGateway({ storeUri: options.store.uri, dbName, dnsAddress: world.dns.address, log: options.log });
    try {
      const pid = () => running.gateway.pid;
      const envelope = { from: FORWARDING_SENDER, to: [business.forwardingAddress] };
      for (const size of sizes) {
        const set = sets.get(size.label)!;
        await runLoad({ port: running.gateway.port, messages: set.warmup, envelope });
        const sampler = new RssSampler(pid).start();
        if (pid()) resetPeak(pid()!);
        const storePid = options.store.embedded?.process.pid;
        const cpuBefore = { gateway: cpuSecondsOf(pid()!) ?? 0, store: storePid ? cpuSecondsOf(storePid) : null };
        size.pipeline = await runLoad({ port: running.gateway.port, messages: set.stuffed, envelope });
        const sampled = sampler.stop();
        size.pipelinePeakRssMb = Math.max(sampled, (pid() && memoryOf(pid()!)?.peakMb) || 0);
        const perMessage = (seconds: number) => (seconds * 1000) / Math.max(1, size.pipeline!.accepted);
        size.pipelineCpu = {
          gatewayMs: perMessage((cpuSecondsOf(pid()!) ?? 0) - cpuBefore.gateway),
          storeMs: storePid && cpuBefore.store !== null ? perMessage((cpuSecondsOf(storePid) ?? 0) - cpuBefore.store) : null,
        };
        progress(`smtp (c) Postroom ${size.label}: ${describe(size.pipeline)}, peak RSS ${round(size.pipelinePeakRssMb)} MB, CPU per message: gateway ${round(size.pipelineCpu.gatewayMs)} ms, store ${size.pipelineCpu.storeMs === null ? 'n/a' : `${round(size.pipelineCpu.storeMs)} ms`}`);
      }

      // One 50 MB message streamed through while the gateway's memory is watched.
      const big = makeMessages(1, 50 * 1024 * 1024, `${runId}-50m`)[0];
      const stuffed = dotStuff(await world.sign(big.raw));
      const baseline = memoryOf(pid()!)?.rssMb ?? Number.NaN;
      resetPeak(pid()!);
      const sampler = new RssSampler(pid, 20).start();
      const connection = await SmtpConnection.open(running.gateway.port);
      const started = performance.now();
      const result = await connection.send(envelope, stuffed);
      const ms = performance.now() - started;
      await connection.quit();
      const sampledMb = sampler.stop();
      const stored = await store.models.Message.findOne({ messageId: big.messageId }).lean();
      rss50 = { baselineMb: baseline, peakMb: Math.max(sampledMb, memoryOf(pid()!)?.peakMb ?? 0), sampledMb, code: result.reply.code, ms, storedBytes: stored?.size ?? 0 };
      progress(`smtp (c) 50 MB message: ${result.reply.code} in ${round(ms)} ms, RSS ${round(baseline)} → peak ${round(rss50.peakMb)} MB, stored ${stored?.size ?? 0} bytes`);
    } finally {
      await running.stop();
    }

    // (d) the same documents, bare driver loop
    for (const size of sizes) {
      if (!size.pipeline || size.pipeline.accepted < size.count) {
        report.note(`store ceiling ${size.label}: skipped, the pipeline stored ${size.pipeline?.accepted ?? 0}/${size.count}`);
        continue;
      }
      const set = sets.get(size.label)!;
      const items = await itemsFromPipeline(store, set.messages.map((m, i) => ({ messageId: m.messageId, raw: set.stuffed[i] })));
      const storePid = options.store.embedded?.process.pid;
      const storeBefore = storePid ? cpuSecondsOf(storePid) : null;
      const loopBefore = process.cpuUsage();
      size.ceiling = await runStoreCeiling({ uri: options.store.uri, dbName: uniqueDbName(`ceiling_${size.label}`), items });
      const loop = process.cpuUsage(loopBefore);
      const perMessage = (seconds: number) => (seconds * 1000) / Math.max(1, size.ceiling!.stored);
      size.ceilingCpu = {
        loopMs: perMessage((loop.user + loop.system) / 1e6),
        storeMs: storePid && storeBefore !== null ? perMessage((cpuSecondsOf(storePid) ?? 0) - storeBefore) : null,
      };
      const l = summarize(size.ceiling.latencies);
      progress(
        `smtp (d) store ceiling ${size.label}: ${round(size.ceiling.rate)} msg/s, p50 ${round(l.p50)} ms, p99 ${round(l.p99)} ms, CPU per message: loop ${round(size.ceilingCpu.loopMs)} ms, store ${size.ceilingCpu.storeMs === null ? 'n/a' : `${round(size.ceilingCpu.storeMs)} ms`}`,
      );
    }
  } finally {
    await store.conn.dropDatabase().catch(() => undefined);
    await store.close();
  }

  for (const size of sizes) {
    const suffix = size.label === '10k' ? '' : `.${size.label}`;
    if (size.sink) report.add({ name: `smtp.sink${suffix}`, value: size.sink.rate, unit: 'msg/s', baseline: null, ratio: null, detail: `(a) Postfix smtp-sink, ${size.label}: ${describe(size.sink)}` });
    if (size.haraka) report.add({ name: `smtp.haraka${suffix}`, value: size.haraka.rate, unit: 'msg/s', baseline: size.sink?.rate ?? null, ratio: size.sink ? size.haraka.rate / size.sink.rate : null, detail: `(b) Haraka accept-only, ${size.label}: ${describe(size.haraka)}; baseline smtp-sink` });
    if (size.ceiling) {
      const l = summarize(size.ceiling.latencies);
      report.add({ name: `smtp.store_ceiling${suffix}`, value: size.ceiling.rate, unit: 'msg/s', baseline: null, ratio: null, detail: `(d) bare driver: GridFS raw (when not inline) + insertOne, 20 workers, ${size.label}; p50 ${round(l.p50)} ms, p99 ${round(l.p99)} ms` });
      if (size.ceilingCpu?.storeMs != null) {
        report.add({ name: `smtp.store_ceiling${suffix}.cpu_store`, value: size.ceilingCpu.storeMs, unit: 'ms/msg', baseline: null, ratio: null, detail: `CPU time of the embedded FerretDB per message during (d); the bare loop itself: ${round(size.ceilingCpu.loopMs)} ms/msg` });
      }
    }
    if (size.pipeline) {
      const ratio = size.haraka ? size.pipeline.rate / size.haraka.rate : null;
      const goal = size.label === '10k' ? '>= 0.6' : null;
      const l = summarize(size.pipeline.latencies);
      report.add({
        name: `smtp.ingest.${size.label}`,
        value: size.pipeline.rate,
        unit: 'msg/s',
        baseline: size.haraka?.rate ?? null,
        ratio,
        goal,
        met: checkGoal(ratio, goal),
        detail: `(c)/(b) Postroom vs Haraka ceiling; DATA→250 p50 ${round(l.p50)} ms p99 ${round(l.p99)} ms; peak RSS ${round(size.pipelinePeakRssMb ?? Number.NaN)} MB; ${size.pipeline.accepted}/${size.pipeline.sent} accepted`,
      });
      if (size.pipelineCpu) {
        report.add({ name: `smtp.ingest.${size.label}.cpu_gateway`, value: size.pipelineCpu.gatewayMs, unit: 'ms/msg', baseline: null, ratio: null, detail: 'CPU time of the gateway process (Haraka + Postroom plugins) per message' });
        if (size.pipelineCpu.storeMs !== null) report.add({ name: `smtp.ingest.${size.label}.cpu_store`, value: size.pipelineCpu.storeMs, unit: 'ms/msg', baseline: null, ratio: null, detail: 'CPU time of the embedded FerretDB per message' });
      }
      report.add({ name: `smtp.ingest.${size.label}.p50`, value: l.p50, unit: 'ms', baseline: null, ratio: null, detail: 'end of DATA → 250, Postroom' });
      report.add({ name: `smtp.ingest.${size.label}.p99`, value: l.p99, unit: 'ms', baseline: null, ratio: null, detail: 'end of DATA → 250, Postroom' });
      if (size.ceiling) {
        const storeRatio = size.pipeline.rate / size.ceiling.rate;
        // The goal applies when the store is the bottleneck: its ceiling is below Haraka's.
        const storeBound = size.haraka ? size.ceiling.rate < size.haraka.rate : true;
        const storeGoal = storeBound ? '>= 0.8' : null;
        report.add({
          name: `smtp.ingest.${size.label}.vs_store`,
          value: size.pipeline.rate,
          unit: 'msg/s',
          baseline: size.ceiling.rate,
          ratio: storeRatio,
          goal: storeGoal,
          met: checkGoal(storeRatio, storeGoal),
          detail: `(c)/(d) Postroom vs the store's ceiling${storeBound ? ' (store is the bottleneck: goal applies)' : ' (store faster than Haraka: goal does not apply)'}`,
        });
      }
    }
  }
  const peak = Math.max(...sizes.map((s) => s.pipelinePeakRssMb ?? 0));
  if (peak > 0) report.add({ name: 'smtp.rss.peak', value: peak, unit: 'MB', baseline: null, ratio: null, detail: 'peak RSS of the gateway (Haraka + Postroom plugins) under 20-client load' });
  if (rss50) {
    const goal = '<= 300';
    report.add({
      name: 'smtp.rss.50mb',
      value: rss50.peakMb,
      unit: 'MB',
      baseline: rss50.baselineMb,
      ratio: rss50.peakMb / rss50.baselineMb,
      goal,
      met: rss50.code === 250 ? checkGoal(rss50.peakMb, goal) : false,
      detail: `peak RSS while one 50 MB message streams through (reply ${rss50.code} in ${round(rss50.ms)} ms; stored ${rss50.storedBytes} bytes); baseline = RSS before`,
    });
  }
}
