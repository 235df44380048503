import fs from 'node:fs';
import path from 'node:path';

/**
 * Memory of a child Node process after a full garbage collection, for tests
 * that check memory returns to its baseline (tests/robustness/bad-input).
 * Resident memory alone cannot tell a leak from garbage V8 has not collected
 * yet or from free memory the allocator keeps; the V8 heap and the Buffers
 * still referenced after a forced GC can. The child is started with the
 * environment from `heapProbeEnvironment` (tests/support/heap-probe.cjs is
 * preloaded); `memoryAfterGc` signals it (SIGUSR2) and reads its report.
 */

const PROBE = path.join(__dirname, 'heap-probe.cjs');

export interface MemoryAfterGc {
  rssMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  /** Memory of Buffers and other C++ objects bound to JS objects (includes arrayBuffers). */
  externalMb: number;
  arrayBuffersMb: number;
}

export function heapProbeEnvironment(dir: string): NodeJS.ProcessEnv {
  return { NODE_OPTIONS: [process.env.NODE_OPTIONS, '--expose-gc', `--require "${PROBE}"`].filter(Boolean).join(' '), POSTROOM_HEAP_PROBE_DIR: dir };
}

export async function memoryAfterGc(pid: number, dir: string, timeoutMs = 15_000): Promise<MemoryAfterGc> {
  const file = path.join(dir, `${pid}.json`);
  const read = () => (fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as { sequence: number; gc: boolean; memory: NodeJS.MemoryUsage }) : null);
  const before = read()?.sequence ?? 0;
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const report = read();
    if (report && report.sequence > before) {
      if (!report.gc) throw new Error(`process ${pid} has no gc(): start it with heapProbeEnvironment()`);
      const mb = (bytes: number) => bytes / 1024 / 1024;
      const m = report.memory;
      return { rssMb: mb(m.rss), heapUsedMb: mb(m.heapUsed), heapTotalMb: mb(m.heapTotal), externalMb: mb(m.external), arrayBuffersMb: mb(m.arrayBuffers) };
    }
    if (Date.now() > deadline) throw new Error(`process ${pid} did not answer the heap probe within ${timeoutMs} ms (is tests/support/heap-probe.cjs preloaded?)`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Resident size of glibc malloc's main heap (the "[heap]" mapping, proc(5) smaps), MB; null when unreadable. */
export function mallocHeapMb(pid: number): number | null {
  try {
    const smaps = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
    const at = smaps.search(/^[0-9a-f]+-[0-9a-f]+ .*\[heap\]$/m);
    if (at < 0) return 0;
    const rss = /^Rss:\s+(\d+) kB/m.exec(smaps.slice(at));
    return rss ? Number(rss[1]) / 1024 : null;
  } catch {
    return null;
  }
}
