import fs from 'node:fs';
import net from 'node:net';

/**
 * Process and port helpers for benchmarks and robustness tests: resident
 * memory read from /proc (Linux), its high-water mark, free loopback ports.
 */

export interface MemoryStatus {
  /** Current resident set size, MB. */
  rssMb: number;
  /** Peak resident set size since start or the last resetPeak(), MB (VmHWM). */
  peakMb: number;
}

export function memoryOf(pid: number): MemoryStatus | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
  } catch {
    return null;
  }
}

/** Reset VmHWM to the current RSS (proc(5): writing 5 to clear_refs); false when not permitted. */
export function resetPeak(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * Samples a process's RSS every `intervalMs` and keeps the maximum, as a
 * second opinion next to VmHWM (which a process's own exec/restart resets).
 */
export class RssSampler {
  private timer: NodeJS.Timeout | null = null;
  maxMb = 0;
  samples = 0;

  constructor(
    private readonly pid: () => number | undefined,
    private readonly intervalMs = 50,
  ) {}

  start(): this {
    this.stop();
    this.maxMb = 0;
    this.samples = 0;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
    this.sample();
    return this;
  }

  sample(): void {
    const pid = this.pid();
    const memory = pid ? memoryOf(pid) : null;
    if (!memory) return;
    this.samples++;
    this.maxMb = Math.max(this.maxMb, memory.rssMb);
  }

  stop(): number {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
    return this.maxMb;
  }
}

/** The same free-port helper the embedded store uses. */
export { freePort } from '../../gateway/store/embedded-ferretdb';

/** Resolve once something accepts TCP connections on host:port (bounded). */
export async function waitForPort(port: number, timeoutMs = 10_000, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ port, host });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** CPU time (user + system) a process has used so far, in seconds (proc(5) stat fields 14 and 15, in clock ticks). */
export function cpuSecondsOf(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ", field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}
