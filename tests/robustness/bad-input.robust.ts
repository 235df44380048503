import { strict as assert } from 'node:assert';
import { createBusiness, FORWARDING_SENDER, startMailWorld, startPostroomGateway, type Business, type MailWorld, type RunningGateway } from '../../bench/lib/env';
import { makeMessages } from '../../bench/lib/messages';
import { memoryOf, RssSampler } from '../../bench/lib/proc';
import { dotStuff, SmtpConnection, SmtpConnectionLost, type SmtpReply } from '../../bench/lib/smtp-client';
import { runLoad } from '../../bench/lib/smtp-load';
import { badInputCorpus, type BadInputCase } from '../fixtures/bad-input';
import { openTestStore, testMongoUri } from '../support/store';
import { recordSummary, sleep } from './support';

/**
 * The bad-input corpus (tests/fixtures/bad-input: 115 malformed and hostile
 * messages) through the real gateway, one transaction each, in one session
 * as a sending MTA would. Each must be either stored (a 250 and one more
 * document in the store) or refused with a clear permanent code (5xx with an
 * RFC 3463 enhanced status and a reason) — never a temporary failure that
 * would be retried forever, never a dropped connection. The Haraka process
 * must be the same one at the end (no crash, no restart), still serving, and
 * its resident memory back near where it started.
 */
describe('robustness: the bad-input corpus through the gateway', function () {
  this.timeout(300_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let world: MailWorld;
  let business: Business;
  let running: RunningGateway;

  before(async () => {
    store = await openTestStore('robust_bad_input');
    world = await startMailWorld();
    business = await createBusiness(store);
    running = await startPostroomGateway({ storeUri: testMongoUri(), dbName: store.dbName, dnsAddress: world.dns.address, maxMessageSize: '50MB', logLevel: process.env.ROBUST_LOG_LEVEL ?? 'fatal' });
  });

  after(async () => {
    await running?.stop();
    await world?.stop();
    await store?.drop();
  });

  it('stores or clearly refuses every case, without a crash, and memory returns to baseline', async () => {
    const corpus = badInputCorpus();
    assert.ok(corpus.length >= 100, `at least 100 cases (${corpus.length})`);
    const envelope = { from: FORWARDING_SENDER, to: [business.forwardingAddress] };
    const pid = running.gateway.pid!;
    
    // Warm up (JIT, connection pools, caches) before taking the memory baseline.
    const warm = (label: string) => makeMessages(20, 10 * 1024, `${label}-${Date.now().toString(36)}`).map((m) => dotStuff(m.raw));
    const warmup = await runLoad({ port: running.gateway.port, messages: warm('bad-warm'), envelope, clients: 4 });
    assert.equal(warmup.accepted, 20, `warm-up: ${warmup.samples.join(' | ')}`);
    await sleep(2000);
    const baselineMb = memoryOf(pid)!.rssMb;
    const sampler = new RssSampler(() => pid, 50).start();

    // Four sessions at once, as a few sending MTAs would; each 250 names its transaction ("… (QUEUE-ID)"),
    // which the stored copy keeps in sources.queueId, so every acknowledgement is checked against the store.
    const results: Array<{ testCase: BadInputCase; reply: SmtpReply | null; ms: number }> = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        let connection: SmtpConnection | null = null;
        while (next < corpus.length) {
          const testCase = corpus[next++];
          const started = Date.now();
          let reply: SmtpReply | null = null;
          for (let attempt = 1; attempt <= 2 && !reply; attempt++) {
            try {
              if (!connection || connection.closed) connection = await SmtpConnection.open(running.gateway.port, { replyTimeoutMs: 120_000 });
              reply = (await connection.send(envelope, dotStuff(testCase.raw))).reply;
            } catch (err) {
              if (!(err instanceof SmtpConnectionLost)) throw err;
              // Haraka hangs up after some replies (bare LF); a session found closed at MAIL FROM sent
              // nothing of this case yet: one more try on a fresh session. Anything later is a real loss.
              if (err.stage !== 'mail') break;
            }
          }
          results.push({ testCase, reply, ms: Date.now() - started });
          if (process.env.ROBUST_VERBOSE || Date.now() - started > 5000) {
            console.log(`        ${testCase.name} (${testCase.raw.length} bytes): ${reply ? reply.text.split('\n').pop() : 'connection lost'} in ${Date.now() - started} ms`);
          }
          assert.equal(running.gateway.pid, pid, `the gateway process survived ${testCase.name}`);
        }
        await connection?.quit();
      }),
    );
    const peakMb = sampler.stop();

    const lastLine = (r: { reply: SmtpReply | null }) => (r.reply ? r.reply.text.split('\n').pop()! : 'connection lost');
    const stored = results.filter((r) => r.reply?.code === 250);
    const refused = results.filter((r) => r.reply && r.reply.code >= 500);
    // Haraka answers a bare LF inside DATA with 451 and hangs up (its SMTP-smuggling defence,
    // connection.js; not configurable). RFC 5321 §2.3.8 forbids bare LF, so no MTA sends it; the
    // reply names the problem. Accepted here for exactly that reply, and reported to the lead.
    // Haraka sends the 451 as soon as it sees the bare LF and closes; a client still writing the rest
    // may get a reset instead of the reply. So for cases that contain a bare LF, a lost session also counts.
    const hasBareLf = (raw: Buffer) => raw.some((byte, i) => byte === 0x0a && (i === 0 || raw[i - 1] !== 0x0d));
    const bareLf = results.filter((r) => hasBareLf(r.testCase.raw) && (r.reply === null || (r.reply.code === 451 && /Bare line-feed/.test(r.reply.text))));
    const unclear = results.filter((r) => !stored.includes(r) && !refused.includes(r) && !bareLf.includes(r));
    const byReply = results.reduce<Record<string, number>>((m, r) => {
      const key = lastLine(r).replace(/\(.*\)$/, '').trim();
      return { ...m, [key]: (m[key] ?? 0) + 1 };
    }, {});
    console.log(`      ${corpus.length} cases: ${stored.length} stored, ${refused.length} refused, ${bareLf.length} bare-LF 451; replies: ${Object.entries(byReply).map(([k, n]) => `"${k}" x${n}`).join(', ')}`);
    for (const r of [...refused, ...bareLf]) console.log(`        ${r.testCase.name}: ${lastLine(r)}`);
    const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 3);
    console.log(`      slowest: ${slowest.map((r) => `${r.testCase.name} ${r.ms} ms`).join(', ')}`);

    assert.deepEqual(unclear.map((r) => `${r.testCase.name}: ${lastLine(r)}`), [], 'no case answered with another temporary failure or a dropped connection');
    // RFC 2034 §3: a server that advertises ENHANCEDSTATUSCODES puts one in every reply (checked last, so a run reports everything else too).
    const withoutEnhancedCode = refused.filter((r) => !/^5\d\d[ -]5\.\d{1,3}\.\d{1,3} \S/.test(lastLine(r))).map((r) => `${r.testCase.name}: ${lastLine(r)}`);
    assert.ok(stored.length >= corpus.length / 2, 'most malformed mail is kept (stored raw with a parse error) rather than refused');

    // Every 250 is in the store: exactly one document carries its queue id (a duplicate's source is added to the first copy).
    const docs = await store.conn.db!.collection('messages').find({ mailboxKey: business.accountId }, { projection: { sources: 1, rawBlobId: 1, size: 1, parseError: 1 } }).toArray();
    const byQueueId = new Map<string, number>();
    for (const doc of docs) for (const source of (doc.sources ?? []) as Array<{ queueId?: string }>) byQueueId.set(source.queueId ?? '', (byQueueId.get(source.queueId ?? '') ?? 0) + 1);
    const queueIdOf = (r: { reply: SmtpReply | null }) => /\(([0-9A-F-]+\.\d+)\)\s*$/i.exec(lastLine(r))?.[1] ?? '';
    assert.deepEqual(stored.filter((r) => byQueueId.get(queueIdOf(r)) !== 1).map((r) => `${r.testCase.name}: ${lastLine(r)} → ${byQueueId.get(queueIdOf(r)) ?? 0} documents`), [], 'every acknowledged case is stored exactly once');
    assert.ok(docs.every((d) => d.rawBlobId && typeof d.size === 'number'), 'every stored case keeps its raw bytes');
    const parseErrors = docs.filter((d) => d.parseError).length;
    const merged = stored.filter((r) => /already stored/.test(lastLine(r)));
    if (merged.length) console.log(`      recognised as duplicates of an earlier case (same Message-ID and content hash): ${merged.map((r) => r.testCase.name).join(', ')}`);

    // Still serving normal mail, in the same process.
    const after = await runLoad({ port: running.gateway.port, messages: warm('bad-after'), envelope, clients: 4 });
    assert.equal(after.accepted, 20, `normal mail after the corpus: ${after.samples.join(' | ')}`);
    assert.equal(running.gateway.pid, pid, 'no restart');
    assert.ok(running.gateway.isUp());

    // Memory: back near the baseline once the corpus is done (V8 returns freed pages lazily, hence the wait).
    const limitMb = Math.max(baselineMb * 1.5, baselineMb + 96);
    let finalMb = memoryOf(pid)!.rssMb;
    for (let i = 0; i < 60 && finalMb > limitMb; i++) {
      await sleep(500);
      finalMb = memoryOf(pid)!.rssMb;
    }
    console.log(`      gateway RSS: baseline ${baselineMb.toFixed(0)} MB, peak ${peakMb.toFixed(0)} MB during the corpus, ${finalMb.toFixed(0)} MB after (limit ${limitMb.toFixed(0)} MB); ${parseErrors} stored with a parse error`);
    recordSummary({ scenario: 'bad-input corpus', sent: corpus.length, acknowledged: stored.length, stored: stored.filter((r) => byQueueId.get(queueIdOf(r)) === 1).length, lost: stored.filter((r) => !byQueueId.get(queueIdOf(r))).length, duplicated: stored.filter((r) => (byQueueId.get(queueIdOf(r)) ?? 0) > 1).length });
    assert.ok(finalMb <= limitMb, `RSS ${finalMb.toFixed(0)} MB returned near the baseline ${baselineMb.toFixed(0)} MB`);
    assert.deepEqual(withoutEnhancedCode, [], 'every refusal has an RFC 3463 enhanced status code and a reason');
  });
});
