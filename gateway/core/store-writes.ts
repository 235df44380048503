import type { Connection } from 'mongoose';
import { checkStore, type StoreHealth } from './db';
import { metrics, type MetricSnapshot } from './metrics';

/**
 * Whether the store is taking this process's mail. A ping and a one-document
 * probe (core/db.ts checkStore) can pass while every message gets 451: a
 * nearly full disk still rewrites a small record in place but cannot grow a
 * file for a message. So the one ingest pipeline reports each message the
 * store took or refused, and /healthz reads the streak — of this process,
 * and of the gateway's Haraka child from its metrics (its ingest runs there).
 */

/** A refusal this old, with nothing stored since, no longer marks the store down: no mail may have come to try again. */
export const WRITE_FAILURE_FRESH_MS = 120_000;

/** Messages in a row the store did not take, since the last one it stored, and when the last was refused. */
export interface WriteStreak {
  failures: number;
  lastFailureMs: number;
}

/** This process's streak; the gauges carry the same numbers to Prometheus and to a parent process. */
const own: WriteStreak = { failures: 0, lastFailureMs: 0 };

export function recordStoreWrite(stored: boolean, now = Date.now()): void {
  const { storeWriteFailureStreak, storeWriteLastFailure } = metrics();
  if (stored) {
    own.failures = 0;
    storeWriteFailureStreak.set(0);
    return;
  }
  own.failures += 1;
  own.lastFailureMs = now;
  storeWriteFailureStreak.set(own.failures);
  storeWriteLastFailure.set(now / 1000);
}

/** The streak of this process. */
export function ownWriteStreak(): WriteStreak {
  return { ...own };
}

/** The streak of another process, from its metrics (the gateway's Haraka child, over IPC). */
export function writeStreakOf(snapshot: MetricSnapshot): WriteStreak {
  const gauge = (name: string) => (snapshot.find((m) => m.name === name) as { values?: Array<{ value: number }> } | undefined)?.values?.[0]?.value ?? 0;
  return { failures: gauge('postroom_store_write_failure_streak'), lastFailureMs: gauge('postroom_store_write_last_failure_seconds') * 1000 };
}

/** What is wrong with a process's store writes, or undefined when they are fine. */
export function storeWriteProblem({ failures, lastFailureMs }: WriteStreak, what: string, now = Date.now()): string | undefined {
  if (failures === 0 || now - lastFailureMs > WRITE_FAILURE_FRESH_MS) return undefined;
  const ago = Math.max(0, Math.round((now - lastFailureMs) / 1000));
  return `the store did not take the last ${failures} message${failures === 1 ? '' : 's'} of ${what} (the latest ${ago} s ago): mail waits (SMTP answers 451, the syncer retries); the log has the store's error`;
}

/** The store's health as this process sees it: the probe (ping, one small write), then the messages it stored or could not. */
export async function storeHealth(conn: Connection, what: string): Promise<StoreHealth> {
  const probe = await checkStore(conn);
  const refused = storeWriteProblem(own, what);
  if (!refused || probe.problem) return probe;
  return { checks: { ...probe.checks, writes: 'down' }, problem: refused };
}
