import DSN from 'haraka-dsn';
import * as constants from 'haraka-constants';
import type { HarakaConnection, HarakaPlugin, Next } from './haraka-types';
import { gatewayRuntime } from './runtime';

/**
 * Connection-level limits (CONNECT, MAIL, end of DATA):
 *
 * - at most SMTP_MAX_CONNECTIONS sessions at once; more get
 *   `421 4.3.2` (RFC 5321 §3.8) and come back later;
 * - the size limit (connection.ini [max] bytes = SMTP_MAX_MESSAGE_SIZE, also
 *   advertised as `SIZE n`, RFC 1870). Haraka refuses oversize mail itself
 *   but answers a bare "550 Message too big!"; RFC 1870 §6.1 and RFC 3463
 *   ask for `552 5.3.4`, so this plugin installs those two replies on each
 *   connection (Haraka dispatches commands and hook replies through the
 *   connection object, so an own property replaces the reply without
 *   touching Haraka's code).
 */

let active = 0;

export function register(this: HarakaPlugin): void {
  gatewayRuntime();
}

function tooBig(limit: number): DSN {
  return DSN.create(552, `Message size exceeds fixed maximum message size of ${limit} bytes`, 3, 4);
}

export function hook_connect_init(this: HarakaPlugin, next: Next, connection: HarakaConnection): void {
  const { settings, log } = gatewayRuntime();
  active++;
  connection.client.once('close', () => {
    active--;
  });

  const limit = settings.maxMessageSize;
  const haraka = Object.getPrototypeOf(connection) as HarakaConnection;
  connection.cmd_mail = function cmdMail(this: HarakaConnection, line: string) {
    const declared = /(?:^|\s)SIZE=(\d+)/i.exec(line);
    if (this.esmtp && declared && Number(declared[1]) > limit) {
      this.errors++;
      return this.respond(552, tooBig(limit));
    }
    return haraka.cmd_mail.call(this, line);
  };
  connection.max_data_exceeded_respond = function maxDataExceeded(this: HarakaConnection) {
    log.info({ queueId: this.transaction?.uuid, remoteIp: this.remote.ip, size: this.transaction?.data_bytes, outcome: 'rejected', code: 552 }, 'message over the size limit refused');
    this.respond(552, tooBig(limit), () => this.reset_transaction());
  };
  next();
}

export function hook_connect(this: HarakaPlugin, next: Next, connection: HarakaConnection): void {
  const { settings, log } = gatewayRuntime();
  if (active > settings.maxConnections) {
    log.warn({ remoteIp: connection.remote.ip, active, limit: settings.maxConnections }, 'connection limit reached; answering 421');
    return next(constants.denysoftdisconnect, DSN.create(421, 'Too many connections, try again later', 3, 2));
  }
  next();
}
