import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createBusiness, FORWARDING_SENDER, openNamedStore, startMailWorld, startPostroomGateway, type Business, type MailWorld, type RunningGateway } from '../../bench/lib/env';
import { makeMessages } from '../../bench/lib/messages';
import { freePort } from '../../bench/lib/proc';
import { dotStuff } from '../../bench/lib/smtp-client';
import { sendUntilStored, type DeliveryRecord } from '../../bench/lib/smtp-load';
import type { Store } from '../../gateway/store';
import { startEmbeddedStore, type EmbeddedStore } from '../../gateway/store/embedded-ferretdb';
import { interleave, lossAndDuplicates, recordSummary, sleep, storedCounts, sweepLeavesReferencedBlobs } from './support';

/**
 * The store goes away while 20 clients send, stays away long enough for
 * the driver's server selection to give up (5 s), and comes back on the same
 * address with its data. While it is away the gateway must answer 4xx —
 * 451 4.3.0 at end of DATA — and never 250; once it is back, ingest resumes
 * in the same Haraka process (no restart) and every message ends up stored
 * exactly once. The store here is a FerretDB of this test's own (even when
 * MONGODB_URI is set), because the test stops it.
 */
describe('robustness: the store stops during load', function () {
  this.timeout(240_000);
  let dataDir: string;
  let port: number;
  let ferret: EmbeddedStore;
  let store: Store;
  let world: MailWorld;
  let business: Business;
  let running: RunningGateway;
  const dbName = 'robust_outage';
  const OUTAGE_MS = 25_000;

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-robust-outage-'));
    port = await freePort();
    ferret = await startEmbeddedStore({ dataDir, port });
    store = await openNamedStore(ferret.uri, dbName);
    world = await startMailWorld();
    business = await createBusiness(store);
    running = await startPostroomGateway({ storeUri: ferret.uri, dbName, dnsAddress: world.dns.address, logLevel: process.env.ROBUST_LOG_LEVEL ?? 'fatal' });
  });

  after(async () => {
    await running?.stop();
    await world?.stop();
    await store?.close().catch(() => undefined);
    await ferret?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers 451 (never 250) while the store is down and resumes without a restart', async () => {
    // Enough that clients are still sending when the store goes (FerretDB serves its open connections ~3 s after SIGTERM).
    const label = `outage-${Date.now().toString(36)}`;
    // Among them 50 whose blobs go to GridFS: one cut off by the outage after its blobs, whose clean-up
    // failed too (the store was gone), leaves orphans for the sweep.
    const messages = interleave(makeMessages(1000, 10 * 1024, label), makeMessages(50, 200 * 1024, label, 1000));
    const stuffed = await Promise.all(messages.map(async (m) => dotStuff(await world.sign(m.raw))));
    const harakaPid = running.gateway.pid;
    let acknowledged = 0;
    const state: { outage?: Promise<{ stoppedAt: number; restartedAt: number }> } = {};

    const records: DeliveryRecord[] = await sendUntilStored({
      port: running.gateway.port,
      messages: stuffed,
      envelope: { from: FORWARDING_SENDER, to: [business.forwardingAddress] },
      clients: 20,
      retryDelayMs: 500,
      maxAttempts: 100,
      deadlineMs: 180_000,
      replyTimeoutMs: 60_000,
      onOutcome: (_record, reply) => {
        if (reply?.code === 250 && ++acknowledged === 40 && !state.outage) {
          state.outage = (async () => {
            await ferret.stop();
            const stoppedAt = Date.now();
            // Several times the driver's server selection timeout (5 s): writes fail (after waiting for
            // it, plus the clean-up of what was half-written), clients resend, and fail again.
            await sleep(OUTAGE_MS);
            ferret = await startEmbeddedStore({ dataDir, port });
            return { stoppedAt, restartedAt: Date.now() };
          })();
        }
      },
    });
    assert.ok(state.outage, 'the store was stopped during the load');
    const { stoppedAt, restartedAt } = await state.outage;

    const all = records.flatMap((r) => r.outcomes);
    // Replies per 5-second window from the stop, by stage and code (shown with the result, and explains a failure).
    const windows = new Map<number, Record<string, number>>();
    for (const o of all) {
      const w = Math.floor((o.at - stoppedAt) / 5000) * 5;
      const key = `${o.stage === 'end-of-data' ? 'data' : o.stage}:${o.code}`;
      const row = windows.get(w) ?? {};
      row[key] = (row[key] ?? 0) + 1;
      windows.set(w, row);
    }
    console.log(`      replies by time from the stop (s; outage ${OUTAGE_MS / 1000} s, restart took ${restartedAt - stoppedAt - OUTAGE_MS} ms):`);
    for (const [w, row] of [...windows].sort((a, b) => a[0] - b[0])) console.log(`        ${String(w).padStart(4)}: ${Object.entries(row).map(([k, n]) => `${k} x${n}`).join(', ')}`);
    // Replies given while the store was down. A 250 among them is only right for a message whose
    // DATA ended before the stop (its document was written then; the reply waited for the CRM step).
    const during = all.filter((o) => o.at > stoppedAt && o.at < restartedAt);
    const sentDuring = during.filter((o) => o.stage !== 'end-of-data' || (o.dataEndedAt ?? 0) > stoppedAt);
    assert.ok(sentDuring.length > 0, 'clients kept sending during the outage');
    assert.deepEqual(sentDuring.filter((o) => o.code === 250).map((o) => `${o.text} (data ended ${(o.dataEndedAt ?? 0) - stoppedAt} ms after the stop)`), [], 'no 250 for mail sent while the store was down');
    assert.deepEqual(sentDuring.filter((o) => !(o.code >= 400 && o.code < 500)).map((o) => `${o.stage}: ${o.code} ${o.text}`), [], 'only temporary failures while the store was down');
    const endOfData = sentDuring.filter((o) => o.stage === 'end-of-data');
    assert.ok(endOfData.some((o) => o.code === 451), `end-of-DATA answers during the outage: ${[...new Set(endOfData.map((o) => o.text))].join(' | ')}`);
    for (const o of endOfData) assert.match(o.text, /^451[ -]4\.3\.0 .*\[[A-Z]+\d+\]/m, 'a 451 4.3.0 with its tag');

    assert.deepEqual(records.filter((r) => !r.acknowledged).map((r) => r.index), [], 'every message acknowledged after the store came back');
    assert.ok(records.some((r) => r.outcomes.some((o) => o.code === 451) && r.acknowledged), 'messages refused during the outage were accepted on a resend');
    assert.equal(running.gateway.pid, harakaPid, 'the same Haraka process served before, during and after (no restart)');

    // A fresh connection: the store connection of the test recovers too.
    const ids = messages.map((m) => m.messageId);
    const counts = await storedCounts(store, business.accountId, ids);
    const { stored, lost, duplicated, extra } = lossAndDuplicates(counts, ids);
    recordSummary({ scenario: `store outage (${OUTAGE_MS / 1000} s), 20 clients`, sent: ids.length, acknowledged: records.filter((r) => r.acknowledged).length, stored, lost: lost.length, duplicated: duplicated.length + extra });
    console.log(`      ${sentDuring.length} replies to mail sent during the outage: ${Object.entries(sentDuring.reduce<Record<string, number>>((m, o) => ({ ...m, [`${o.stage} ${o.code}`]: (m[`${o.stage} ${o.code}`] ?? 0) + 1 }), {})).map(([k, n]) => `${k} x${n}`).join(', ')}`);
    assert.deepEqual(lost, [], 'nothing lost');
    assert.deepEqual(duplicated, [], 'nothing duplicated');
    assert.equal(extra, 0, 'no stray documents');
    const removed = await sweepLeavesReferencedBlobs(store);
    console.log(`      ${removed} orphan blobs left by the outage removed by the sweep`);
  });
});
