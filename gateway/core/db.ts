import mongoose, { type Connection } from 'mongoose';
import { ConfigError } from './config';
import { installDriverWriteGuard } from './db-write-guard';
import type { Logger } from './log';
import { silentLogger } from './log';
import { redactUri } from './redact-uri';

export interface ConnectOptions {
  uri: string;
  /** Overrides the database named in the URI (tests use one database per file). */
  dbName?: string;
  log?: Logger;
  /** Give up after this long; 0 retries forever (processes wait for the store at start). */
  maxWaitMs?: number;
  serverSelectionTimeoutMS?: number;
}

/**
 * Open a mongoose connection, retrying with capped exponential backoff so a
 * process started before its store (docker compose, a restart) waits instead
 * of crashing. Each attempt's failure is logged with its reason.
 */
export async function connectStore(options: ConnectOptions): Promise<Connection> {
  const log = (options.log ?? silentLogger).child({ component: 'db' });
  // Without it, a store restart can leave this process unable to store until it restarts too.
  installDriverWriteGuard(options.log);
  // A connection string the driver cannot parse (an unknown option, a port that is not a number, an
  // option without a value) will not parse on a retry either. The driver's own parser says so without
  // connecting; its errors are not all MongoParseError (MongoRuntimeError, MongoAPIError), so ask it first.
  try {
    new mongoose.mongo.MongoClient(options.uri);
  } catch (err) {
    throw new ConfigError([`MONGODB_URI=${JSON.stringify(redactUri(options.uri))}: ${(err as Error).message}`]);
  }
  const started = Date.now();
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    const conn = mongoose.createConnection();
    try {
      await conn.openUri(options.uri, {
        dbName: options.dbName,
        serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 5000,
        // Writes are acknowledged by a majority and journaled before the
        // gateway answers 250 (MongoDB 7; FerretDB accepts and ignores it).
        writeConcern: { w: 'majority', j: true },
        autoIndex: false,
        autoCreate: false,
        maxPoolSize: 20,
      });
      if (attempt > 1) log.info({ attempt }, 'connected to the store');
      return conn;
    } catch (err) {
      await conn.close(true).catch(() => undefined);
      const waited = Date.now() - started;
      if (options.maxWaitMs !== 0 && waited + delay > (options.maxWaitMs ?? 60000)) {
        throw new Error(`cannot connect to the store at ${redactUri(options.uri)} after ${attempt} attempts: ${(err as Error).message}`, { cause: err });
      }
      log.warn({ attempt, retryInMs: delay, reason: (err as Error).message }, 'store not reachable, retrying');
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }
}

export { redactUri };

/** What GET /healthz says of the store: does it answer, and does it take writes. */
export interface StoreHealth {
  checks: { store: 'up' | 'down'; writes: 'up' | 'down' };
  /** Why not, in the store's words (a full disk, a read-only volume, no primary), for the operator reading /healthz. */
  problem?: string;
}

/** The one document every health probe rewrites: a store that takes this write takes mail. */
const PROBE = { collection: 'health_probes', id: 'write-probe' };

/**
 * A ping, then a one-document write. A store can answer pings while it
 * refuses every write — its disk is full, its volume went read-only, a
 * replica set lost its primary — and then every message gets 451: health
 * must say so, or nobody is told until senders give up days later.
 */
export async function checkStore(conn: Connection, timeoutMs = 2000): Promise<StoreHealth> {
  if (conn.readyState !== 1 || !conn.db) return { checks: { store: 'down', writes: 'down' }, problem: 'not connected to the store' };
  const db = conn.db;
  const within = <T>(work: Promise<T>, what: string): Promise<T> =>
    Promise.race([work, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} got no answer within ${timeoutMs / 1000} s`)), timeoutMs))]);
  try {
    await within(db.admin().ping(), 'ping');
  } catch (err) {
    return { checks: { store: 'down', writes: 'down' }, problem: `store does not answer: ${storeMessage(err)}` };
  }
  try {
    await within(db.collection<{ _id: string; at: Date }>(PROBE.collection).updateOne({ _id: PROBE.id }, { $set: { at: new Date() } }, { upsert: true }), 'a test write');
    return { checks: { store: 'up', writes: 'up' } };
  } catch (err) {
    return { checks: { store: 'up', writes: 'down' }, problem: `store refuses writes, so mail is answered 451: ${storeMessage(err)}` };
  }
}

/** An error's message without FerretDB's Go call-site prefixes ("[msg_insert.go:168 handler…] disk I/O error (778)"). */
function storeMessage(err: unknown): string {
  return String((err as Error)?.message ?? err).replace(/^(\[[^\]]*\]\s*)+/, '');
}
