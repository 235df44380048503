import crypto from 'node:crypto';
import type mongoose from 'mongoose';
import { isDuplicateKeyError } from '../core/errors';
import type { Store } from '../store';

/**
 * One message per press of Send. The compose form carries a random key; the
 * request that claims it first sends. Another request with the same key — a
 * double click, or Send pressed again while a large upload or a slow SMTP
 * server keeps the first one busy (the browser drops the first response, the
 * server still sends) — waits for the first and answers with its result
 * instead of sending the message a second time. A first request that sent
 * nothing (a problem in the form, the server refused) gives the key up, so
 * the waiting one goes ahead and shows that problem itself.
 */

type ObjectId = mongoose.Types.ObjectId;

const SEND_KEY = /^[A-Za-z0-9-]{16,64}$/;
const KEEP_MS = 24 * 3600 * 1000;
/**
 * A claim still "sending" after this long belongs to a request that never
 * finished (the admin was restarted mid-send; a send is bounded by the 60 s
 * request timeout): the next press with the key may send.
 */
const ABANDONED_MS = 5 * 60 * 1000;

/** A fresh key for a compose form. */
export function newSendKey(): string {
  return crypto.randomUUID();
}

export function isSendKey(value: string): boolean {
  return SEND_KEY.test(value);
}

export interface SendResultPage {
  location: string;
  notice: string;
  noticeKind: 'success' | 'info';
  /** API sends: the reply to give a repeat of the request. */
  response?: { status: number; body: string };
}

export type SendClaim =
  | { claimed: true; finish(result: SendResultPage): Promise<void>; release(): Promise<void> }
  | { claimed: false; result: SendResultPage | null; otherRequest?: boolean };

/**
 * Claim `key` for `ownerId`, or wait (up to `waitMs`) for the request that
 * holds it. `result` is null when that request is still sending after the
 * wait (the Outbox shows it). With a `fingerprint` (API sends), a key held
 * for a request with another fingerprint is `otherRequest`: a client bug
 * (one key for two messages) that must not be answered with the first's result.
 */
export async function claimSendKey(store: Store, ownerId: ObjectId, key: string, options: { now: Date; waitMs: number; pollMs?: number; fingerprint?: string }): Promise<SendClaim> {
  const { SendClaim } = store.models;
  const _id = `${ownerId.toHexString()}:${key}`;
  const deadline = Date.now() + options.waitMs;
  await SendClaim.deleteMany({ createdAt: { $lt: new Date(options.now.getTime() - KEEP_MS) } });
  for (;;) {
    try {
      await SendClaim.create({ _id, createdAt: options.now, fingerprint: options.fingerprint ?? '' });
      return {
        claimed: true,
        finish: async ({ response, ...page }) =>
          void (await SendClaim.updateOne({ _id }, { $set: { state: 'done', ...page, ...(response ? { responseStatus: response.status, responseBody: response.body } : {}) } })),
        release: async () => void (await SendClaim.deleteOne({ _id, state: 'sending' })),
      };
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
    }
    // Held by another request: wait until it has a result, or gives the key up (then claim it here).
    for (;;) {
      const held = await SendClaim.findById(_id).lean();
      if (!held) break;
      if (options.fingerprint !== undefined && held.fingerprint !== options.fingerprint) return { claimed: false, result: null, otherRequest: true };
      if (held.state === 'sending' && held.createdAt.getTime() < options.now.getTime() - ABANDONED_MS) {
        await SendClaim.deleteOne({ _id, state: 'sending', createdAt: held.createdAt });
        break;
      }
      if (held.state === 'done') {
        const page: SendResultPage = { location: held.location, notice: held.notice, noticeKind: held.noticeKind === 'info' ? 'info' : 'success' };
        return { claimed: false, result: held.responseStatus ? { ...page, response: { status: held.responseStatus, body: held.responseBody } } : page };
      }
      if (Date.now() >= deadline) return { claimed: false, result: null };
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 250));
    }
  }
}
