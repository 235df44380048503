import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import mongoose from 'mongoose';
import type { Logger } from './log';

/**
 * Works around a MongoDB driver (7.8, still in 7.9) hang that left every
 * process with a store connection unable to store after the store restarted.
 *
 * When the store closes a connection, Node handles the peer's FIN by ending
 * and destroying the socket at once, but emits 'close' only on a later turn
 * of the event loop. The driver learns of the closed connection from that
 * 'close'. A command it writes in between — the monitor's heartbeat, woken
 * by another connection's failure in the same turn, or an operation that
 * checked out that pooled connection — gets `socket.write() === false` with
 * neither an 'error' nor a 'drain' event, and `Connection.writeCommand`
 * waits for 'drain' forever; the later 'close' only fails a pending *read*.
 * A stuck heartbeat means the monitor never checks the server again, so the
 * server stays "Unknown" and every operation times out in server selection
 * ("connection N closed") until the process restarts; a stuck operation
 * never settles at all.
 *
 * The guard makes that write fail like any closed connection: at once when
 * the socket is already destroyed, or when its 'close' arrives while the
 * write waits. The driver then does what it does for a connection the
 * server closed — marks the server unknown, clears the pool, heartbeats
 * until the server answers again — and callers get an error (SMTP 451)
 * instead of silence. Nothing is reported as written that was not.
 */

interface DriverConnection {
  id: number | string;
  address: string;
  socket: Socket;
  closed: boolean;
  error?: Error | null;
  onError(error: Error): void;
  writeCommand(this: DriverConnection, ...args: unknown[]): Promise<void>;
}

const GUARDED = Symbol.for('postroom.mongodb.writeGuard');
let reportTo: Logger | undefined;

/** The driver mongoose uses (the same copy, wherever npm placed it). */
function driverConnectionPrototype(): (DriverConnection & { [GUARDED]?: true }) | undefined {
  try {
    const fromMongoose = createRequire(require.resolve('mongoose'));
    const cmap = fromMongoose('mongodb/lib/cmap/connection') as { Connection?: { prototype?: DriverConnection } };
    const proto = cmap.Connection?.prototype;
    return proto && typeof proto.writeCommand === 'function' ? proto : undefined;
  } catch {
    return undefined;
  }
}

function failClosed(conn: DriverConnection): Error {
  const error = conn.error ?? new mongoose.mongo.MongoNetworkError(`connection ${conn.id} to ${conn.address} closed`);
  // What the driver does when 'close' arrives, done now: pool and monitor see a closed connection.
  if (!conn.closed) conn.onError(error);
  reportTo?.warn({ component: 'db', connection: String(conn.id), address: conn.address }, 'store connection closed under a write; failed it so the driver reconnects');
  return error;
}

/**
 * Install the guard once per process (idempotent); `log` receives a warning
 * each time it fails a write. Returns false when the driver's internals are
 * not the shape this was written for (a driver upgrade): check whether the
 * hang is fixed there and remove this module.
 */
export function installDriverWriteGuard(log?: Logger): boolean {
  if (log) reportTo = log;
  const proto = driverConnectionPrototype();
  if (!proto) {
    log?.warn({ component: 'db' }, 'cannot guard MongoDB driver writes (driver internals changed); a store restart may need a process restart');
    return false;
  }
  if (proto[GUARDED]) return true;
  const original = proto.writeCommand;
  proto.writeCommand = function guardedWriteCommand(this: DriverConnection, ...args: unknown[]): Promise<void> {
    const socket = this.socket;
    if (socket.destroyed) return Promise.reject(failClosed(this));
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const onClose = () => {
        if (settled) return;
        settled = true;
        reject(failClosed(this));
      };
      socket.once('close', onClose);
      original.apply(this, args).then(
        () => {
          settled = true;
          socket.removeListener('close', onClose);
          resolve();
        },
        (err: unknown) => {
          settled = true;
          socket.removeListener('close', onClose);
          reject(err);
        },
      );
    });
  };
  proto[GUARDED] = true;
  return true;
}
