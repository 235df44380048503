/**
 * Shared pieces of the robustness suite (`npm run test:robustness`, files
 * tests/robustness/*.robust.ts — a suffix `npm test`'s tests/**\/*.test.ts
 * does not match, so the suite runs once, as its own CI step).
 *
 * Every scenario reports what it sent, what the senders got acknowledged,
 * what the store holds, and how many messages were lost or duplicated; the
 * root `after` hook below prints the totals once for the whole run.
 */
import { strict as assert } from 'node:assert';
import { sweepOrphanBlobs, type Store } from '../../gateway/store';

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

/** `large` spread evenly through `small`, so some of them are in flight whenever a fault strikes. */
export function interleave<T>(small: T[], large: T[]): T[] {
  const every = Math.max(1, Math.floor(small.length / Math.max(1, large.length)));
  const out: T[] = [];
  small.forEach((item, i) => {
    out.push(item);
    if ((i + 1) % every === 0 && large.length > 0) out.push(large.shift()!);
  });
  return [...out, ...large];
}

/**
 * After a scenario, once nothing is in flight: the orphan sweep (judging
 * every blob, whatever its age) must leave exactly the GridFS files that
 * stored messages point at, and remove every other one. Returns how many
 * it removed (the ingests the crash or outage cut off after GridFS).
 */
export async function sweepLeavesReferencedBlobs(store: Store): Promise<number> {
  const files = store.conn.db!.collection('raw.files');
  const before = await files.countDocuments();
  const swept = await sweepOrphanBlobs(store, { olderThanMs: 0 });
  const referenced = new Set<string>();
  for await (const message of store.conn.db!.collection('messages').find({}, { projection: { rawBlobId: 1, 'attachments.blobId': 1 } })) {
    if (message.rawBlobId) referenced.add(String(message.rawBlobId));
    for (const attachment of message.attachments ?? []) if (attachment.blobId) referenced.add(String(attachment.blobId));
  }
  const left = (await files.find({}, { projection: { _id: 1 } }).toArray()).map((file) => String(file._id));
  assert.deepEqual(left.sort(), [...referenced].sort(), 'the GridFS files left are exactly those stored messages point at');
  assert.equal(swept.removed, before - referenced.size, 'every other file was removed by the sweep');
  return swept.removed;
}
