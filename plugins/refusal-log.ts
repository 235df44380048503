import type DSN from 'haraka-dsn';
import { metrics } from '../gateway/core/metrics';
import type { HarakaConnection } from './haraka-types';
import { gatewayRuntime } from './runtime';

/**
 * The log line of a refused MAIL or RCPT command. A transaction refused
 * before DATA never reaches postroom-store's `smtp transaction` line, yet a
 * relay attempt, or why a forwarder's mail bounced, is what an operator
 * greps for: each refusal gets one info line with the fields of the other
 * outcome lines. One line per refused command, never more, so a client
 * hammering RCPT costs one line per try (Haraka answers each command once).
 *
 * Only the envelope is logged (never message data); `queueId` is the
 * transaction's, or the session id (the prefix of its queue ids) when the
 * command is refused before a transaction exists.
 */
export interface Refusal {
  /** The envelope address the command named (MAIL FROM or RCPT TO). */
  sender?: string;
  rcpt?: string;
  /** Short and stable, for grep: `relaying denied`, `unknown recipient`, `invalid parameter`… */
  reason: string;
}

export function enhancedCodeOf(dsn: DSN): string {
  return `${dsn.cls}.${dsn.sub}.${dsn.det}`;
}

export function logRefusal(connection: HarakaConnection, dsn: DSN, refusal: Refusal): void {
  metrics().smtpRefusals.inc({ command: refusal.rcpt !== undefined ? 'rcpt' : 'mail', code: String(dsn.code), reason: refusal.reason });
  gatewayRuntime().log.info(
    {
      queueId: connection.transaction?.uuid ?? connection.uuid,
      remoteIp: connection.remote.ip,
      helo: connection.hello.host,
      ...refusal,
      outcome: dsn.code >= 500 ? 'rejected' : 'tempfail',
      code: dsn.code,
      enhancedCode: enhancedCodeOf(dsn),
    },
    refusal.rcpt !== undefined ? 'recipient refused' : 'sender refused',
  );
}
