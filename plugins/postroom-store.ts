import { PassThrough, type Readable } from 'node:stream';
import DSN from 'haraka-dsn';
import * as constants from 'haraka-constants';
import { metricsSnapshot } from '../gateway/core/metrics';
import { receiveMessage, type InboundResult } from '../gateway/mail/inbound';
import type { HarakaConnection, HarakaPlugin, HarakaServer, HarakaTransaction, Next } from './haraka-types';
import { transactionNotes } from './postroom-rcpt';
import { gatewayRuntime } from './runtime';
import { countTransaction } from './smtp-metrics';
import { smtpReply } from './smtp-reply';

/**
 * End of DATA: authenticate, store once per receiving mailbox, and only
 * then answer. The work happens in `data_post` rather than `queue` because
 * a queue hook's temporary failure is always sent as 450, while a storage
 * failure must be `451 4.3.0` (RFC 3463) with its tag. `queue` then only
 * confirms what data_post stored: 250 is never sent for a message that is
 * not acknowledged by the store.
 *
 * One log line per transaction: queue id, verdict, size, duration, outcome.
 */

export function register(this: HarakaPlugin): void {
  gatewayRuntime();
}

/** Tell the gateway process (if it started us) that SMTP is listening, and on which port. */
export function hook_init_master(this: HarakaPlugin, next: Next, server: HarakaServer): void {
  const { log } = gatewayRuntime();
  const address = server.listeners?.[0]?.address();
  const port = address && typeof address === 'object' ? address.port : 0;
  if (process.send) {
    process.send({ type: 'postroom-gateway-ready', port });
    // The parent went away: stop instead of holding the port as an orphan.
    process.once('disconnect', () => process.kill(process.pid, 'SIGINT'));
    // The parent serves /metrics: it asks for ours (gateway/haraka/launcher.ts).
    process.on('message', (message: { type?: string; id?: number }) => {
      if (message?.type !== 'postroom-metrics-request') return;
      void metricsSnapshot().then((snapshot) => process.send?.({ type: 'postroom-metrics', id: message.id, snapshot }));
    });
    process.channel?.unref();
  }
  log.info({ port }, 'SMTP gateway listening');
  next();
}

/** A fresh read of the message each call (Haraka's message stream can be replayed, but only one reader at a time). */
function messageReader(txn: HarakaTransaction): () => Readable {
  return () => {
    txn.message_stream.unpipe();
    const out = new PassThrough();
    txn.message_stream.pipe(out);
    return out;
  };
}

function verdictOf(result: InboundResult): string {
  const verdicts = new Set(result.deliveries.map((d) => d.verdict));
  return verdicts.size === 1 ? [...verdicts][0] : 'mixed';
}

/** A message starts arriving: a graceful stop now waits for it (runtime.receiving). */
export function hook_data(this: HarakaPlugin, next: Next, connection: HarakaConnection): void {
  gatewayRuntime().receiving.add(connection.uuid);
  next();
}

/** The connection ended or its transaction was reset (RSET, a refusal, the end of a transaction). */
function doneReceiving(this: HarakaPlugin, next: Next, connection: HarakaConnection): void {
  gatewayRuntime().receiving.delete(connection.uuid);
  next();
}
export const hook_reset_transaction = doneReceiving;
export const hook_disconnect = doneReceiving;

export function hook_data_post(this: HarakaPlugin, next: Next, connection: HarakaConnection): void {
  const runtime = gatewayRuntime();
  const txn = connection.transaction;
  // Counted as storing (track) from here on; the arrival is over.
  const arrived = () => runtime.receiving.delete(connection.uuid);
  if (!txn) {
    arrived();
    return next();
  }
  const started = Date.now();
  const notes = transactionNotes(txn);
  const base = { queueId: txn.uuid, remoteIp: connection.remote.ip, tls: connection.tls.enabled, size: txn.data_bytes, rcpts: notes.recipients.length };

  const work = runtime.services().then((services) =>
    receiveMessage(services.inbound, {
      openRaw: messageReader(txn),
      size: txn.data_bytes,
      envelope: {
        ip: connection.remote.ip,
        helo: connection.hello.host ?? '',
        sender: txn.mail_from.isNull() ? '' : (txn.mail_from.address ?? ''),
      },
      recipients: notes.recipients,
      queueId: txn.uuid,
    }),
  );

  const stored = runtime.track(work);
  arrived();
  stored
    .then((result) => {
      (txn.notes as { postroomResult?: InboundResult }).postroomResult = result;
      const outcome = result.deliveries.every((d) => d.outcome === 'duplicate') ? ('duplicate' as const) : ('stored' as const);
      runtime.log.info(
        {
          ...base,
          verdict: verdictOf(result),
          spf: result.facts.spf.result,
          dkim: result.facts.dkim.map((d) => d.result).join(',') || 'none',
          dmarc: result.facts.dmarc?.result ?? 'none',
          arc: result.facts.arc.result,
          mailboxes: result.deliveries.map((d) => ({ mailbox: d.mailboxKey, outcome: d.outcome, status: d.status, kind: d.kind, id: d.id?.toString() })),
          durationMs: Date.now() - started,
          outcome,
          code: 250,
        },
        'smtp transaction',
      );
      countTransaction(250, outcome, started);
      next();
    })
    .catch((err: unknown) => {
      const reply = smtpReply(err);
      const level = reply.unexpected ? 'error' : 'warn';
      const outcome = reply.code >= 500 ? ('rejected' as const) : ('tempfail' as const);
      runtime.log[level](
        { ...base, err, durationMs: Date.now() - started, outcome, code: reply.code, enhancedCode: reply.enhancedCode, tag: reply.tag },
        `smtp transaction: ${reply.text}`,
      );
      countTransaction(reply.code, outcome, started);
      next(reply.action, reply.dsn);
    });
}

export function hook_queue(this: HarakaPlugin, next: Next, connection: HarakaConnection): void {
  const result = (connection.transaction?.notes as { postroomResult?: InboundResult } | undefined)?.postroomResult;
  if (!result) return next(constants.denysoft, DSN.create(451, 'Message was not stored, please retry [GW03]', 3, 0));
  next(constants.ok, result.deliveries.every((d) => d.outcome === 'duplicate') ? 'Message already stored' : 'Message stored');
}

/**
 * Graceful stop (Haraka calls this after closing its listeners): let the
 * transactions that are storing finish, close the store, then exit rather
 * than wait for idle sessions and config watchers to let Haraka's event loop
 * drain — whatever is cut short now was never acknowledged and is retried.
 */
export function shutdown(this: HarakaPlugin): void {
  void gatewayRuntime()
    .close()
    .finally(() => setTimeout(() => process.exit(0), 100));
}
