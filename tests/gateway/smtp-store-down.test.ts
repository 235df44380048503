import { storedRaw } from '../support/store';
import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../gateway/core/log';
import { openStore, type Store } from '../../gateway/store';
import { freePort, startEmbeddedStore, type EmbeddedStore } from '../../gateway/store/embedded-ferretdb';
import { startDns, type TestDns } from '../support/dns';
import { createEmployeeAccount, GATEWAY_DOMAIN, startTestGateway, type TestGateway } from '../support/gateway';
import { plainMessage } from '../support/mail-auth';
import { sendMail, SmtpSession } from '../support/smtp';

/**
 * Fault injection: the gateway runs against its own FerretDB, which the
 * test stops and starts again while Haraka keeps running. While the store
 * is down the gateway must answer 451 4.3.0 (so senders retry) and write
 * nothing; once it is back, the retried message is stored exactly once —
 * without restarting Haraka.
 */
describe('SMTP gateway: store unavailable', function () {
  this.timeout(120000);
  const log = createLogger({ level: 'silent' });
  let dataDir: string;
  let port: number;
  let ferret: EmbeddedStore;
  let store: Store;
  let testDns: TestDns;
  let gw: TestGateway;
  let bob: Awaited<ReturnType<typeof createEmployeeAccount>>;
  const dbName = 'store_down';

  const startFerret = async () => {
    ferret = await startEmbeddedStore({ dataDir, port });
  };

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-store-down-'));
    port = await freePort();
    await startFerret();
    store = await openStore({ uri: ferret.uri, dbName, log, maxWaitMs: 20000 });
    testDns = await startDns();
    testDns.setTxt('acme.test', 'v=spf1 ip4:127.0.0.1 -all');
    bob = await createEmployeeAccount(store, 'bob@acme.test');
    gw = await startTestGateway({ dbName, mongoUri: ferret.uri, dnsAddress: testDns.address });
  });

  after(async () => {
    await gw?.close();
    await testDns?.stop();
    await store?.close().catch(() => undefined);
    await ferret?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers 451 4.3.0 with a tag while the store is down, then stores the retry once after it is back', async () => {
    // Warm up: the gateway knows Bob's address.
    const warm = await sendMail(gw.port, { from: 'alice@acme.test', to: [bob.forwardingAddress] }, plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'before the outage' }));
    assert.equal(warm.ok, true, warm.response);
    const filesBefore = await store.conn.db!.collection('raw.files').countDocuments();

    await ferret.stop();
    const messageId = `${crypto.randomUUID()}@acme.test`;
    const raw = plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'during the outage', messageId, body: 'z'.repeat(70).concat('\r\n').repeat(3000) });
    const during = await sendMail(gw.port, { from: 'alice@acme.test', to: [bob.forwardingAddress] }, raw);
    assert.equal(during.ok, false);
    assert.equal(during.code, 451, during.response);
    assert.match(during.response, /^451 4\.3\.0 Temporary storage failure, please retry \[(ING01|ING02|GW01)\]/);
    const tag = /\[(\w+)\]/.exec(during.response)![1];
    const line = await gw.waitForLog((l) => l.outcome === 'tempfail' && l.tag === tag);
    assert.equal(line.code, 451);
    assert.equal(line.enhancedCode, '4.3.0');

    // An address the gateway has not looked up yet cannot be checked: 451 at RCPT, not 550.
    const { session } = await SmtpSession.open(gw.port);
    await session.command('EHLO client.test');
    await session.command('MAIL FROM:<alice@acme.test>');
    const rcpt = await session.command(`RCPT TO:<someone.aaaaaaaaaaaaaaaa@${GATEWAY_DOMAIN}>`);
    assert.equal(rcpt.code, 451, rcpt.text);
    assert.match(rcpt.text, /4\.3\.0 .*\[RCPT01\]/);
    await session.quit();

    await startFerret();
    let after = during;
    for (let attempt = 0; attempt < 30 && !after.ok; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      after = await sendMail(gw.port, { from: 'alice@acme.test', to: [bob.forwardingAddress] }, raw);
    }
    assert.equal(after.ok, true, `stored after the store came back (Haraka not restarted): ${after.response}`);
    assert.match(after.response, /^250 Message stored/);

    const copies = await store.models.Message.find({ messageId }).lean();
    assert.equal(copies.length, 1, 'exactly one copy');
    assert.equal(copies[0].sources.length, 1, 'the failed attempt left no source behind');
    const stored = await storedRaw(store, copies[0]._id);
    assert.ok(stored.toString().endsWith(raw.toString()), 'the raw copy is complete');
    // Nothing half-written: one GridFS file per stored message, no leftovers from the failed attempt.
    assert.equal(await store.conn.db!.collection('raw.files').countDocuments(), filesBefore + 1);
  });

  it('starts without its store and answers 451 [GW02] until the store is reachable', async () => {
    const nowhere = `mongodb://127.0.0.1:${await freePort()}/`;
    const lonely = await startTestGateway({ dbName, mongoUri: nowhere, dnsAddress: testDns.address });
    try {
      const { session, greeting } = await SmtpSession.open(lonely.port);
      assert.equal(greeting.code, 220, 'Haraka listens even though the store is not there');
      await session.command('EHLO client.test');
      await session.command('MAIL FROM:<alice@acme.test>');
      const rcpt = await session.command(`RCPT TO:<${bob.forwardingAddress}>`);
      assert.equal(rcpt.code, 451, rcpt.text);
      assert.match(rcpt.text, /451 4\.3\.0 Temporary storage failure, please retry \[GW02\]/);
      await session.quit();
    } finally {
      await lonely.close();
    }
  });
});
