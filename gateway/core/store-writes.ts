import type { Connection } from 'mongoose';
import { checkStore, type StoreHealth } from './db';
import { metrics, metricsSnapshot, type MetricSnapshot } from './metrics';

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

export function recordStoreWrite(stored: boolean, now = Date.now()): void {
  const { storeWriteFailureStreak, storeWriteLastFailure } = metrics();
  if (stored) {
    storeWriteFailureStreak.set(0);
    return;
  }
  storeWriteFailureStreak.inc();
  storeWriteLastFailure.set(now / 1000);
}

function gaugeValue(snapshot: MetricSnapshot, name: string): number {
  const metric = snapshot.find((m) => m.name === name) as { values?: Array<{ value: number }> } | undefined;
  return metric?.values?.[0]?.value ?? 0;
}

/** What is wrong with the store writes of the process a snapshot comes from, or undefined when they are fine. */
export function storeWriteProblem(snapshot: MetricSnapshot, what: string, now = Date.now()): string | undefined {
  const streak = gaugeValue(snapshot, 'postroom_store_write_failure_streak');
  const lastFailureMs = gaugeValue(snapshot, 'postroom_store_write_last_failure_seconds') * 1000;
  if (streak === 0 || now - lastFailureMs > WRITE_FAILURE_FRESH_MS) return undefined;
  const ago = Math.max(0, Math.round((now - lastFailureMs) / 1000));
  return `the store did not take the last ${streak} message${streak === 1 ? '' : 's'} of ${what} (the latest ${ago} s ago): mail waits (SMTP answers 451, the syncer retries); the log has the store's error`;
}

/** The store's health as this process sees it: the probe (ping, one small write), then the messages it stored or could not. */
export async function storeHealth(conn: Connection, what: string): Promise<StoreHealth> {
  const probe = await checkStore(conn);
  const refused = storeWriteProblem(await metricsSnapshot(), what);
  if (!refused || probe.problem) return probe;
  return { checks: { ...probe.checks, writes: 'down' }, problem: refused };
}
