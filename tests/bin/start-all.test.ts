import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ensureFerretdbBinary, freePort } from '../../gateway/store/embedded-ferretdb';
import { exited, startAppliance, type RunningAppliance } from '../support/appliance';
import { SmtpSession } from '../support/smtp';

/**
 * `npm start` as a user runs it: the built start-all with nothing but ports
 * and a data directory set. It must bring up the embedded store, the console
 * (/healthz), the SMTP gateway and the syncer; Ctrl-C must stop everything;
 * data must survive a restart.
 */
type Running = RunningAppliance;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, output: string[]): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} not reached in ${timeoutMs} ms; output:\n${output.join('').slice(-4000)}`);
}

async function health(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function smtpGreeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(3000, () => socket.destroy(new Error('timeout')));
    socket.once('data', (chunk) => {
      socket.end('QUIT\r\n');
      resolve(chunk.toString());
    });
    socket.once('error', reject);
  });
}

/** The reply to RCPT for an address at the gateway domain nobody has: 550 needs the store, 451 means it is unreachable. */
async function rcptReply(port: number): Promise<string> {
  const { session, greeting } = await SmtpSession.open(port);
  try {
    if (greeting.code !== 220) throw new Error(`no SMTP greeting: ${greeting.text}`); // not listening yet: waitFor asks again
    for (const command of ['EHLO test.example', 'MAIL FROM:<a@example.com>']) await session.command(command);
    return (await session.command('RCPT TO:<nobody@postroom.localhost>')).text;
  } finally {
    await session.quit();
  }
}

/** The TCP ports a process listens on, from /proc: its socket inodes matched against the kernel's LISTEN entries. */
function tcpListenersOf(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    const link = (() => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '';
      }
    })();
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (inode) inodes.add(inode);
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is HEX_IP:HEX_PORT; st 0A is LISTEN; the inode is the tenth field.
      if (fields.length > 9 && fields[3] === '0A' && inodes.has(fields[9])) ports.push(parseInt(fields[1].split(':')[1], 16));
    }
  }
  return ports;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start (start-all)', function () {
  this.timeout(120000);
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  let running: Running | undefined;

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-start-'));
    env = {
      DATA_DIR: dataDir,
      SMTP_PORT: String(await freePort()),
      ADMIN_PORT: String(await freePort()),
      ADMIN_EMAIL: 'it@acme.test',
      ADMIN_PASSWORD: 'correct horse battery staple',
      LOG_LEVEL: 'info',
    };
  });

  afterEach(async () => {
    if (running && running.child.exitCode === null) {
      running.child.kill('SIGKILL');
      await exited(running.child);
    }
  });

  after(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('brings up store, console, gateway and syncer with nothing else set, and stops cleanly on Ctrl-C (SIGINT to its process group)', async () => {
    running = startAppliance(env);
    const ok = await waitFor('healthy console', async () => {
      const h = await health(Number(env.ADMIN_PORT));
      return h.status === 200 ? h : undefined;
    }, 90000, running.output);
    assert.equal(ok.body.status, 'ok');
    assert.match(await waitFor('SMTP greeting', () => smtpGreeting(Number(env.SMTP_PORT)), 30000, running.output), /^220 /);
    await waitFor('running line', async () => (running!.output.join('').includes('Postroom is running') ? true : undefined), 30000, running.output);
    assert.ok(fs.existsSync(path.join(dataDir, 'secret.key')), 'a development secret key was generated');

    const marker = JSON.parse(fs.readFileSync(path.join(dataDir, 'store', 'running.json'), 'utf8')) as { ferretdbPid: number; uri: string };
    // The embedded store has no authentication: no port any local user could reach, only a socket in a directory of Postroom's own.
    const socket = path.join(dataDir, 'store', 'ferretdb.sock');
    assert.equal(marker.uri, `mongodb://${encodeURIComponent(socket)}/`);
    assert.ok(fs.statSync(socket).isSocket());
    assert.equal(fs.statSync(path.join(dataDir, 'store')).mode & 0o777, 0o700, 'only the user Postroom runs as may enter the store directory');
    assert.deepEqual(tcpListenersOf(marker.ferretdbPid), [], 'the embedded store listens on no TCP port');
    process.kill(-running.child.pid!, 'SIGINT'); // Ctrl-C: the whole process group
    assert.equal(await exited(running.child), 0, running.output.join('').slice(-3000));
    assert.throws(() => process.kill(marker.ferretdbPid, 0), 'the embedded store was stopped with it');
    assert.equal(fs.existsSync(socket), false, 'its socket is removed with it');
    await assert.rejects(smtpGreeting(Number(env.SMTP_PORT)), 'the gateway was stopped with it');
  });

  it('exits 78 with one line naming the problem when the setup cannot work, leaving nothing running', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(Number(env.ADMIN_PORT), '127.0.0.1', resolve));
    try {
      const busy = startAppliance(env);
      assert.equal(await exited(busy.child), 78, busy.output.join('').slice(-3000));
      const text = busy.output.join('');
      assert.match(text, new RegExp(`cannot start Postroom: cannot listen on 127\\.0\\.0\\.1:${env.ADMIN_PORT}: the port is already in use`));
      assert.doesNotMatch(text, /"level":50|"stack"/, 'no error lines or stack traces, only the one fatal line');
      const marker = path.join(dataDir, 'store', 'running.json');
      assert.ok(!fs.existsSync(marker), 'its store was stopped');
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
    // The SMTP port taken: Haraka would say so with stack traces and exit 1.
    const takenSmtp = net.createServer();
    await new Promise<void>((resolve) => takenSmtp.listen(Number(env.SMTP_PORT), '127.0.0.1', resolve));
    try {
      const busy = startAppliance(env);
      assert.equal(await exited(busy.child), 78, busy.output.join('').slice(-3000));
      const text = busy.output.join('');
      assert.match(text, new RegExp(`cannot start Postroom: cannot listen on 127\\.0\\.0\\.1:${env.SMTP_PORT}: the port is already in use`));
      assert.doesNotMatch(text, /"level":50|"stack"|EADDRINUSE/, 'no error lines or stack traces, only the one fatal line');
      assert.ok(!fs.existsSync(path.join(dataDir, 'store', 'running.json')), 'its store was stopped');
    } finally {
      await new Promise<void>((resolve) => takenSmtp.close(() => resolve()));
    }
    const badUri = startAppliance({ ...env, MONGODB_URI: 'mongodb://admin:Secret-Pw@127.0.0.1:1/x?bogusOpt=1' });
    assert.equal(await exited(badUri.child), 78, 'a connection string the driver refuses is not retried forever');
    assert.match(badUri.output.join(''), /cannot start Postroom: MONGODB_URI=\\"mongodb:\/\/\[redacted\]@127\.0\.0\.1:1\/x\?bogusOpt=1\\": option bogusopt is not supported/);
    assert.doesNotMatch(badUri.output.join(''), /Secret-Pw/);
    // Refusals of the driver's parser that are not MongoParseError: a port that is not a number, an option without a value.
    for (const [uri, reason] of [['mongodb://127.0.0.1:27O17/postroom', /Unable to parse 127\.0\.0\.1:27O17/], ['mongodb://127.0.0.1/postroom?authSource=', /URI option \\"authSource\\" cannot be specified with no value/]] as const) {
      const refused = startAppliance({ ...env, MONGODB_URI: uri });
      assert.equal(await exited(refused.child), 78, `${uri} is not retried forever`);
      assert.match(refused.output.join(''), new RegExp(`cannot start Postroom: MONGODB_URI=.*${reason.source}`));
      assert.doesNotMatch(refused.output.join(''), /store not reachable, retrying/);
    }
  });

  it('refuses a second start on the same DATA_DIR, naming the running one', async () => {
    running = startAppliance(env);
    await waitFor('healthy console', async () => ((await health(Number(env.ADMIN_PORT))).status === 200 ? true : undefined), 60000, running.output);
    const second = startAppliance({ ...env, SMTP_PORT: String(await freePort()), ADMIN_PORT: String(await freePort()) });
    assert.equal(await exited(second.child), 1);
    assert.match(second.output.join(''), new RegExp(`Postroom is already running with DATA_DIR ${dataDir} \\(pid ${running.child.pid}\\)\\. Stop it first`));
    assert.equal((await health(Number(env.ADMIN_PORT))).status, 200, 'the running one is untouched');
    assert.match(await waitFor('RCPT reply', () => rcptReply(Number(env.SMTP_PORT)), 30000, running.output), /^550 5\.1\.1 /);
  });

  it('after a SIGKILL its store stops too, and the next start uses a store of its own that works', async () => {
    running = startAppliance(env);
    await waitFor('healthy console', async () => ((await health(Number(env.ADMIN_PORT))).status === 200 ? true : undefined), 60000, running.output);
    const marker = JSON.parse(fs.readFileSync(path.join(dataDir, 'store', 'running.json'), 'utf8')) as { ferretdbPid: number };
    running.child.kill('SIGKILL');
    await exited(running.child);
    await waitFor('the store to stop with its parent', async () => (alive(marker.ferretdbPid) ? undefined : true), 10000, running.output);
    await waitFor('Haraka to stop with its parent', async () => smtpGreeting(Number(env.SMTP_PORT)).then(() => undefined, () => true), 20000, running.output);

    running = startAppliance(env);
    await waitFor('healthy console', async () => ((await health(Number(env.ADMIN_PORT))).status === 200 ? true : undefined), 60000, running.output);
    // The gateway reaches the store: an unknown address is refused for good, not deferred (451).
    assert.match(await waitFor('RCPT reply', () => rcptReply(Number(env.SMTP_PORT)), 30000, running.output), /^550 5\.1\.1 /);
    assert.doesNotMatch(running.output.join(''), /using the embedded store of the running appliance/);
  });

  it('stops a store an older version left running after its appliance died, then starts its own', async () => {
    // What a SIGKILL left before FerretDB was tied to its parent: a FerretDB with nobody holding it, and its marker.
    const storeDir = path.join(dataDir, 'store');
    const port = await freePort();
    const orphan = spawn(ensureFerretdbBinary(), [`127.0.0.1:${port}`, storeDir], { stdio: 'ignore', detached: true });
    const gone = spawn(process.execPath, ['-e', '0']);
    await exited(gone);
    await waitFor('orphan store listening', () => new Promise<true>((resolve, reject) => net.connect(port, '127.0.0.1', function (this: net.Socket) { this.destroy(); resolve(true); }).once('error', reject)), 20000, []);
    fs.writeFileSync(path.join(storeDir, 'running.json'), JSON.stringify({ uri: `mongodb://127.0.0.1:${port}/`, pid: gone.pid, ferretdbPid: orphan.pid }));
    try {
      running = startAppliance(env);
      await waitFor('healthy console', async () => ((await health(Number(env.ADMIN_PORT))).status === 200 ? true : undefined), 60000, running.output);
      assert.match(running.output.join(''), /stopping an embedded store left running by an appliance that exited/);
      assert.ok(!alive(orphan.pid!), 'the orphan was stopped');
      assert.match(await waitFor('RCPT reply', () => rcptReply(Number(env.SMTP_PORT)), 30000, running.output), /^550 5\.1\.1 /);
    } finally {
      if (alive(orphan.pid!)) process.kill(orphan.pid!, 'SIGKILL');
    }
  });

  it('keeps its data across a restart and reports 503 when the store goes away', async () => {
    running = startAppliance(env);
    await waitFor('healthy console', async () => ((await health(Number(env.ADMIN_PORT))).status === 200 ? true : undefined), 60000, running.output);
    // The admin created at the first start is still there: signing in works.
    const login = await fetch(`http://127.0.0.1:${env.ADMIN_PORT}/login`);
    assert.equal(login.status, 200);
    const marker = JSON.parse(fs.readFileSync(path.join(dataDir, 'store', 'running.json'), 'utf8')) as { ferretdbPid: number };
    assert.doesNotMatch(running.output.join(''), /created the first admin/i, 'no second bootstrap of the first admin');

    // A store that does not answer (stopped, not dead: it is not restarted) makes the console unhealthy.
    process.kill(marker.ferretdbPid, 'SIGSTOP');
    try {
      const down = await waitFor('unhealthy console', async () => {
        const h = await health(Number(env.ADMIN_PORT));
        return h.status === 503 ? h : undefined;
      }, 30000, running.output);
      assert.equal(down.body.status, 'unavailable');
    } finally {
      process.kill(marker.ferretdbPid, 'SIGCONT');
    }
    await waitFor('healthy console again', async () => ((await health(Number(env.ADMIN_PORT))).status === 200 ? true : undefined), 30000, running.output);
  });

  it('restarts its embedded store when it is killed, and serves again without a restart of the appliance', async () => {
    running = startAppliance(env);
    await waitFor('healthy console', async () => ((await health(Number(env.ADMIN_PORT))).status === 200 ? true : undefined), 60000, running.output);
    const markerFile = path.join(dataDir, 'store', 'running.json');
    const before = JSON.parse(fs.readFileSync(markerFile, 'utf8')) as { ferretdbPid: number; uri: string };
    assert.match(await waitFor('RCPT reply', () => rcptReply(Number(env.SMTP_PORT)), 30000, running.output), /^550 5\.1\.1 /);

    // Twice, the second time right after the first restart: the backoff must not give up.
    for (let kill = 1; kill <= 2; kill++) {
      const { ferretdbPid } = JSON.parse(fs.readFileSync(markerFile, 'utf8')) as { ferretdbPid: number };
      process.kill(ferretdbPid, 'SIGKILL');
      await waitFor(`store restarted after kill ${kill}`, async () => {
        const now = JSON.parse(fs.readFileSync(markerFile, 'utf8')) as { ferretdbPid: number };
        return now.ferretdbPid !== ferretdbPid && alive(now.ferretdbPid) ? true : undefined;
      }, 30000, running.output);
    }
    const text = running.output.join('');
    assert.match(text, /embedded store \(FerretDB\) exited unexpectedly \(code null, signal SIGKILL\); restarting it on \/\S+\/store\/ferretdb\.sock — /);
    assert.match(text, /embedded store \(FerretDB\) restarted/);

    const after = JSON.parse(fs.readFileSync(markerFile, 'utf8')) as { ferretdbPid: number; uri: string };
    assert.equal(after.uri, before.uri, 'the same address, so every process reconnects by itself');
    await waitFor('healthy console after the restarts', async () => ((await health(Number(env.ADMIN_PORT))).status === 200 ? true : undefined), 30000, running.output);
    // Haraka's plugins reach the store again: an unknown address is refused for good, not deferred (451).
    assert.match(await waitFor('RCPT 550', async () => {
      const reply = await rcptReply(Number(env.SMTP_PORT));
      return reply.startsWith('550') ? reply : undefined;
    }, 30000, running.output), /^550 5\.1\.1 /);
    // The admin created at the first start is still there: the data survived.
    assert.equal((await fetch(`http://127.0.0.1:${env.ADMIN_PORT}/login`)).status, 200);

    running.child.kill('SIGINT');
    assert.equal(await exited(running.child), 0);
    assert.ok(!alive(after.ferretdbPid), 'the restarted store stops with the appliance');
  });
});
