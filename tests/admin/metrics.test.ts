import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../gateway/store/embedded-ferretdb';
import { seriesValue as value } from '../support/metrics';
import { openTestStore, testMongoUri } from '../support/store';
import { csrfFrom, makeUser, PASSWORD, type TestStore } from './fixtures';

const ROOT = path.resolve(__dirname, '../..');

/**
 * The admin process (`npm run admin`, the compose `admin` service) as
 * Prometheus scrapes it: sign-ins by outcome — what an operator alerts on
 * when someone guesses passwords — and request timings, on HEALTH_PORT,
 * never on the console's own port.
 */
describe('admin metrics (GET /metrics on HEALTH_PORT)', function () {
  this.timeout(60_000);
  let store: TestStore;
  let dataDir: string;
  let admin: ChildProcess & { exited: Promise<number | null> };
  let output = '';
  let consoleUrl = '';
  let healthUrl = '';

  before(async () => {
    store = await openTestStore('admin_metrics');
    await makeUser(store, 'ops@acme.test', 'admin');
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-admin-metrics-'));
    const uri = new URL(testMongoUri());
    uri.pathname = `/${store.dbName}`;
    const [adminPort, healthPort] = [await freePort(), await freePort()];
    consoleUrl = `http://127.0.0.1:${adminPort}`;
    healthUrl = `http://127.0.0.1:${healthPort}`;
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'gateway/bin/admin.ts'], {
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_ENV: 'test',
        MONGODB_URI: uri.toString(),
        SECRET_KEY: crypto.randomBytes(32).toString('hex'),
        DATA_DIR: dataDir,
        GATEWAY_DOMAIN: 'in.postroom.test',
        BUSINESS_DOMAINS: 'acme.test',
        PUBLIC_URL: consoleUrl,
        ADMIN_PORT: String(adminPort),
        HEALTH_PORT: String(healthPort),
        BIND_ADDRESS: '127.0.0.1',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    admin = Object.assign(child, { exited: new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))) });
    const deadline = Date.now() + 40_000;
    for (;;) {
      const up = await fetch(`${healthUrl}/healthz`).then((r) => r.ok, () => false);
      if (up) break;
      if (admin.exitCode !== null || Date.now() > deadline) assert.fail(`the admin did not start:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });
  after(async () => {
    if (admin && admin.exitCode === null) {
      admin.kill('SIGKILL');
      await admin.exited;
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
    await store?.drop();
  });

  /** One sign-in through the real console, as a browser posts it: the status it answers. */
  async function signIn(password: string): Promise<number> {
    const form = await fetch(`${consoleUrl}/login`);
    const cookie = (form.headers.get('set-cookie') ?? '').split(';')[0];
    const body = new URLSearchParams({ _csrf: csrfFrom(await form.text()), email: 'ops@acme.test', password });
    const res = await fetch(`${consoleUrl}/login`, { method: 'POST', body, headers: { cookie }, redirect: 'manual' });
    return res.status;
  }

  it('counts sign-ins by outcome and times requests, without an address in any label', async () => {
    assert.equal(await signIn('not-the-password'), 401);
    assert.equal(await signIn('still-wrong'), 401);
    assert.equal(await signIn(PASSWORD), 303);

    // A request is timed when its response has gone out ('finish'), which can come just after the client read it.
    let text = '';
    for (const deadline = Date.now() + 5000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 100))) {
      const res = await fetch(`${healthUrl}/metrics`);
      assert.equal(res.status, 200);
      text = await res.text();
      if (value(text, 'postroom_http_request_seconds_count{method="POST",status="303"}') !== undefined) break;
    }
    assert.equal(value(text, 'postroom_console_logins_total{outcome="failed"}'), 2, text.slice(0, 3000));
    assert.equal(value(text, 'postroom_console_logins_total{outcome="signed_in"}'), 1);
    assert.equal(value(text, 'postroom_http_request_seconds_count{method="POST",status="401"}'), 2);
    assert.equal(value(text, 'postroom_http_request_seconds_count{method="POST",status="303"}'), 1);
    assert.equal(value(text, 'postroom_http_request_seconds_count{method="GET",status="200"}'), 3, 'the three sign-in forms; health probes are not counted');
    assert.ok((value(text, 'process_resident_memory_bytes') ?? 0) > 0, 'process metrics of the admin');
    assert.doesNotMatch(text, /ops@acme\.test|acme\.test/, 'no address in any label');
  });

  it('does not serve /metrics on the console\'s port, and stops cleanly on SIGTERM', async () => {
    const onConsole = await fetch(`${consoleUrl}/metrics`, { redirect: 'manual' });
    assert.equal(onConsole.status, 404);
    assert.doesNotMatch(await onConsole.text(), /postroom_console_logins_total/);
    admin.kill('SIGTERM');
    assert.equal(await admin.exited, 0, output);
    assert.match(output, /the admin stopped/);
  });
});
