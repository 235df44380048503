import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { writeInstance } from '../../gateway/haraka/instance';
import { ensureTlsCertificate } from '../../gateway/mail/tls-cert';
import { freePort, waitForPort } from '../lib/proc';

/**
 * Tier (b): the same Haraka, configured the way Postroom configures it
 * (gateway/haraka/instance.ts writes smtp.ini, connection.ini — spooling,
 * limits —, tls.ini, log.ini), but with the Postroom plugins replaced by a
 * queue plugin that only accepts. This is Haraka's own ceiling on this
 * machine: what Postroom's plugins cost is the difference to tier (c).
 */

/** Accept every recipient and every message; no storage. Written into the instance at run time. */
const ACCEPT_PLUGIN = (constantsPath: string) => `'use strict';
// Benchmark plugin: accept everything, store nothing (Haraka's own ceiling).
const constants = require(${JSON.stringify(constantsPath)});
exports.hook_rcpt = function (next) { next(constants.ok); };
exports.hook_queue = function (next) { next(constants.ok, 'Message accepted'); };
`;

export interface RunningHaraka {
  port: number;
  pid: number | undefined;
  stop(): Promise<void>;
}

export async function startAcceptingHaraka(options: { maxMessageSize: number }): Promise<RunningHaraka> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-bench-haraka-'));
  const port = await freePort();
  const tls = ensureTlsCertificate({ dataDir: dir, hostname: 'bench.haraka.test' });
  writeInstance({
    dir,
    bindAddress: '127.0.0.1',
    port,
    hostname: 'bench.haraka.test',
    tls,
    runtime: {
      gatewayDomain: 'bench.haraka.test',
      businessDomains: [],
      dnsServers: [],
      dnsCacheSeconds: 0,
      maxMessageSize: options.maxMessageSize,
      maxRecipients: 50,
      maxConnections: 200,
      maxConnectionsPerClient: 200,
      logLevel: 'warn',
      recipientCacheMs: 3000,
      errorDelayMs: 1000,
      lineTimeoutMs: 300_000,
      dataTimeoutMs: 1_800_000,
    },
  });
  // Same plugin order minus Postroom's: tls stays (STARTTLS advertised, as in production).
  fs.writeFileSync(path.join(dir, 'config', 'plugins'), 'tls\nbench-accept\n');
  const pluginDir = path.join(dir, 'plugins', 'bench-accept');
  fs.mkdirSync(pluginDir, { recursive: true });
  fs.writeFileSync(path.join(pluginDir, 'package.json'), JSON.stringify({ name: 'bench-accept', private: true, main: 'index.js' }));
  fs.writeFileSync(path.join(pluginDir, 'index.js'), ACCEPT_PLUGIN(require.resolve('haraka-constants')));

  const child: ChildProcess = spawn(process.execPath, [require.resolve('haraka/bin/haraka'), '-c', dir], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const recent: string[] = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    readline.createInterface({ input: stream }).on('line', (line) => {
      recent.push(line);
      if (recent.length > 20) recent.shift();
    });
  }
  try {
    await waitForPort(port, 30_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`Haraka did not start: ${(err as Error).message}\n${recent.join('\n')}`);
  }
  return {
    port,
    pid: child.pid,
    stop: () =>
      new Promise<void>((resolve) => {
        const done = () => {
          fs.rmSync(dir, { recursive: true, force: true });
          resolve();
        };
        if (child.exitCode !== null || child.signalCode !== null) return done();
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(killer);
          done();
        });
        // Haraka handles SIGINT (graceful); SIGTERM only as PID 1.
        child.kill('SIGINT');
      }),
  };
}
