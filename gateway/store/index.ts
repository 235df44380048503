import fs from 'node:fs';
import path from 'node:path';
import type { Connection } from 'mongoose';
import type { Config } from '../core/config';
import { connectStore, redactUri } from '../core/db';
import type { Logger } from '../core/log';
import { createModels, ensureIndexes, type Models } from '../models';
import { BlobStore } from './blobs';
import { startEmbeddedStore, type EmbeddedStore } from './embedded-ferretdb';

export { DEFAULT_ORPHAN_AGE_MS, startBlobSweeper, sweepOrphanBlobs, type BlobSweepResult } from './blob-sweep';

export interface Store {
  conn: Connection;
  models: Models;
  blobs: BlobStore;
  /** The embedded FerretDB this process started, if any. */
  embedded?: EmbeddedStore;
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
 * embedded FerretDB with its data under DATA_DIR/store (surviving restarts).
 *
 * Only one FerretDB may own that directory (SQLite files), so the process
 * that starts it leaves DATA_DIR/store/running.json with its URI and pid;
 * another process (`npm run cli`, `npm run syncer` beside `npm start`)
 * connects to that one instead of starting a second.
 */
export async function openConfiguredStore(config: Config, log: Logger): Promise<Store> {
  if (config.mongodbUri) {
    log.info({ uri: redactUri(config.mongodbUri) }, 'using MongoDB');
    return openStore({ uri: config.mongodbUri, log, maxWaitMs: 0 });
  }
  const dataDir = path.join(config.dataDir, 'store');
  const marker = path.join(dataDir, 'running.json');
  const running = readMarker(marker);
  if (running) {
    log.info({ uri: running.uri, pid: running.pid }, 'using the embedded store of the running appliance');
    return openStore({ uri: running.uri, dbName: 'postroom', log, maxWaitMs: 10000 });
  }
  const embedded = await startEmbeddedStore({ dataDir, log: log.child({ component: 'embedded-store' }) });
  fs.writeFileSync(marker, JSON.stringify({ uri: embedded.uri, pid: process.pid, ferretdbPid: embedded.process.pid }), { mode: 0o600 });
  log.info({ uri: embedded.uri, dataDir: embedded.dataDir }, 'started embedded store (FerretDB); set MONGODB_URI to use MongoDB');
  const store = await openStore({ uri: embedded.uri, dbName: 'postroom', log });
  return {
    ...store,
    embedded,
    close: async () => {
      await store.close();
      fs.rmSync(marker, { force: true });
      await embedded.stop();
    },
  };
}

/** The URI (with database) a child process such as Haraka should use for this store. */
export function storeUri(store: Store, config: Pick<Config, 'mongodbUri'>): string {
  return store.embedded ? `${store.embedded.uri.replace(/\/$/, '')}/postroom` : config.mongodbUri!;
}

/** The marker of a live embedded store, or null when absent or left by a dead process. */
function readMarker(file: string): { uri: string; pid: number; ferretdbPid: number } | null {
  let marker: { uri?: unknown; pid?: unknown; ferretdbPid?: unknown };
  try {
    marker = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
  if (typeof marker.uri !== 'string' || typeof marker.ferretdbPid !== 'number' || typeof marker.pid !== 'number') return null;
  try {
    process.kill(marker.ferretdbPid, 0);
  } catch {
    return null;
  }
  return { uri: marker.uri, pid: marker.pid, ferretdbPid: marker.ferretdbPid };
}
