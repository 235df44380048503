import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fromRoot } from '../../gateway/core/paths';
import { freePort } from '../../gateway/store/embedded-ferretdb';
import { exited, startAppliance, type RunningAppliance } from '../support/appliance';
import { ensureTestCertificates } from '../support/certs';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { sendMail } from '../support/smtp';

/**
 * README "Backups and a restore drill" with `npm start`: stop, copy DATA_DIR,
 * wipe it, copy it back, start. Mail, users, tokens and the stored IMAP
 * password (checked by logging in to a real Dovecot with it) must all be
 * there. A copy restored without its secret.key must stop the appliance with
 * a line naming the file, before any account is touched.
 */
const run = promisify(execFile);
const BOB = 'bob@acme.test';

type Running = RunningAppliance;

describe('backup and restore of an npm start DATA_DIR', function () {
  this.timeout(180000);
  let dovecot: DovecotServer;
  let dataDir: string;
  let backupDir: string;
  let env: NodeJS.ProcessEnv;
  let running: Running | undefined;

  const start = (): Running => startAppliance(env);
  const stop = async (r: Running) => {
    process.kill(-r.child.pid!, 'SIGINT');
    assert.equal(await exited(r.child), 0, r.output.join('').slice(-3000));
  };
  const admin = (p: string) => `http://127.0.0.1:${env.ADMIN_PORT}${p}`;
  /** 'running' once it says so, or its exit status. */
  async function outcome(r: Running): Promise<'running' | number | null> {
    const deadline = Date.now() + 120000;
    while (!r.output.join('').includes('Postroom is running')) {
      if (r.child.exitCode !== null) return r.child.exitCode;
      if (Date.now() > deadline) throw new Error(`neither running nor exited:\n${r.output.join('').slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return 'running';
  }
  async function untilRunning(r: Running): Promise<void> {
    assert.equal(await outcome(r), 'running', r.output.join('').slice(-3000));
  }
  const api = async (token: string, method: string, p: string, body?: unknown) => {
    const res = await fetch(admin(`/api/v1${p}`), { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  before(async () => {
    dovecot = await startDovecot({ users: { [BOB]: 'imap-app-password' } });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-restore-'));
    backupDir = `${dataDir}-backup`;
    const certs = ensureTestCertificates();
    env = {
      TLS_CERT_FILE: certs.certFile,
      TLS_KEY_FILE: certs.keyFile,
      DATA_DIR: dataDir,
      SMTP_PORT: String(await freePort()),
      ADMIN_PORT: String(await freePort()),
      ADMIN_EMAIL: 'it@acme.test',
      ADMIN_PASSWORD: 'correct horse battery staple',
      GATEWAY_DOMAIN: 'in.acme.test',
      IMAP_SYNC_CRON: '0 0 1 1 *',
    };
  });
  afterEach(async () => {
    if (running && running.child.exitCode === null) {
      running.child.kill('SIGKILL');
      await exited(running.child);
    }
  });
  after(async () => {
    await dovecot?.stop();
    for (const dir of [dataDir, backupDir]) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('restores mail, users, tokens and IMAP passwords; refuses a copy without its secret.key and leaves the accounts alone', async () => {
    running = start();
    await untilRunning(running);
    const { stdout } = await run(process.execPath, [fromRoot('dist/gateway/bin/cli.js'), 'create-token', '--user', 'it@acme.test'], { env: { ...process.env, ...env } });
    const token = stdout.trim().split('\n').pop()!;
    const created = await api(token, 'POST', '/accounts', { email: BOB });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    const imap = { enabled: true, host: dovecot.host, port: dovecot.tlsPort, tls: 'implicit', username: BOB, password: 'imap-app-password' };
    assert.equal((await api(token, 'PATCH', `/accounts/${id}`, { imap })).status, 200);
    assert.deepEqual((await api(token, 'POST', `/accounts/${id}/imap/authenticate`)).body, { authenticated: true });
    const sent = await sendMail(Number(env.SMTP_PORT), { from: 'alice@example.org', to: [created.body.forwardingAddress as string] },
      'From: alice@example.org\r\nTo: bob@acme.test\r\nSubject: before the backup\r\nMessage-ID: <restore-1@example.org>\r\n\r\nkept\r\n');
    assert.equal(sent.code, 250, JSON.stringify(sent));
    await stop(running);

    // Back up, wipe, restore.
    fs.cpSync(dataDir, backupDir, { recursive: true });
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.cpSync(backupDir, dataDir, { recursive: true });
    running = start();
    await untilRunning(running);
    const messages = await api(token, 'GET', '/messages?status=all');
    assert.ok(JSON.stringify(messages.body).includes('before the backup'), `the mail is back: ${JSON.stringify(messages.body).slice(0, 500)}`);
    assert.deepEqual((await api(token, 'POST', `/accounts/${id}/imap/authenticate`)).body, { authenticated: true }, 'the stored IMAP password still decrypts');
    await stop(running);

    // The same copy without secret.key: a new key would make every stored password unreadable.
    fs.rmSync(path.join(dataDir, 'secret.key'));
    running = start();
    assert.equal(await outcome(running), 78, running.output.join('').slice(-3000));
    const fatal = running.output.join('').split('\n').filter((line) => line.includes('"level":60'));
    assert.equal(fatal.length, 1, running.output.join(''));
    assert.match(JSON.parse(fatal[0]).msg as string, new RegExp(`^cannot start Postroom: the secret key does not decrypt .* ${path.join(dataDir, 'secret.key')} was missing, .*copy the secret.key that was backed up with this data to `));
    assert.equal(fs.existsSync(path.join(dataDir, 'secret.key')), false, 'no wrong key is left behind');

    fs.copyFileSync(path.join(backupDir, 'secret.key'), path.join(dataDir, 'secret.key'));
    running = start();
    await untilRunning(running);
    const account = await api(token, 'GET', `/accounts/${id}`);
    assert.equal((account.body.imap as { status: string }).status, 'authenticated', JSON.stringify(account.body.imap));
    await stop(running);
  });
});
