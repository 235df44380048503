import type { Types } from 'mongoose';
import { startSerialLoop } from '../core/serial-loop';
import http from 'node:http';
import https from 'node:https';
import type { SecretBox } from '../core/crypto';
import type { Logger } from '../core/log';
import type { Store } from '../store';
import { secretContext, webhookTargetUrl } from './webhooks';
import { SIGNATURE_HEADER, signatureHeader } from './webhook-signature';
import { checkedLookup, type CheckedHost, type LookupAll } from '../core/checked-host';
import { checkWebhookTarget, parseWebhookUrl } from './webhook-target';
import { claimUnderLease, newHolderId } from '../sync/lease';

/**
 * The webhook dispatcher: claims due outbox rows, POSTs them signed, and
 * records each attempt. Any process may run it (several at once too): a
 * row is locked (`lockedUntil`) by the one dispatcher that wins its lease
 * (sync/lease.ts claimUnderLease: a unique insert, which decides on FerretDB
 * too), so two loops do not send the same row concurrently; a process that
 * dies mid-send leaves the row to be retried when the lock expires. Delivery is therefore at least once — receivers de-duplicate by
 * the Postroom-Event-Id header.
 */

/**
 * Default retry schedule: 30 s doubling to a 6 h cap — attempts at about
 * 0, 0.5, 1.5, 3.5, 7.5 … min, the last ones 6 h apart — until the row's
 * 24 h window closes (about 13 attempts).
 */
export function defaultBackoffMs(attempt: number): number {
  return Math.min(30_000 * 2 ** Math.max(0, attempt - 1), 6 * 3600 * 1000);
}

export interface DispatchOptions {
  /** Delay before attempt n+1 after n failed attempts (injectable so tests run in milliseconds). */
  backoffMs?: (failedAttempts: number) => number;
  timeoutMs?: number;
  /** How long a claimed row stays invisible to other dispatchers. */
  leaseMs?: number;
  lookup?: LookupAll;
  now?: () => Date;
  userAgent?: string;
  /** Who claims deliveries (sync/lease.ts holder id); one per dispatcher. */
  holder?: string;
}

export interface DispatchDeps {
  store: Store;
  log: Logger;
  secretBox: SecretBox;
}

interface AttemptResult {
  ok: boolean;
  statusCode: number;
  error: string;
  durationMs: number;
}

const MAX_ERROR_LENGTH = 300;

type ObjectId = Types.ObjectId;

/**
 * POST the body; never follows redirects (a 3xx is a failed attempt: redirects would bypass the target check).
 * `timeoutMs` bounds the whole attempt, not only each silence on the socket:
 * a receiver that answers a byte at a time would otherwise hold the
 * dispatcher (and every other webhook's deliveries behind it) for ever.
 */
function post(url: URL, body: string, headers: Record<string, string>, options: { timeoutMs: number; target: CheckedHost }): Promise<AttemptResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    let settled = false;
    let statusCode = 0;
    const settle = (result: Omit<AttemptResult, 'durationMs'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve({ ...result, durationMs: Date.now() - started });
    };
    const transport = url.protocol === 'https:' ? https : http;
    const request = transport.request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) },
        lookup: checkedLookup(options.target) as unknown as http.RequestOptions['lookup'],
        timeout: options.timeoutMs,
      },
      (response) => {
        statusCode = response.statusCode ?? 0;
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          // Keep only the start of the answer for the delivery log.
          if (text.length < MAX_ERROR_LENGTH) text += chunk;
        });
        response.on('end', () => {
          const ok = statusCode >= 200 && statusCode < 300;
          settle({ ok, statusCode, error: ok ? '' : `HTTP ${statusCode}${text ? `: ${text.trim().slice(0, MAX_ERROR_LENGTH)}` : ''}` });
        });
        response.on('error', (err) => settle({ ok: false, statusCode, error: err.message }));
      },
    );
    const deadline = setTimeout(() => {
      const error = `ETIMEDOUT: no complete answer within ${options.timeoutMs} ms${statusCode ? ` (HTTP ${statusCode} so far)` : ''}`;
      // Not delivered: a status line without the end of the answer does not count (at least once; receivers de-duplicate).
      settle({ ok: false, statusCode: 0, error });
      request.destroy();
    }, options.timeoutMs);
    request.on('timeout', () => request.destroy(Object.assign(new Error(`no answer within ${options.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    request.on('error', (err: NodeJS.ErrnoException) => {
      settle({ ok: false, statusCode, error: `${err.code ? `${err.code}: ` : ''}${err.message}`.slice(0, MAX_ERROR_LENGTH) });
    });
    request.end(body);
  });
}

/**
 * Send every due delivery once (up to `limit`). Returns how many attempts
 * were made. Call it from a timer loop (startWebhookDispatcher) or a test.
 */
export async function dispatchDueDeliveries(deps: DispatchDeps, options: DispatchOptions = {}, limit = 100): Promise<number> {
  const { WebhookDelivery, Webhook } = deps.store.models;
  const now = options.now ?? (() => new Date());
  const backoff = options.backoffMs ?? defaultBackoffMs;
  const leaseMs = options.leaseMs ?? 60_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const log = deps.log.child({ component: 'webhooks' });
  const holder = options.holder ?? newHolderId();
  /**
   * Webhooks whose receiver failed in this pass: their other due deliveries
   * wait for the next pass. A receiver that is down (each attempt lasting
   * up to the timeout) then costs one attempt per pass, instead of one per
   * queued event while every other webhook's events wait behind them.
   */
  const failing: ObjectId[] = [];
  let attempts = 0;

  while (attempts < limit) {
    const at = now();
    const due = { status: 'pending' as const, nextAttemptAt: { $lte: at }, lockedUntil: { $lte: at } };
    const notFailing = failing.length > 0 ? { webhookId: { $nin: failing } } : {};
    const candidate = await WebhookDelivery.findOne({ ...due, ...notFailing }, { _id: 1 }).sort({ nextAttemptAt: 1 }).lean();
    if (!candidate) break;
    const row = await claimUnderLease(deps.store, `webhook-delivery:${candidate._id.toHexString()}`, holder, leaseMs, () =>
      WebhookDelivery.findOneAndUpdate({ _id: candidate._id, ...due }, { $set: { lockedUntil: new Date(at.getTime() + leaseMs) } }, { returnDocument: 'after' }).lean(), at);
    // Another dispatcher has it (or sent it meanwhile): leave the rest of the queue to it until the next pass.
    if (!row) break;
    attempts++;

    const hook = await Webhook.findById(row.webhookId).lean();
    let result: AttemptResult;
    if (!hook || hook.enabled === false) {
      await WebhookDelivery.updateOne({ _id: row._id }, { $set: { status: 'failed', lastError: hook ? 'webhook is disabled' : 'webhook was deleted', lockedUntil: new Date(0) } });
      continue;
    }
    try {
      const url = parseWebhookUrl(webhookTargetUrl(hook, deps.secretBox));
      const target = await checkWebhookTarget(url, { allowPrivate: Boolean(hook.allowPrivate), lookup: options.lookup, timeoutMs });
      const secret = deps.secretBox.open(hook.secretEnc, secretContext(hook._id));
      const timestamp = Math.floor(now().getTime() / 1000);
      result = await post(
        url,
        row.payload,
        {
          'Content-Type': 'application/json',
          'User-Agent': options.userAgent ?? 'Postroom-Webhooks/1',
          [SIGNATURE_HEADER]: signatureHeader(secret, row.payload, timestamp),
          'Postroom-Event-Id': row.eventId,
          'Postroom-Event-Type': row.eventType,
          'Postroom-Delivery-Attempt': String((row.attempts ?? 0) + 1),
        },
        { timeoutMs, target },
      );
    } catch (err) {
      result = { ok: false, statusCode: 0, error: (err as Error).message.slice(0, MAX_ERROR_LENGTH), durationMs: 0 };
    }

    const finished = now();
    const failedAttempts = (row.attempts ?? 0) + 1;
    const entry = { at: finished, statusCode: result.statusCode, error: result.error, durationMs: result.durationMs };
    const base = { attempts: failedAttempts, lastAttemptAt: finished, lastStatusCode: result.statusCode, lastError: result.error, lockedUntil: new Date(0) };
    if (result.ok) {
      await WebhookDelivery.updateOne({ _id: row._id }, { $set: { ...base, status: 'delivered', deliveredAt: finished }, $push: { log: entry } });
      log.info({ webhookId: hook._id, eventId: row.eventId, statusCode: result.statusCode, attempt: failedAttempts }, 'webhook delivered');
    } else {
      failing.push(hook._id);
      const next = new Date(finished.getTime() + backoff(failedAttempts));
      const giveUp = next.getTime() > new Date(row.expiresAt).getTime();
      await WebhookDelivery.updateOne(
        { _id: row._id },
        { $set: { ...base, status: giveUp ? 'failed' : 'pending', nextAttemptAt: giveUp ? finished : next }, $push: { log: entry } },
      );
      log.warn({ webhookId: hook._id, eventId: row.eventId, attempt: failedAttempts, error: result.error, retryAt: giveUp ? null : next }, giveUp ? 'webhook delivery failed; giving up' : 'webhook delivery failed; will retry');
    }
    await Webhook.updateOne({ _id: hook._id }, { $set: { lastDeliveryAt: finished, lastStatus: result.ok ? `${result.statusCode}` : result.error.slice(0, 120) } });
  }
  return attempts;
}

export interface Dispatcher {
  /** Run a pass now (e.g. right after events were queued). */
  kick(): void;
  stop(): Promise<void>;
}

/** A timer loop around dispatchDueDeliveries; passes never overlap within one process. */
export function startWebhookDispatcher(deps: DispatchDeps, options: DispatchOptions & { intervalMs?: number } = {}): Dispatcher {
  const loop = startSerialLoop(() => dispatchDueDeliveries(deps, options), options.intervalMs ?? 5000, (err) =>
    deps.log.error({ err, component: 'webhooks' }, 'webhook dispatch pass failed'),
  );
  return { kick: loop.kick, stop: loop.stop };
}
