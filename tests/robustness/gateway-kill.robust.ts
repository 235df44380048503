import { strict as assert } from 'node:assert';
import { createBusiness, FORWARDING_SENDER, startMailWorld, startPostroomGateway, type Business, type MailWorld, type RunningGateway } from '../../bench/lib/env';
import { makeMessages } from '../../bench/lib/messages';
import { freePort } from '../../bench/lib/proc';
import { dotStuff } from '../../bench/lib/smtp-client';
import { sendUntilStored, type DeliveryRecord } from '../../bench/lib/smtp-load';
import { openTestStore, testMongoUri } from '../support/store';
import { interleave, lossAndDuplicates, recordSummary, storedCounts, sweepLeavesReferencedBlobs, waitFor } from './support';

/**
 * kill -9 of the SMTP gateway (the Haraka process that runs the Postroom
 * plugins) twice while 20 clients send. The clients behave like MTAs: a
 * message without a 250 — refused with 4xx, or cut off by the crash — is
 * sent again. The launcher restarts Haraka on the same port.
 *
 * Every message that got a 250 must be in the store exactly once, and so
 * must every message after the clients' resends: nothing lost, nothing
 * duplicated (a message stored just before the crash, whose 250 never left,
 * comes back as a resend and is recognised as the same message).
 */
describe('robustness: kill -9 the gateway under load', function () {
  this.timeout(240_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let world: MailWorld;
  let business: Business;
  let running: RunningGateway;

  before(async () => {
    store = await openTestStore('robust_kill');
    world = await startMailWorld();
    business = await createBusiness(store);
    // A fixed port: the restarted Haraka listens where the clients reconnect.
    running = await startPostroomGateway({ storeUri: testMongoUri(), dbName: store.dbName, dnsAddress: world.dns.address, port: await freePort(), logLevel: 'error' });
  });

  after(async () => {
    await running?.stop();
    await world?.stop();
    await store?.drop();
  });

  it('stores every acknowledged and every resent message exactly once across two crashes', async () => {
    const label = `kill-${Date.now().toString(36)}`;
    // Mostly small mail, and among it 40 messages whose raw bytes and attachment go to GridFS: a crash
    // between their blobs and their document leaves orphan blobs, which the sweep must remove (and only those).
    const messages = interleave(makeMessages(300, 10 * 1024, label), makeMessages(40, 200 * 1024, label, 300));
    const stuffed = await Promise.all(messages.map(async (m) => dotStuff(await world.sign(m.raw))));
    const pids: number[] = [running.gateway.pid!];
    const killedAt: number[] = [];
    let acknowledged = 0;
    const ackedBeforeKill = new Set<number>();
    const kill = () => {
      const pid = running.gateway.pid!;
      killedAt.push(Date.now());
      process.kill(pid, 'SIGKILL');
    };

    const records: DeliveryRecord[] = await sendUntilStored({
      port: () => running.gateway.port,
      messages: stuffed,
      envelope: { from: FORWARDING_SENDER, to: [business.forwardingAddress] },
      clients: 20,
      retryDelayMs: 200,
      maxAttempts: 40,
      deadlineMs: 180_000,
      replyTimeoutMs: 30_000,
      onOutcome: (record, reply) => {
        if (reply?.code !== 250) return;
        acknowledged++;
        if (killedAt.length === 0) ackedBeforeKill.add(record.index);
        // Crash while 20 transactions are in flight: once after 60 acknowledgements, again after 180.
        if ((acknowledged === 60 && killedAt.length === 0) || (acknowledged === 180 && killedAt.length === 1)) kill();
      },
    });

    assert.equal(killedAt.length, 2, 'the gateway was killed twice');
    await waitFor(() => running.gateway.isUp(), 30_000, 'the gateway to be back up');
    pids.push(running.gateway.pid!);
    assert.notEqual(pids[1], pids[0], 'Haraka was restarted with a new process');

    const interrupted = records.filter((r) => r.outcomes.some((o) => o.stage === 'lost'));
    assert.ok(interrupted.length > 0, 'some transactions were cut off by the crashes (the kill hit a loaded gateway)');
    const unacknowledged = records.filter((r) => !r.acknowledged);
    assert.deepEqual(unacknowledged.map((r) => ({ index: r.index, outcomes: r.outcomes.map((o) => `${o.code} ${o.text}`) })), [], 'every message was finally acknowledged');
    assert.ok(records.every((r) => !r.refused), 'no message was refused');

    const ids = messages.map((m) => m.messageId);
    const counts = await storedCounts(store, business.accountId, ids);
    const { stored, lost, duplicated, extra } = lossAndDuplicates(counts, ids);
    recordSummary({ scenario: 'gateway kill -9 (x2), 20 clients', sent: ids.length, acknowledged: records.filter((r) => r.acknowledged).length, stored, lost: lost.length, duplicated: duplicated.length + extra });
    console.log(`      ${interrupted.length} transactions cut off by the crashes, ${records.reduce((n, r) => n + r.attempts, 0)} attempts in all`);

    const ackedEarly = [...ackedBeforeKill].map((i) => ids[i]);
    assert.ok(ackedEarly.length >= 60, 'messages acknowledged before the first crash');
    assert.deepEqual(ackedEarly.filter((id) => counts.get(id) !== 1), [], 'every message acknowledged before a crash is stored exactly once');
    assert.deepEqual(lost, [], 'nothing lost');
    assert.deepEqual(duplicated, [], 'nothing duplicated');
    assert.equal(extra, 0, 'no stray documents');
    const removed = await sweepLeavesReferencedBlobs(store);
    console.log(`      ${removed} orphan blobs left by the crashes removed by the sweep`);
  });
});
