import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { ConfigError } from '../core/config';
import { fromRoot } from '../core/paths';
import type { Logger } from '../core/log';
import { silentLogger } from '../core/log';

/**
 * The embedded store: FerretDB v1.24 (MongoDB wire protocol over SQLite),
 * built from the Go module proxy by the small program in tests/ferretdb.
 * No mongod can be installed on the build machines, so the test suite and
 * `npm start` without MONGODB_URI both use it. Production uses MongoDB 7.
 */

const SOURCE_DIR = fromRoot('tests', 'ferretdb');
const SOURCE_FILES = ['main.go', 'go.mod', 'go.sum'];

function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'postroom');
}

/** Path of the cached binary; its name hashes the sources so an upgrade rebuilds. */
export function ferretdbBinaryPath(sourceDir = SOURCE_DIR): string {
  const hash = crypto.createHash('sha256');
  for (const file of SOURCE_FILES) hash.update(fs.readFileSync(path.join(sourceDir, file)));
  return path.join(cacheDir(), `ferretdb-v1.24.2-${process.platform}-${process.arch}-${hash.digest('hex').slice(0, 12)}`);
}

/**
 * Build the binary once (about a minute on a fresh machine), then reuse it.
 * An installation without its sources (the Docker image ships no tests/ and
 * no Go) has no embedded store: that is the operator's setup to fix, so it
 * is a ConfigError (one line, exit 78) naming MONGODB_URI, not a stack trace.
 */
export function ensureFerretdbBinary(log: Logger = silentLogger, sourceDir = SOURCE_DIR): string {
  if (!process.env.POSTROOM_FERRETDB_BIN && !fs.existsSync(path.join(sourceDir, 'main.go'))) {
    throw new ConfigError([
      `MONGODB_URI is not set, and this installation has no embedded store (${sourceDir} is missing, as in the Docker image): set MONGODB_URI (example: MONGODB_URI=mongodb://mongo:27017/postroom?replicaSet=rs0)`,
    ]);
  }
  const binary = process.env.POSTROOM_FERRETDB_BIN || ferretdbBinaryPath(sourceDir);
  if (fs.existsSync(binary)) return binary;
  fs.mkdirSync(path.dirname(binary), { recursive: true });
  log.info({ binary }, 'building embedded FerretDB (first run only)');
  const tmp = `${binary}.${process.pid}.tmp`;
  const result = spawnSync('go', ['build', '-trimpath', '-o', tmp, '.'], {
    cwd: sourceDir,
    stdio: ['ignore', 'inherit', 'pipe'],
    env: { ...process.env, CGO_ENABLED: '0' },
    encoding: 'utf8',
  });
  if (result.error) throw new Error(`cannot build FerretDB: ${result.error.message} (is Go installed and on PATH?)`);
  if (result.status !== 0) throw new Error(`cannot build FerretDB (go build exited ${result.status}):\n${result.stderr}`);
  fs.renameSync(tmp, binary); // atomic: concurrent builders never see half a binary
  return binary;
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface EmbeddedStore {
  /** Base URI without a database name, e.g. mongodb://127.0.0.1:40123/ */
  uri: string;
  port: number;
  dataDir: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface StartOptions {
  dataDir: string;
  port?: number;
  log?: Logger;
  startTimeoutMs?: number;
}

/** Start FerretDB on loopback and resolve once it accepts connections. */
export async function startEmbeddedStore(options: StartOptions): Promise<EmbeddedStore> {
  const log = options.log ?? silentLogger;
  const binary = ensureFerretdbBinary(log);
  const port = options.port ?? (await freePort());
  fs.mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  // Its stdin is a pipe this process holds and never writes: when this process dies, however it dies,
  // the pipe closes and FerretDB stops (--exit-with-stdin), instead of running on with nothing using it.
  // detached: its own process group, so a terminal's Ctrl-C does not stop the store under mail still
  // being received; this process stops it last (stop()), as it does Haraka first.
  const child = spawn(binary, [`127.0.0.1:${port}`, options.dataDir, '--exit-with-stdin'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });

  const stderrLines: string[] = [];
  readline.createInterface({ input: child.stderr! }).on('line', (line) => {
    stderrLines.push(line);
    if (stderrLines.length > 50) stderrLines.shift();
    // FerretDB logs only errors (see main.go); they matter when the store misbehaves.
    log.error({ component: 'ferretdb' }, line);
  });

  const uri = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`FerretDB did not start within ${options.startTimeoutMs ?? 20000} ms:\n${stderrLines.join('\n')}`));
    }, options.startTimeoutMs ?? 20000);
    readline.createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve(line.trim());
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`FerretDB exited during start (code ${code}, signal ${signal}):\n${stderrLines.join('\n')}`));
    });
  });

  const onParentExit = () => child.kill('SIGKILL');
  process.once('exit', onParentExit);

  return {
    uri,
    port,
    dataDir: options.dataDir,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        process.removeListener('exit', onParentExit);
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(killer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}
