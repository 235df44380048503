import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serveHealthIfConfigured, type Lifecycle } from '../../gateway/bin/lifecycle';
import type { Config } from '../../gateway/core/config';
import { createLogger } from '../../gateway/core/log';
import { openStore, type Store } from '../../gateway/store';
import { freePort, startEmbeddedStore, type EmbeddedStore } from '../../gateway/store/embedded-ferretdb';
import { startDns, type TestDns } from '../support/dns';
import { createEmployeeAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { plainMessage } from '../support/mail-auth';
import { sendMail } from '../support/smtp';

/**
 * Fault injection: the store answers pings but refuses every write, as a
 * full disk makes it. The FerretDB process gets a soft file-size limit
 * (RLIMIT_FSIZE, set from outside with prlimit): its SQLite files cannot
 * grow, so each write fails with "disk I/O error", while the process, its
 * port and its reads carry on. Mail must get 451, and the gateway's
 * /healthz must turn 503 and say why; raising the limit again brings both
 * back without a restart.
 */
describe('SMTP gateway: store refuses writes (full disk)', function () {
  this.timeout(120000);
  const log = createLogger({ level: 'silent' });
  const dbName = 'disk_full';
  const stops: Array<() => Promise<unknown>> = [];
  let dataDir: string;
  let ferret: EmbeddedStore;
  let store: Store;
  let testDns: TestDns;
  let gw: TestGateway;
  let bob: Awaited<ReturnType<typeof createEmployeeAccount>>;
  let healthUrl: string;

  /** Limit (or free) the size any file of the running FerretDB may grow to; the hard limit stays as it was. */
  const limitStoreFiles = (bytes: number | 'unlimited') => execFileSync('prlimit', [`--pid=${ferret.process.pid}`, `--fsize=${bytes}:`]);
  const largestStoreFile = () => {
    let largest = 0;
    for (const entry of fs.readdirSync(dataDir, { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) largest = Math.max(largest, fs.statSync(path.join(entry.parentPath, entry.name)).size);
    }
    return largest;
  };
  const mail = (subject: string) =>
    plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject, messageId: `${crypto.randomUUID()}@acme.test`, body: 'y'.repeat(70).concat('\r\n').repeat(3000) });
  const send = (raw: Buffer | string) => sendMail(gw.port, { from: 'alice@acme.test', to: [bob.forwardingAddress] }, raw);
  const health = async () => {
    const res = await fetch(`${healthUrl}/healthz`);
    return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, string>; problem?: string } };
  };

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-disk-full-'));
    ferret = await startEmbeddedStore({ dataDir, port: await freePort() });
    store = await openStore({ uri: ferret.uri, dbName, log, maxWaitMs: 20000 });
    testDns = await startDns();
    testDns.setTxt('acme.test', 'v=spf1 ip4:127.0.0.1 -all');
    bob = await createEmployeeAccount(store, 'bob@acme.test');
    gw = await startTestGateway({ dbName, mongoUri: ferret.uri, dnsAddress: testDns.address });
    const lifecycle: Lifecycle = { add: (_name, stop) => void stops.push(stop), shutdown: async () => undefined };
    const config = { healthPort: await freePort(), bindAddress: '127.0.0.1' } as Config;
    await serveHealthIfConfigured(config, log, lifecycle, { conn: store.conn, what: 'the test', gateway: gw.gateway });
    healthUrl = `http://127.0.0.1:${config.healthPort}`;
  });

  after(async () => {
    for (const stop of stops) await stop();
    await gw?.close();
    await testDns?.stop();
    await store?.close().catch(() => undefined);
    await ferret?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers 451 and turns /healthz 503 with the reason while writes fail, and recovers when space returns', async () => {
    const first = await send(mail('before the disk filled'));
    assert.equal(first.ok, true, first.response);
    assert.deepEqual(await health(), { status: 200, body: { status: 'ok', checks: { store: 'up', writes: 'up', smtp: 'up' } } });

    limitStoreFiles(largestStoreFile() + 512 * 1024);
    let refused: Awaited<ReturnType<typeof send>> | undefined;
    for (let i = 0; i < 40 && !refused; i++) {
      const reply = await send(mail(`filling ${i}`));
      if (!reply.ok) refused = reply;
    }
    assert.ok(refused, 'a write failed once the files could not grow');
    assert.equal(refused.code, 451, refused.response);
    assert.match(refused.response, /^451 4\.3\.0 /);

    // The probe's own small write may still fit in place (a nearly full disk), but the refused message marks the store down either way.
    const down = await health();
    assert.equal(down.status, 503);
    assert.equal(down.body.status, 'unavailable');
    assert.deepEqual(down.body.checks, { store: 'up', writes: 'down', smtp: 'up' });
    assert.match(down.body.problem ?? '', /^(store refuses writes, so mail is answered 451: disk I\/O error|the store did not take the last \d+ messages? of the SMTP gateway \(the latest \d+ s ago\))/);
    const scraped = await (await fetch(`${healthUrl}/metrics`)).text();
    assert.ok(Number(/^postroom_store_write_failure_streak (\d+)/m.exec(scraped)?.[1]) >= 1, 'the streak is exported for alerting');

    limitStoreFiles('unlimited');
    const stored = await send(mail('after space returned'));
    assert.equal(stored.ok, true, `stored without restarting anything: ${stored.response}`);
    assert.deepEqual(await health(), { status: 200, body: { status: 'ok', checks: { store: 'up', writes: 'up', smtp: 'up' } } });
  });
});
