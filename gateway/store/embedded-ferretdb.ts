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
  // A build of other sources beside it: Postroom was upgraded and its store changed, so Go is needed again.
  const upgraded = !process.env.POSTROOM_FERRETDB_BIN && fs.readdirSync(path.dirname(binary)).some((name) => name.startsWith(path.basename(binary).replace(/[0-9a-f]+$/, '')) && !name.endsWith('.tmp'));
  log.info({ binary }, upgraded ? 'building embedded FerretDB again (this version changed it; once)' : 'building embedded FerretDB (first run only)');
  const tmp = `${binary}.${process.pid}.tmp`;
  const result = spawnSync('go', ['build', '-trimpath', '-o', tmp, '.'], {
    cwd: sourceDir,
    stdio: ['ignore', 'inherit', 'pipe'],
    env: { ...process.env, CGO_ENABLED: '0' },
    encoding: 'utf8',
  });
  // Both are the machine's setup, not a bug: one line naming the fix (exit 78), no stack trace.
  const instead = `or set MONGODB_URI to use MongoDB (example: MONGODB_URI=mongodb://127.0.0.1:27017/postroom)`;
  if (result.error) {
    const missing = (result.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ConfigError([
      missing
        ? upgraded
          ? `MONGODB_URI is not set, and this version of Postroom changed its embedded store, which is built again once with Go (the build an earlier version made does not fit it), and Go is not on PATH: install Go ${goVersion(sourceDir)} or later (https://go.dev/dl/) and start again (DATA_DIR is untouched), ${instead}`
          : `MONGODB_URI is not set, and the embedded store is built once with Go, which is not on PATH: install Go ${goVersion(sourceDir)} or later (https://go.dev/dl/), ${instead}`
        : `MONGODB_URI is not set, and the embedded store cannot be built: go: ${result.error.message}; ${instead}`,
    ]);
  }
  if (result.status !== 0) {
    const output = (result.stderr ?? '').trim().split('\n').slice(-3).join(' | ');
    throw new ConfigError([
      `MONGODB_URI is not set, and building the embedded store failed (go build exited ${result.status}: ${output}); the first build fetches FerretDB through the Go module proxy (GOPROXY), ${instead}`,
    ]);
  }
  fs.renameSync(tmp, binary); // atomic: concurrent builders never see half a binary
  return binary;
}

/** The Go release the embedded store's go.mod asks for. */
function goVersion(sourceDir: string): string {
  return /^go (\S+)$/m.exec(fs.readFileSync(path.join(sourceDir, 'go.mod'), 'utf8'))?.[1] ?? '';
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

/** sun_path is 108 bytes on Linux (104 on macOS), with its terminating NUL. */
const MAX_SOCKET_PATH = 103;

/**
 * Where the embedded store of a DATA_DIR listens: a socket beside its data
 * (DATA_DIR/store is 0700). A DATA_DIR too deep for a socket's path gets a
 * 0700 directory of its own in the system's temporary directory instead.
 */
export function storeSocketPath(storeDir: string): string {
  const beside = path.join(path.resolve(storeDir), 'ferretdb.sock');
  if (Buffer.byteLength(beside) <= MAX_SOCKET_PATH) return beside;
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-store-')), 'ferretdb.sock');
}

/** The socket, and the temporary directory storeSocketPath made for it, if it made one. */
function removeSocket(socketPath: string): void {
  fs.rmSync(socketPath, { force: true });
  const dir = path.dirname(socketPath);
  if (path.dirname(dir) === os.tmpdir() && path.basename(dir).startsWith('postroom-store-')) fs.rmSync(dir, { recursive: true, force: true });
}

export interface EmbeddedStore {
  /** Base URI without a database name, e.g. mongodb://127.0.0.1:40123/ or mongodb://%2Fdata%2Fstore%2Fstore.sock/ */
  uri: string;
  /** Where it listens, for messages: 127.0.0.1:port or the socket's path. */
  address: string;
  dataDir: string;
  /** The FerretDB process now running (a new one after each restart). */
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

export interface StartOptions {
  dataDir: string;
  /** Listen on 127.0.0.1:port (a free one when neither this nor socketPath is given). */
  port?: number;
  /**
   * Listen on this Unix domain socket instead of a TCP port. FerretDB's
   * SQLite backend has no authentication: on a port, every local user of
   * the machine could read and write all mail; a socket in a 0700 directory
   * only answers the user Postroom runs as. (storeSocketPath picks one.)
   */
  socketPath?: string;
  log?: Logger;
  startTimeoutMs?: number;
  /** Called with the new process each time the store is restarted after it died (the appliance rewrites its marker). */
  onRestart?: (child: ChildProcess) => void;
}

/** One FerretDB listening at `listen` (host:port or unix:path); resolves once it accepts connections, rejects if it exits or stalls first. */
function spawnFerretdb(binary: string, listen: string, options: StartOptions, log: Logger): Promise<{ child: ChildProcess; uri: string; stderrLines: string[] }> {
  // Its stdin is a pipe this process holds and never writes: when this process dies, however it dies,
  // the pipe closes and FerretDB stops (--exit-with-stdin), instead of running on with nothing using it.
  // detached: its own process group, so a terminal's Ctrl-C does not stop the store under mail still
  // being received; this process stops it last (stop()), as it does Haraka first.
  const child = spawn(binary, [listen, options.dataDir, '--exit-with-stdin'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });

  const stderrLines: string[] = [];
  readline.createInterface({ input: child.stderr! }).on('line', (line) => {
    stderrLines.push(line);
    if (stderrLines.length > 50) stderrLines.shift();
    // FerretDB logs only errors (see main.go); they matter when the store misbehaves.
    log.error({ component: 'ferretdb' }, line);
  });

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`FerretDB did not start within ${options.startTimeoutMs ?? 20000} ms:\n${stderrLines.join('\n')}`));
    }, options.startTimeoutMs ?? 20000);
    readline.createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve({ child, uri: line.trim(), stderrLines });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`FerretDB exited during start (code ${code}, signal ${signal}):\n${stderrLines.join('\n')}`));
    });
  });
}

/** Longest wait between two restarts of a store that keeps dying. */
const MAX_RESTART_DELAY_MS = 30_000;

/**
 * Start FerretDB on loopback and resolve once it accepts connections.
 *
 * Supervised: when it dies (killed, out of memory) before stop(), it is
 * started again on the same address and data, with a capped backoff, so every
 * process holding the URI (the admin, the syncer, Haraka's plugins)
 * reconnects by itself and the appliance recovers without a restart.
 * Nothing is lost meanwhile: the gateway answers 451 and the syncer keeps
 * its cursors until the store is back.
 */
export async function startEmbeddedStore(options: StartOptions): Promise<EmbeddedStore> {
  const log = options.log ?? silentLogger;
  const binary = ensureFerretdbBinary(log);
  fs.mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  let listen: string;
  let address: string;
  if (options.socketPath) {
    // mkdirSync's mode only applies to a directory it creates: one made by an older version, or by hand, is closed here.
    fs.mkdirSync(path.dirname(options.socketPath), { recursive: true, mode: 0o700 });
    fs.chmodSync(path.dirname(options.socketPath), 0o700);
    listen = `unix:${options.socketPath}`;
    address = options.socketPath;
  } else {
    const port = options.port ?? (await freePort());
    listen = `127.0.0.1:${port}`;
    address = listen;
  }

  let current = await spawnFerretdb(binary, listen, options, log);
  let stopping = false;
  let failures = 0;
  let restartTimer: NodeJS.Timeout | undefined;

  const supervise = ({ child, stderrLines }: { child: ChildProcess; stderrLines: string[] }) => {
    child.once('exit', (code, signal) => {
      if (stopping) return;
      scheduleRestart(`exited unexpectedly (code ${code}, signal ${signal})`, stderrLines.slice(-5));
    });
  };
  const scheduleRestart = (why: string, lastOutput: string[]) => {
    failures++;
    const delay = Math.min(250 * 2 ** (failures - 1), MAX_RESTART_DELAY_MS);
    log.error(
      { code: 'STORE_EXITED', restartInMs: delay, attempt: failures, dataDir: options.dataDir, lastOutput },
      `embedded store (FerretDB) ${why}; restarting it on ${address} — mail is answered 451 and retried until it is back. If this repeats, stop Postroom (Ctrl-C) and check DATA_DIR (free space, permissions)`,
    );
    restartTimer = setTimeout(() => void restart(), delay);
  };
  const restart = async () => {
    if (stopping) return;
    try {
      current = await spawnFerretdb(binary, listen, options, log);
    } catch (err) {
      if (!stopping) scheduleRestart(`could not be restarted: ${(err as Error).message.split('\n')[0]}`, (err as Error).message.split('\n').slice(1, 6));
      return;
    }
    if (stopping) {
      current.child.kill('SIGTERM');
      return;
    }
    log.info({ pid: current.child.pid, address }, 'embedded store (FerretDB) restarted');
    options.onRestart?.(current.child);
    supervise(current);
    // A store that stays up for a minute starts the backoff afresh.
    const survived = current.child;
    setTimeout(() => {
      if (current.child === survived && survived.exitCode === null && survived.signalCode === null) failures = 0;
    }, 60_000).unref();
  };
  supervise(current);

  const onParentExit = () => current.child.kill('SIGKILL');
  process.once('exit', onParentExit);

  return {
    uri: current.uri,
    address,
    dataDir: options.dataDir,
    get process() {
      return current.child;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        stopping = true;
        if (restartTimer) clearTimeout(restartTimer);
        process.removeListener('exit', onParentExit);
        const child = current.child;
        const done = () => {
          if (options.socketPath) removeSocket(options.socketPath);
          resolve();
        };
        if (child.exitCode !== null || child.signalCode !== null) return done();
        const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(killer);
          done();
        });
        child.kill('SIGTERM');
      }),
  };
}
