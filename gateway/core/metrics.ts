import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics (prom-client) of one process: what an operator graphs
 * and alerts on — mail stored, SMTP transactions refused or deferred (a
 * store outage shows as 451s), IMAP syncs failing — beside Node's own
 * process metrics (memory, CPU, event loop lag).
 *
 * One registry per process. The gateway's counters live in its Haraka child;
 * the parent asks for them over IPC (gateway/haraka/launcher.ts) and serves
 * the merged set on HEALTH_PORT, which compose does not publish: metrics are
 * for a scraper on the internal network, never for the Internet.
 *
 * Labels are closed sets (source, outcome, code, reason): never an address,
 * an account or a message id, so the number of series stays small.
 */

/** A registry's getMetricsAsJSON(): plain data, safe to send over IPC. */
export type MetricSnapshot = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

export interface Metrics {
  registry: Registry;
  /** Messages through the one ingest pipeline, by source kind and outcome (stored, duplicate, tombstoned). */
  messages: Counter<'source' | 'outcome'>;
  /** Messages the pipeline could not take (the sender or the syncer retries), by source and error code. */
  ingestFailures: Counter<'source' | 'code'>;
  /** Messages in a row the store did not take (451, or an IMAP batch retried), since the last one stored; 0 while writes succeed. */
  storeWriteFailureStreak: Gauge;
  /** Unix time of the last message the store did not take (0: none yet). */
  storeWriteLastFailure: Gauge;
  /** SMTP transactions that reached the end of DATA, by reply code and outcome. */
  smtpTransactions: Counter<'code' | 'outcome'>;
  /** End of DATA to the reply. */
  smtpTransactionSeconds: Histogram<'outcome'>;
  /** MAIL FROM and RCPT TO commands refused, by command, code and reason (relaying denied, unknown recipient…). */
  smtpRefusals: Counter<'command' | 'code' | 'reason'>;
  /** One account's sync pass, by outcome (synced, auth_failed, backoff, store_error, stopped). */
  imapSyncs: Counter<'outcome'>;
  imapSyncSeconds: Histogram<'outcome'>;
  /** One delivery attempt of mail sent from the console or the API, by the entry's status after it and the error code (none when accepted). */
  outboundAttempts: Counter<'status' | 'code'>;
  /** Console sign-in attempts, by outcome (signed_in, failed, throttled): a brute-force attempt shows as failed and throttled. */
  consoleLogins: Counter<'outcome'>;
  /** Console and API requests, by method and status code, with their duration. */
  httpRequestSeconds: Histogram<'method' | 'status'>;
}

function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    messages: new Counter({ name: 'postroom_messages_total', help: 'Messages through the ingest pipeline, by source and outcome.', labelNames: ['source', 'outcome'], registers }),
    ingestFailures: new Counter({ name: 'postroom_ingest_failures_total', help: 'Messages the ingest pipeline could not take, by source and error code.', labelNames: ['source', 'code'], registers }),
    storeWriteFailureStreak: new Gauge({ name: 'postroom_store_write_failure_streak', help: 'Messages in a row the store did not take since the last one stored (0 while writes succeed).', registers }),
    storeWriteLastFailure: new Gauge({ name: 'postroom_store_write_last_failure_seconds', help: 'Unix time of the last message the store did not take.', aggregator: 'max', registers }),
    smtpTransactions: new Counter({ name: 'postroom_smtp_transactions_total', help: 'SMTP transactions answered at the end of DATA, by reply code and outcome.', labelNames: ['code', 'outcome'], registers }),
    smtpTransactionSeconds: new Histogram({
      name: 'postroom_smtp_transaction_seconds',
      help: 'Seconds from the end of DATA to the reply (authentication, parsing, the store acknowledging).',
      labelNames: ['outcome'],
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    smtpRefusals: new Counter({ name: 'postroom_smtp_refusals_total', help: 'MAIL FROM and RCPT TO commands refused, by command, code and reason.', labelNames: ['command', 'code', 'reason'], registers }),
    imapSyncs: new Counter({ name: 'postroom_imap_account_syncs_total', help: 'IMAP sync passes of one account, by outcome.', labelNames: ['outcome'], registers }),
    imapSyncSeconds: new Histogram({
      name: 'postroom_imap_account_sync_seconds',
      help: 'Seconds one account sync pass took, by outcome.',
      labelNames: ['outcome'],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900],
      registers,
    }),
    outboundAttempts: new Counter({ name: 'postroom_outbound_attempts_total', help: 'Delivery attempts of mail sent from the console or the API, by status after the attempt and error code.', labelNames: ['status', 'code'], registers }),
    consoleLogins: new Counter({ name: 'postroom_console_logins_total', help: 'Console sign-in attempts, by outcome.', labelNames: ['outcome'], registers }),
    httpRequestSeconds: new Histogram({
      name: 'postroom_http_request_seconds',
      help: 'Seconds the console or the API took to answer, by method and status code.',
      labelNames: ['method', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    }),
  };
}

let current: Metrics | undefined;

/** This process's metrics, created on first use. */
export function metrics(): Metrics {
  current ??= createMetrics();
  return current;
}

/** This process's metrics as data, to hand to another process (the Haraka child to its parent). */
export function metricsSnapshot(): Promise<MetricSnapshot> {
  return metrics().registry.getMetricsAsJSON();
}

/**
 * The Prometheus text of this process's metrics merged with other
 * processes' snapshots: counters and histograms add up, and so do memory
 * and CPU (the gateway service is the parent and its Haraka child together).
 */
export async function renderMetrics(others: MetricSnapshot[] = []): Promise<{ contentType: string; body: string }> {
  const own = await metricsSnapshot();
  const merged = others.length ? AggregatorRegistry.aggregate([own, ...others]) : metrics().registry;
  return { contentType: merged.contentType, body: await merged.metrics() };
}
