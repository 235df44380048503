/**
 * Shared pieces of the robustness suite (`npm run test:robustness`, files
 * tests/robustness/*.robust.ts — a suffix `npm test`'s tests/**\/*.test.ts
 * does not match, so the suite runs once, as its own CI step).
 *
 * Every scenario reports what it sent, what the senders got acknowledged,
 * what the store holds, and how many messages were lost or duplicated; the
 * root `after` hook below prints the totals once for the whole run.
 */
import type { Store } from '../../gateway/store';

export interface DeliverySummary {
  scenario: string;
  sent: number;
  acknowledged: number;
  stored: number;
  lost: number;
  duplicated: number;
}

const summaries: DeliverySummary[] = [];

export function recordSummary(summary: DeliverySummary): void {
  summaries.push(summary);
  console.log(`      summary [${summary.scenario}]: sent ${summary.sent}, acknowledged ${summary.acknowledged}, stored ${summary.stored}, lost ${summary.lost}, duplicated ${summary.duplicated}`);
}

// A root hook (this module is loaded once per run): the totals after every file ran.
after(() => {
  if (summaries.length === 0) return;
  const total = summaries.reduce(
    (sum, s) => ({ sent: sum.sent + s.sent, acknowledged: sum.acknowledged + s.acknowledged, stored: sum.stored + s.stored, lost: sum.lost + s.lost, duplicated: sum.duplicated + s.duplicated }),
    { sent: 0, acknowledged: 0, stored: 0, lost: 0, duplicated: 0 },
  );
  console.log('\n  Robustness summary');
  for (const s of summaries) {
    console.log(`    ${s.scenario.padEnd(34)} sent ${String(s.sent).padStart(5)}  acknowledged ${String(s.acknowledged).padStart(5)}  stored ${String(s.stored).padStart(5)}  lost ${s.lost}  duplicated ${s.duplicated}`);
  }
  console.log(`    ${'total'.padEnd(34)} sent ${String(total.sent).padStart(5)}  acknowledged ${String(total.acknowledged).padStart(5)}  stored ${String(total.stored).padStart(5)}  lost ${total.lost}  duplicated ${total.duplicated}\n`);
});

/** How many stored documents each Message-ID has in one mailbox (0 when missing). */
export async function storedCounts(store: Store, mailboxKey: string, messageIds: string[]): Promise<Map<string, number>> {
  const counts = new Map(messageIds.map((id) => [id, 0]));
  // Equality on mailboxKey only (FerretDB pushes equality down); the rest is counted here.
  const rows = await store.conn.db!.collection('messages').find({ mailboxKey }, { projection: { messageId: 1 } }).toArray();
  for (const row of rows) {
    const id = String(row.messageId ?? '');
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** Lost = expected but not stored; duplicated = stored more than once (extra copies). */
export function lossAndDuplicates(counts: Map<string, number>, expected: string[]): { stored: number; lost: string[]; duplicated: string[]; extra: number } {
  const lost = expected.filter((id) => (counts.get(id) ?? 0) === 0);
  const duplicated = expected.filter((id) => (counts.get(id) ?? 0) > 1);
  const expectedSet = new Set(expected);
  let extra = 0;
  for (const [id, n] of counts) if (!expectedSet.has(id)) extra += n;
  return { stored: expected.filter((id) => (counts.get(id) ?? 0) > 0).length, lost, duplicated, extra };
}

/** Database name inside a MongoDB URI (before any query string). */
export function uriWithDatabase(uri: string, dbName: string): string {
  const url = new URL(uri);
  url.pathname = `/${dbName}`;
  return url.toString();
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Poll until `check` is true or the time is up (bounded). */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
