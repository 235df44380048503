import fs from 'node:fs';
import path from 'node:path';
import type { Connection } from 'mongoose';
import type { Config } from '../core/config';
import { connectStore, redactUri } from '../core/db';
import type { Logger } from '../core/log';
import { createModels, ensureIndexes, type Models } from '../models';
import { BlobStore } from './blobs';
import { startEmbeddedStore, storeSocketPath, type EmbeddedStore } from './embedded-ferretdb';

export { DEFAULT_ORPHAN_AGE_MS, startBlobSweeper, sweepOrphanBlobs, type BlobSweepResult } from './blob-sweep';
export { EMBEDDED_STORE_COMFORTABLE_MESSAGES, warnIfEmbeddedStoreOutgrown } from './embedded-size';
export { copyStore, type CollectionCopy } from './copy-store';

export interface Store {
  conn: Connection;
  models: Models;
  blobs: BlobStore;
  /** The embedded FerretDB this process started, if any. */
  embedded?: EmbeddedStore;
  /** The embedded store's URI with its database (this process's or the running appliance's); unset for MONGODB_URI. */
  uri?: string;
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  uri: string;
  dbName?: string;
  log: Logger;
  maxWaitMs?: number;
  /** Create collections and indexes (processes do this at start; idempotent). */
  ensureIndexes?: boolean;
  /**
   * How long an operation waits for a reachable store before it fails
   * (default 5 s). While the store is down every operation waits this long,
   * so a process that answers someone who retries anyway (SMTP: 451) sets it
   * shorter.
   */
  serverSelectionTimeoutMS?: number;
}

/** Connect, bind the models and the blob store. */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const conn = await connectStore({ uri: options.uri, dbName: options.dbName, log: options.log, maxWaitMs: options.maxWaitMs, serverSelectionTimeoutMS: options.serverSelectionTimeoutMS });
  const models = createModels(conn);
  if (options.ensureIndexes !== false) await ensureIndexes(models);
  return {
    conn,
    models,
    blobs: new BlobStore(conn),
    close: () => conn.close(),
  };
}

/**
 * The store a process should use: MONGODB_URI when set; otherwise the
 * embedded FerretDB with its data under DATA_DIR/store (surviving restarts),
 * listening on a Unix socket there rather than a port, since it has no
 * authentication (see StartOptions.socketPath).
 *
 * Only one FerretDB may own that directory (SQLite files), so the process
 * that starts it leaves DATA_DIR/store/running.json with its URI and pid;
 * another process (`npm run cli`, `npm run syncer` beside `npm start`)
 * connects to that one instead of starting a second.
 */
export async function openConfiguredStore(config: Config, log: Logger, options: { exclusive?: boolean; maxWaitMs?: number } = {}): Promise<Store> {
  if (config.mongodbUri) {
    log.info({ uri: redactUri(config.mongodbUri) }, 'using MongoDB');
    // Services wait for their store for as long as it takes (0: forever); a one-shot command gives up (maxWaitMs).
    return openStore({ uri: config.mongodbUri, log, maxWaitMs: options.maxWaitMs ?? 0 });
  }
  const dataDir = path.join(config.dataDir, 'store');
  const marker = path.join(dataDir, 'running.json');
  const running = await claimMarker(marker, log);
  if (running && options.exclusive) throw new ApplianceRunningError(config.dataDir, running.pid);
  if (running) {
    log.info({ uri: running.uri, pid: running.pid }, 'using the embedded store of the running appliance');
    const store = await openStore({ uri: running.uri, dbName: 'postroom', log, maxWaitMs: 10000 });
    return { ...store, uri: `${running.uri.replace(/\/$/, '')}/postroom` };
  }
  const writeMarker = (uri: string, ferretdbPid: number | undefined) => fs.writeFileSync(marker, JSON.stringify({ uri, pid: process.pid, ferretdbPid }), { mode: 0o600 });
  // A store restarted after it died has a new pid: the marker follows, so `npm run cli` still finds it.
  const embedded = await startEmbeddedStore({
    dataDir,
    socketPath: storeSocketPath(dataDir),
    log: log.child({ component: 'embedded-store' }),
    onRestart: (child) => writeMarker(embedded.uri, child.pid),
  });
  writeMarker(embedded.uri, embedded.process.pid);
  log.info({ uri: embedded.uri, dataDir: embedded.dataDir }, 'started embedded store (FerretDB); set MONGODB_URI to use MongoDB');
  const store = await openStore({ uri: embedded.uri, dbName: 'postroom', log });
  return {
    ...store,
    embedded,
    uri: `${embedded.uri.replace(/\/$/, '')}/postroom`,
    close: async () => {
      await store.close();
      fs.rmSync(marker, { force: true });
      await embedded.stop();
    },
  };
}

/** A second appliance on one DATA_DIR would share its embedded store and its Haraka directory. */
export class ApplianceRunningError extends Error {
  readonly code = 'APPLIANCE_RUNNING';
  constructor(dataDir: string, readonly pid: number) {
    super(`Postroom is already running with DATA_DIR ${dataDir} (pid ${pid}). Stop it first (Ctrl-C in its terminal, or kill -INT ${pid}), or give this one its own DATA_DIR.`);
  }
}

/** The URI (with database) a child process such as Haraka should use for this store. */
export function storeUri(store: Store, config: Pick<Config, 'mongodbUri'>): string {
  return store.uri ?? config.mongodbUri!;
}

interface Marker {
  uri: string;
  /** The process that started the store (the appliance). */
  pid: number;
  ferretdbPid: number;
}

/**
 * The marker of a live embedded store whose appliance is running, or null.
 * A store whose appliance died (killed with SIGKILL, out of memory) by a
 * version that did not tie FerretDB to its parent is stopped here, so it
 * does not hold the SQLite files while this process starts its own.
 */
async function claimMarker(file: string, log: Logger): Promise<Marker | null> {
  const marker = readMarker(file);
  if (!marker || !isFerretdb(marker.ferretdbPid)) return null;
  if (isAlive(marker.pid)) return marker;
  log.warn({ pid: marker.ferretdbPid, appliancePid: marker.pid }, 'stopping an embedded store left running by an appliance that exited');
  await stopProcess(marker.ferretdbPid);
  fs.rmSync(file, { force: true });
  return null;
}

function readMarker(file: string): Marker | null {
  let marker: { uri?: unknown; pid?: unknown; ferretdbPid?: unknown };
  try {
    marker = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
  if (typeof marker.uri !== 'string' || typeof marker.ferretdbPid !== 'number' || typeof marker.pid !== 'number') return null;
  return { uri: marker.uri, pid: marker.pid, ferretdbPid: marker.ferretdbPid };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid is (still) a FerretDB, not a process that got its number after a reboot. */
function isFerretdb(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    return /ferretdb/i.test(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return true; // no /proc (not Linux): trust the marker as before
  }
}

async function stopProcess(pid: number): Promise<void> {
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(pid, name);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  for (let waited = 0; waited < 10000 && isAlive(pid); waited += 100) await new Promise((resolve) => setTimeout(resolve, 100));
  if (isAlive(pid)) signal('SIGKILL');
}
