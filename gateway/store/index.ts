import path from 'node:path';
import type { Connection } from 'mongoose';
import type { Config } from '../core/config';
import { connectStore, redactUri } from '../core/db';
import type { Logger } from '../core/log';
import { createModels, ensureIndexes, type Models } from '../models';
import { BlobStore } from './blobs';
import { startEmbeddedStore, type EmbeddedStore } from './embedded-ferretdb';

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
}

/** Connect, bind the models and the blob store. */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const conn = await connectStore({ uri: options.uri, dbName: options.dbName, log: options.log, maxWaitMs: options.maxWaitMs });
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
 * The store a process should use: MONGODB_URI when set; otherwise start the
 * embedded FerretDB with its data under DATA_DIR/store (surviving restarts).
 */
export async function openConfiguredStore(config: Config, log: Logger): Promise<Store> {
  if (config.mongodbUri) {
    log.info({ uri: redactUri(config.mongodbUri) }, 'using MongoDB');
    return openStore({ uri: config.mongodbUri, log, maxWaitMs: 0 });
  }
  const embedded = await startEmbeddedStore({ dataDir: path.join(config.dataDir, 'store'), log: log.child({ component: 'embedded-store' }) });
  log.info({ uri: embedded.uri, dataDir: embedded.dataDir }, 'started embedded store (FerretDB); set MONGODB_URI to use MongoDB');
  const store = await openStore({ uri: embedded.uri, dbName: 'postroom', log });
  return {
    ...store,
    embedded,
    close: async () => {
      await store.close();
      await embedded.stop();
    },
  };
}
