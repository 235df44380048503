import { SmtpConnection, SmtpConnectionLost, type Envelope, type SmtpReply, type TransactionResult } from './smtp-client';

/**
 * Drive an SMTP server with N concurrent clients, each one connection at a
 * time, one command at a time, sending messages from a shared queue. The
 * same code and the same messages drive every tier (smtp-sink, plain Haraka,
 * Postroom), so differences are the server's.
 *
 * Two modes:
 * - runLoad: each message once (benchmarks); a dropped connection counts as
 *   lost and the client reconnects for the next message.
 * - sendUntilStored: like a real MTA, resend a message after a 4xx or a lost
 *   connection until it gets a 250 or a 5xx (robustness tests). Bounded in
 *   attempts and time.
 */

export interface LoadOptions {
  port: number | (() => number);
  /** Messages already dot-stuffed and terminated (dotStuff()). */
  messages: readonly Buffer[];
  envelope: Envelope | ((index: number) => Envelope);
  clients?: number;
  replyTimeoutMs?: number;
}

export interface LoadResult {
  sent: number;
  accepted: number;
  tempFailed: number;
  refused: number;
  lost: number;
  /** End of DATA → 250, in ms, for accepted messages. */
  latencies: number[];
  wallMs: number;
  /** Accepted messages per second of wall time. */
  rate: number;
  codes: Record<string, number>;
  /** The first few non-250 replies, for the log. */
  samples: string[];
}

const portOf = (port: LoadOptions['port']) => (typeof port === 'function' ? port() : port);
const envelopeOf = (envelope: LoadOptions['envelope'], index: number) => (typeof envelope === 'function' ? envelope(index) : envelope);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const clients = options.clients ?? 20;
  const result: LoadResult = { sent: 0, accepted: 0, tempFailed: 0, refused: 0, lost: 0, latencies: [], wallMs: 0, rate: 0, codes: {}, samples: [] };
  let next = 0;
  const started = performance.now();

  const worker = async () => {
    let connection: SmtpConnection | null = null;
    let connectFailures = 0;
    while (next < options.messages.length) {
      const index = next++;
      while (!connection || connection.closed) {
        try {
          connection = await SmtpConnection.open(portOf(options.port), { replyTimeoutMs: options.replyTimeoutMs });
          connectFailures = 0;
        } catch (err) {
          // A server that refuses connections must not spin this loop forever.
          if (++connectFailures > 20) throw new Error(`cannot connect: ${(err as Error).message}`);
          await sleep(100);
        }
      }
      result.sent++;
      try {
        const { reply, dataToReplyMs } = await connection.send(envelopeOf(options.envelope, index), options.messages[index]);
        result.codes[reply.code] = (result.codes[reply.code] ?? 0) + 1;
        if (reply.code === 250) {
          result.accepted++;
          if (dataToReplyMs !== null) result.latencies.push(dataToReplyMs);
        } else {
          if (reply.code >= 500) result.refused++;
          else result.tempFailed++;
          if (result.samples.length < 5) result.samples.push(`${reply.code} ${reply.text}`);
          if (reply.code === 421) connection.close();
        }
      } catch (err) {
        if (!(err instanceof SmtpConnectionLost)) throw err;
        result.lost++;
        if (result.samples.length < 5) result.samples.push(`lost: ${err.message}`);
      }
    }
    await connection?.quit();
  };

  await Promise.all(Array.from({ length: clients }, worker));
  result.wallMs = performance.now() - started;
  result.rate = result.accepted / (result.wallMs / 1000);
  return result;
}

export interface DeliveryRecord {
  index: number;
  attempts: number;
  /** Every final reply (code 0: connection lost) in order, with the stage that answered and when (Date.now()). */
  outcomes: Array<{ code: number; text: string; stage: TransactionResult['stage'] | 'lost'; at: number; dataEndedAt?: number }>;
  /** Got a 250 at least once. */
  acknowledged: boolean;
  /** Got a 5xx: the sender gives up, as an MTA would bounce. */
  refused: boolean;
}

export interface ResendOptions extends LoadOptions {
  maxAttempts?: number;
  retryDelayMs?: number;
  /** Stop resending after this long (bounded run); unfinished messages stay unacknowledged. */
  deadlineMs?: number;
  /** Called after every final reply (e.g. to kill the server after N acknowledgements). */
  onOutcome?: (record: DeliveryRecord, reply: SmtpReply | null) => void;
}

/** Send every message until it is acknowledged (250) or refused (5xx), resending after 4xx and lost connections. */
export async function sendUntilStored(options: ResendOptions): Promise<DeliveryRecord[]> {
  const clients = options.clients ?? 20;
  const maxAttempts = options.maxAttempts ?? 20;
  const retryDelayMs = options.retryDelayMs ?? 250;
  const deadline = Date.now() + (options.deadlineMs ?? 120_000);
  const records: DeliveryRecord[] = options.messages.map((_, index) => ({ index, attempts: 0, outcomes: [], acknowledged: false, refused: false }));
  // A queue rather than a counter: a message that must be resent goes to the back.
  const queue = records.map((r) => r.index);
  let busy = 0;

  const worker = async () => {
    let connection: SmtpConnection | null = null;
    while (Date.now() < deadline) {
      const index = queue.shift();
      if (index === undefined) {
        // Others may still put a message back for a resend.
        if (busy === 0) break;
        await sleep(20);
        continue;
      }
      const record = records[index];
      busy++;
      try {
        if (!connection || connection.closed) {
          try {
            connection = await SmtpConnection.open(portOf(options.port), { replyTimeoutMs: options.replyTimeoutMs ?? 60_000 });
          } catch (err) {
            if (!(err instanceof SmtpConnectionLost) && !/ECONNREFUSED|ECONNRESET|EPIPE/.test(String(err))) throw err;
            // Server down (being restarted): not an attempt; wait and retry.
            queue.push(index);
            await sleep(retryDelayMs);
            continue;
          }
        }
        record.attempts++;
        let result: TransactionResult | null = null;
        try {
          result = await connection.send(envelopeOf(options.envelope, index), options.messages[index]);
        } catch (err) {
          if (!(err instanceof SmtpConnectionLost)) throw err;
        }
        const reply = result?.reply ?? null;
        record.outcomes.push(result ? { code: result.reply.code, text: result.reply.text, stage: result.stage, at: Date.now(), dataEndedAt: result.dataEndedAt } : { code: 0, text: 'connection lost', stage: 'lost', at: Date.now() });
        if (reply?.code === 250) record.acknowledged = true;
        else if (reply && reply.code >= 500) record.refused = true;
        options.onOutcome?.(record, reply);
        if (!record.acknowledged && !record.refused && record.attempts < maxAttempts) {
          queue.push(index);
          await sleep(retryDelayMs);
        }
        if (reply?.code === 421) connection.close();
      } finally {
        busy--;
      }
    }
    await connection?.quit();
  };

  await Promise.all(Array.from({ length: clients }, worker));
  return records;
}
