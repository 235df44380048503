import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mongoose from 'mongoose';
import { installDriverWriteGuard } from '../../gateway/core/db-write-guard';
import type { AppError } from '../../gateway/core/errors';
import { createLogger } from '../../gateway/core/log';
import { ingest } from '../../gateway/mail/ingest';
import { openStore, type Store } from '../../gateway/store';
import { freePort, startEmbeddedStore, type EmbeddedStore } from '../../gateway/store/embedded-ferretdb';

/**
 * The store goes away under a process that keeps its one Store open (the
 * Haraka gateway, the syncer, the console, the outbox worker): writes must
 * fail as STORE_UNAVAILABLE while it is away and succeed again once it is
 * back on the same address — without reopening the Store.
 *
 * The case that destroys the driver's sockets reproduces deterministically
 * what made the gateway answer 451 for minutes after FerretDB came back in
 * about half the robustness runs (gateway/core/db-write-guard.ts): when the
 * store closes its connections, Node processes the peer's FIN, ends and
 * destroys the socket, and emits 'close' only on a later turn of the event
 * loop. A command the driver writes in between (the monitor's
 * hello, or an operation that checked out that pooled connection) gets
 * `write() === false` with neither 'error' nor 'drain', and the driver
 * (mongodb 7.8) waits for 'drain' forever: the monitor never checks again
 * (every server selection then times out) or the operation never settles.
 * Destroying the driver's sockets here puts them in exactly that state; the
 * sockets are found by wrapping net.createConnection (fault injection only).
 */
describe('store: recovery after an outage', function () {
  this.timeout(60_000);
  const log = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const ownerId = new mongoose.Types.ObjectId();
  let dataDir: string;
  let port: number;
  let ferret: EmbeddedStore;
  let store: Store;
  /** The driver's sockets to our FerretDB (fault injection only: see the case that destroys them). */
  const sockets = new Set<net.Socket>();
  const createConnection = net.createConnection;

  const message = (id: string) =>
    Buffer.from([`From: Alice <alice@customer.test>`, 'To: bob@acme.test', `Subject: outage ${id}`, `Message-ID: <${id}@customer.test>`, 'Date: Tue, 03 Nov 2026 10:00:00 +0000', '', `Body of ${id}.`, ''].join('\r\n'));
  const ingestOne = (id: string) => ingest({ store, log }, { raw: message(id), mailboxKey: 'outage', ownerId, source: { kind: 'forward' } });

  /** Resolves with the outcome, or rejects after `ms` (a wait that never ends is the failure under test). */
  const within = <T>(ms: number, work: Promise<T>, what: string) =>
    Promise.race([work, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms).unref())]);

  /** Retry a write until the store takes it (the driver learns the store is back by its heartbeat). */
  const writeWhenBack = async (id: string, deadlineMs: number) => {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      try {
        return await within(Math.max(1, deadline - Date.now()), ingestOne(id), `write ${id}`);
      } catch (err) {
        if (Date.now() >= deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  };

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-store-outage-'));
    port = await freePort();
    ferret = await startEmbeddedStore({ dataDir, port });
    (net as { createConnection: typeof net.createConnection }).createConnection = ((...args: Parameters<typeof net.createConnection>) => {
      const socket = createConnection(...args);
      const options = args[0] as unknown as { port?: number | string };
      if (typeof options === 'object' && Number(options.port) === port) {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
      }
      return socket;
    }) as typeof net.createConnection;
    store = await openStore({ uri: ferret.uri, dbName: 'outage', log, maxWaitMs: 10_000 });
  });

  after(async () => {
    (net as { createConnection: typeof net.createConnection }).createConnection = createConnection;
    await store?.close().catch(() => undefined);
    await ferret?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('guards the driver this build uses (a driver upgrade that changes its internals fails here, not in production)', () => {
    assert.equal(installDriverWriteGuard(), true);
  });

  it('recovers when its connections close under a write (the socket is destroyed before the driver sees "close")', async () => {
    // Connections in use: the monitor's, and pooled ones warmed by concurrent writes.
    await Promise.all(Array.from({ length: 6 }, (_, i) => ingestOne(`warm-${i}`)));
    assert.ok(sockets.size >= 2, `the driver has its monitor and pooled connections open (${sockets.size})`);
    // The monitor checks at most every 500 ms (minHeartbeatFrequencyMS): let it be due, so a waiting selection wakes it at once.
    await new Promise((resolve) => setTimeout(resolve, 600));
    const probe = store.conn.db!.collection('outage_probe');
    for (const socket of sockets) socket.destroy();
    // Written in the same turn of the event loop, before any 'close' is emitted. A failed write is
    // retried at once, as a sender would: it waits in server selection, which wakes the monitor while
    // the monitor's own socket is in the same state.
    const writes = Array.from({ length: 6 }, (_, i) =>
      probe.insertOne({ n: i }).catch(() => probe.insertOne({ n: i, retry: true })).then(
        () => 'acknowledged',
        (err: Error) => `failed: ${err.message}`,
      ),
    );
    const outcomes = await within(20_000, Promise.all(writes), 'writes on closed connections');
    assert.equal(outcomes.length, 6, 'each write is acknowledged or fails, none is left waiting');
    // The same Store (no reopen) writes again: the monitor saw the closed connection and reconnected.
    assert.equal((await writeWhenBack('after-cut', 15_000)).outcome, 'stored');
    assert.ok(await store.models.Message.exists({ mailboxKey: 'outage', messageId: 'after-cut@customer.test' }));
  });

  it('fails writes as STORE_UNAVAILABLE while the store is stopped, and writes again once it is back on the same address', async () => {
    assert.equal((await ingestOne('before')).outcome, 'stored');
    await ferret.stop();
    await assert.rejects(
      within(20_000, ingestOne('during'), 'write during the outage'),
      (err: AppError) => err.code === 'STORE_UNAVAILABLE' && err.smtpCode === 451 && err.enhancedCode === '4.3.0' && /^ING0\d$/.test(err.tag ?? ''),
    );
    ferret = await startEmbeddedStore({ dataDir, port });
    const after = await writeWhenBack('during', 20_000);
    assert.equal(after.outcome, 'stored');
    assert.equal(await store.models.Message.countDocuments({ mailboxKey: 'outage', messageId: { $in: ['before@customer.test', 'during@customer.test'] } }), 2);
  });
});
