/**
 * Fault injection: the API's store (its own FerretDB) is stopped and
 * started again under a running app. While it is down a client must learn
 * that this passes — 503 STORE_UNAVAILABLE with Retry-After, as documented —
 * not get a 500 it would not retry; once it is back the same request works
 * without restarting anything.
 */
import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { createApiToken, createUser } from '../../gateway/accounts';
import { createLogger } from '../../gateway/core/log';
import { openStore, type Store } from '../../gateway/store';
import { freePort, startEmbeddedStore, type EmbeddedStore } from '../../gateway/store/embedded-ferretdb';
import { buildApp, PASSWORD } from './fixtures';
import { captureLog } from '../support/log';
import { responseChecker } from '../support/openapi';

describe('admin: /api/v1 while its store is down', function () {
  this.timeout(120000);
  let dataDir: string;
  let port: number;
  let ferret: EmbeddedStore;
  let store: Store;
  let token: string;

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-api-store-down-'));
    port = await freePort();
    ferret = await startEmbeddedStore({ dataDir, port });
    store = await openStore({ uri: ferret.uri, dbName: 'api_store_down', log: createLogger({ level: 'silent' }), maxWaitMs: 20000, serverSelectionTimeoutMS: 1500 });
    await createUser(store, { email: 'bob@acme.test', password: PASSWORD, role: 'employee' });
    token = (await createApiToken(store, 'bob@acme.test', { name: 'client' }, {})).token;
  });

  after(async () => {
    await store?.close().catch(() => undefined);
    await ferret?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers 503 STORE_UNAVAILABLE with Retry-After while the store is down, then serves again once it is back', async () => {
    const capture = captureLog('info');
    const { app } = buildApp(store, { log: capture.log });
    const checker = responseChecker();
    const list = () => request(app).get('/api/v1/messages').set('Authorization', `Bearer ${token}`);
    await list().expect(200);

    await ferret.stop();
    const down = await list();
    assert.equal(down.status, 503, down.text);
    assert.equal(down.body.error.code, 'STORE_UNAVAILABLE');
    assert.equal(down.headers['retry-after'], '30');
    assert.deepEqual(checker.problems('get', '/messages', { status: down.status, headers: down.headers, body: down.body }), []);
    // /healthz tells anyone the store is down, and only the console's log where it is.
    for (let probe = 0; probe < 2; probe++) {
      const health = await request(app).get('/healthz').expect(503);
      assert.deepEqual(health.body, { status: 'unavailable', store: 'down', writes: 'down', problem: "store does not answer (the console's log has the error)" });
    }
    const logged = capture.lines.filter((line) => line.event === 'health.unavailable');
    assert.equal(logged.length, 1, 'once per problem, not per probe');
    assert.match(String(logged[0].problem), new RegExp(`^store does not answer: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}`));

    ferret = await startEmbeddedStore({ dataDir, port });
    let back = await list();
    for (let attempt = 0; back.status !== 200 && attempt < 20; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      back = await list();
    }
    assert.equal(back.status, 200, back.text);
  });
});
