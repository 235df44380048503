import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { compiledPluginPath, harakaLogLevel, PLUGIN_NAMES, SOURCE_DIR, writeInstance } from '../../gateway/haraka/instance';
import { harakaEnvironment, MALLOC_MMAP_THRESHOLD_TUNABLE, relayLine } from '../../gateway/haraka/launcher';
import { fromRoot } from '../../gateway/core/paths';
import { useGatewayWorld } from '../support/gateway';
import { plainMessage } from '../support/mail-auth';
import { captureLog } from '../support/log';
import { SmtpSession, sendMail } from '../support/smtp';

const capture = () => captureLog('trace');

describe('gateway launcher and Haraka instance', function () {
  this.timeout(60000);

  describe('instance files', () => {
    let dir: string;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-instance-'));
      writeInstance({
        dir,
        bindAddress: '0.0.0.0',
        port: 25,
        hostname: 'in.postroom.test',
        tls: { certFile: '/certs/fullchain.pem', keyFile: '/certs/privkey.pem' },
        runtime: { gatewayDomain: 'in.postroom.test', businessDomains: ['acme.com'], dnsServers: ['1.1.1.1'], dnsCacheSeconds: 60, maxMessageSize: 1234567, maxRecipients: 50, maxConnections: 200, maxConnectionsPerClient: 50, logLevel: 'info', recipientCacheMs: 3000, errorDelayMs: 1000, lineTimeoutMs: 300000, dataTimeoutMs: 1800000 },
      });
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('runs Haraka as one process on the configured address with the size limit', () => {
      const smtp = fs.readFileSync(path.join(dir, 'config', 'smtp.ini'), 'utf8');
      assert.match(smtp, /^listen=0\.0\.0\.0:25$/m);
      assert.match(smtp, /^nodes=0$/m);
      assert.match(smtp, /^inactivity_timeout=300$/m);
      const connection = fs.readFileSync(path.join(dir, 'config', 'connection.ini'), 'utf8');
      assert.match(connection, /\[max\]\nbytes=1234567\n/);
      assert.match(connection, /^spool_after=1048576$/m);
      // Haraka's own Received limit (a bare 550) out of reach: postroom-limits answers 554 5.4.6.
      assert.match(connection, /^max_received=1000000$/m);
      assert.equal(fs.readFileSync(path.join(dir, 'config', 'me'), 'utf8').trim(), 'in.postroom.test');
      assert.match(fs.readFileSync(path.join(dir, 'config', 'tls.ini'), 'utf8'), /^key=\/certs\/privkey\.pem\ncert=\/certs\/fullchain\.pem$/m);
      assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'config', 'postroom.json'), 'utf8')).maxMessageSize, 1234567);
      assert.doesNotMatch(fs.readdirSync(path.join(dir, 'config')).join(' '), /mongodb/i, 'no store URI on disk');
    });

    it('lists the plugins in pipeline order', () => {
      const plugins = fs.readFileSync(path.join(dir, 'config', 'plugins'), 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#'));
      assert.deepEqual(plugins, ['postroom-limits', 'tls', 'postroom-rcpt', 'postroom-store']);
      assert.equal(fs.readFileSync(path.join(dir, 'config', 'postroom-store.timeout'), 'utf8').trim(), '540');
    });

    it('points the package-plugin shims at the compiled plugins', () => {
      for (const name of PLUGIN_NAMES) {
        // The shim in the repository is relative: plugins/<name> → project root is four levels up.
        const source = JSON.parse(fs.readFileSync(path.join(SOURCE_DIR, 'plugins', name, 'package.json'), 'utf8')) as { main: string };
        assert.equal(path.resolve(SOURCE_DIR, 'plugins', name, source.main), fromRoot('dist', 'plugins', `${name}.js`));
        assert.equal(compiledPluginPath(name), fromRoot('dist', 'plugins', `${name}.js`));
        const runtime = JSON.parse(fs.readFileSync(path.join(dir, 'plugins', name, 'package.json'), 'utf8')) as { main: string };
        assert.equal(runtime.main, fromRoot('dist', 'plugins', `${name}.js`));
        assert.ok(fs.existsSync(runtime.main), 'built');
      }
    });

    it('maps log levels so Haraka stays quiet at info', () => {
      assert.equal(harakaLogLevel('info'), 'warn');
      assert.equal(harakaLogLevel('debug'), 'info');
      assert.equal(harakaLogLevel('trace'), 'protocol');
      assert.equal(harakaLogLevel('error'), 'error');
    });
  });

  describe('relaying the child\'s output', () => {
    it('keeps pino fields and levels, and files Haraka lines under component haraka', () => {
      const { lines, log } = capture();
      const harakaLog = log.child({ component: 'haraka' });
      relayLine(log, harakaLog, JSON.stringify({ level: 40, time: 1, pid: 9, component: 'smtp', queueId: 'Q1', msg: 'smtp transaction' }), 'stdout');
      relayLine(log, harakaLog, JSON.stringify({ level: 'ERROR', message: 'Failed to setup listeners', origin: 'server' }), 'stdout');
      relayLine(log, harakaLog, 'plain text from a dependency', 'stderr');
      relayLine(log, harakaLog, '   ', 'stdout');
      assert.equal(lines.length, 3);
      assert.deepEqual([lines[0].level, lines[0].component, lines[0].queueId, lines[0].msg], [40, 'smtp', 'Q1', 'smtp transaction']);
      assert.deepEqual([lines[1].level, lines[1].component, lines[1].msg, lines[1].origin], [50, 'haraka', 'Failed to setup listeners', 'server']);
      assert.deepEqual([lines[2].level, lines[2].component, lines[2].msg], [40, 'haraka', 'plain text from a dependency']);
    });

    it("keeps Haraka's start-up chatter (\"npm install iconv\", its version, its log format) and mailauth's stray debug line out of the operator's info log", () => {
      const { lines, log } = capture();
      const harakaLog = log.child({ component: 'haraka' });
      for (const line of ['Using iconv-lite only. To support rare encodings: npm install iconv', 'loglevel: WARN', 'log format: JSON', 'Starting up Haraka version 3.3.4', 'loaded TLD files: 1=1437 2=7876 3=3795', 'loaded Public Suffixes: 10210 ', 'TOTAL 120 EXPECTING 500']) {
        relayLine(log, harakaLog, line, 'stdout');
      }
      relayLine(log, harakaLog, 'something else Haraka says', 'stdout');
      assert.deepEqual(lines.map((line) => [line.level, line.msg]), [[20, 'Using iconv-lite only. To support rare encodings: npm install iconv'], [20, 'loglevel: WARN'], [20, 'log format: JSON'], [20, 'Starting up Haraka version 3.3.4'], [20, 'loaded TLD files: 1=1437 2=7876 3=3795'], [20, 'loaded Public Suffixes: 10210'], [20, 'TOTAL 120 EXPECTING 500'], [30, 'something else Haraka says']]);
    });
  });

  describe('malloc tuning for the Haraka child', () => {
    it('pins glibc\'s mmap threshold, keeping other tunables and an operator\'s own threshold', () => {
      assert.equal(MALLOC_MMAP_THRESHOLD_TUNABLE, 'glibc.malloc.mmap_threshold=131072');
      assert.equal(harakaEnvironment({ PATH: '/bin' }).GLIBC_TUNABLES, 'glibc.malloc.mmap_threshold=131072');
      assert.equal(harakaEnvironment({ PATH: '/bin' }).PATH, '/bin');
      assert.equal(harakaEnvironment({ GLIBC_TUNABLES: 'glibc.malloc.check=3' }).GLIBC_TUNABLES, 'glibc.malloc.check=3:glibc.malloc.mmap_threshold=131072');
      assert.equal(harakaEnvironment({ GLIBC_TUNABLES: 'glibc.malloc.check=3:glibc.malloc.mmap_threshold=65536' }).GLIBC_TUNABLES, 'glibc.malloc.check=3:glibc.malloc.mmap_threshold=65536');
    });
  });

  describe('supervision', () => {
    const world = useGatewayWorld('gw_launcher');

    const send = (subject: string) => sendMail(world.gw.port, { from: 'alice@acme.test', to: [world.bob.forwardingAddress] }, plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject }));

    it('starts Haraka with the malloc tuning in its environment', () => {
      const environ = fs.readFileSync(`/proc/${world.gw.gateway.pid}/environ`, 'latin1').split('\0');
      const tunables = environ.find((v) => v.startsWith('GLIBC_TUNABLES='));
      assert.ok(tunables?.slice('GLIBC_TUNABLES='.length).split(':').includes(MALLOC_MMAP_THRESHOLD_TUNABLE), tunables ?? 'no GLIBC_TUNABLES');
    });

    it('starts TLS with RFC 7919 DH parameters instead of generating its own (no openssl dhparam busy for a minute)', () => {
      const children = fs
        .readdirSync('/proc')
        .filter((entry) => /^\d+$/.test(entry))
        .map((pid) => {
          try {
            const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
            const close = stat.lastIndexOf(')');
            return { command: stat.slice(stat.indexOf('(') + 1, close), ppid: Number(stat.slice(close + 2).split(' ')[1]) };
          } catch {
            return null; // exited meanwhile
          }
        })
        .filter((p) => p?.ppid === world.gw.gateway.pid);
      assert.deepEqual(children.filter((c) => c?.command === 'openssl'), []);
      const described = execFileSync('openssl', ['dhparam', '-in', path.join(world.gw.dataDir, 'haraka', 'config', 'dhparams.pem'), '-noout', '-text'], { encoding: 'utf8' });
      assert.match(described, /GROUP: ffdhe2048/);
    });

    it('restarts Haraka when it dies and serves again', async () => {
      assert.equal((await send('before the crash')).ok, true);
      const pid = world.gw.gateway.pid!;
      process.kill(pid, 'SIGKILL');
      await world.gw.waitForLog((l) => l.msg === 'Haraka exited unexpectedly; restarting');
      await world.gw.waitForLog((l) => l.msg === 'Haraka restarted', 30000);
      assert.notEqual(world.gw.gateway.pid, pid);
      assert.equal(world.gw.gateway.isUp(), true);
      const after = await send('after the restart');
      assert.equal(after.ok, true, after.response);
    });

    it('stops Haraka on close and frees the port', async () => {
      const { port } = world.gw;
      const pid = world.gw.gateway.pid!;
      await world.gw.gateway.close();
      assert.equal(world.gw.gateway.isUp(), false);
      assert.throws(() => process.kill(pid, 0), /ESRCH/, 'Haraka exited');
      await assert.rejects(
        new Promise<void>((resolve, reject) => {
          const socket = net.connect(port, '127.0.0.1', () => {
            socket.destroy();
            resolve();
          });
          socket.on('error', reject);
        }),
        /ECONNREFUSED/,
      );
      const stopped = world.gw.logs().filter((l) => l.msg === 'gateway plugins stopped');
      assert.equal(stopped.length, 1, 'the plugins shut down gracefully (store closed)');
    });
  });

  describe('graceful stop', () => {
    const world = useGatewayWorld('gw_stop');

    it('a stop while a message is arriving lets it finish: 250, and stored', async () => {
      const { session } = await SmtpSession.open(world.gw.port);
      for (const command of ['EHLO sender.acme.test', 'MAIL FROM:<alice@acme.test>', `RCPT TO:<${world.bob.forwardingAddress}>`]) {
        assert.equal((await session.command(command)).code, 250, command);
      }
      assert.equal((await session.command('DATA')).code, 354);
      session.write('From: alice@acme.test\r\nTo: bob@acme.test\r\nSubject: arriving during a stop\r\nMessage-ID: <arriving-during-stop@acme.test>\r\n\r\n');
      session.write('half of the body\r\n'.repeat(2000));
      const stopping = world.gw.gateway.close();
      await new Promise((resolve) => setTimeout(resolve, 500)); // the stop (SIGINT to Haraka) is under way while the rest arrives
      const reply = session.next();
      session.write(`${'the other half\r\n'.repeat(2000)}.\r\n`);
      assert.equal((await reply).code, 250, 'answered, not cut off');
      await session.quit();
      await stopping;
      const stored = await world.store.models.Message.find({ messageId: 'arriving-during-stop@acme.test' }).lean();
      assert.equal(stored.length, 1);
      assert.equal(world.gw.logs().find((l) => l.msg === 'gateway plugins stopped')?.abandoned, 0);
    });
  });
});
