import type mongoose from 'mongoose';
import type SMTPTransport from 'nodemailer/lib/smtp-transport';
import { AppError, isAppError } from '../core/errors';
import { metrics } from '../core/metrics';
import type { TlsMode } from '../accounts/presets';
import { classifyImapError } from '../accounts/imap-login';
import { imapLoginSettings } from '../accounts/mail-accounts';
import { ingest } from '../mail/ingest';
import type { OutboxDoc, OutboxStatus, RecipientState } from '../models/outbox';
import { backoffDelayMs } from '../sync/backoff';
import { claimUnderLease } from '../sync/lease';
import { DEFAULT_LOCK_MS, DEFAULT_RETRY, type SendDeps } from './deps';
import { classifyOAuthSendError, isSmtpTokenRefused, sendOAuthDeps, tokenRefusedError, withSmtpLogin } from './oauth';
import { appendToSentFolder, appendToSentFolderWithOAuth } from './sent-folder';
import { providerFilesSentMail, sendingProblem, smtpService, smtpSettingsFor, usesOAuth, type SendingAccount } from './settings';
import { classifySmtpError, type ClassifiedSmtpError } from './smtp-errors';
import { createSmtpTransport } from './transport';

type ObjectId = mongoose.Types.ObjectId;

/**
 * One attempt at an outbox entry its caller holds the lock of: submit to the
 * recipients the server has not taken yet, then file the message (store it
 * through ingest with source 'sent', append it to the Sent folder) once a
 * recipient was accepted, then record the outcome and release the lock.
 * Used by the request that sends (first attempt) and by the outbox worker
 * (retries, and filing left unfinished by a crash).
 */

export type OutboxEntry = OutboxDoc & { _id: ObjectId; createdAt: Date };

export interface AttemptResult {
  status: OutboxStatus;
  /** The failure of this attempt (permanent or transient); null when the server took every recipient tried. */
  failure: ClassifiedSmtpError | null;
  /** Recipients refused for good in this attempt, with the server's reply. */
  refused: Array<{ address: string; reply: string }>;
  storedMessageId: ObjectId | null;
  nextAttemptAt: Date | null;
}

interface RecipientRow { address: string; state: RecipientState; reply: string; at: Date | null }

function responseCodeOf(err: unknown): number {
  const e = err as { responseCode?: number; response?: string };
  return e.responseCode ?? (Number(/^(\d{3})/.exec(e.response ?? '')?.[1]) || 0);
}

/** Whether every byte is 7-bit (RFC 6152: else the message is 8BITMIME). */
function isSevenBit(raw: Buffer): boolean {
  for (const byte of raw) if (byte > 0x7f) return false;
  return true;
}

/** Submit once; per-recipient states from what nodemailer reports (RFC 5321 §3.3: each RCPT has its own reply). */
async function submit(deps: SendDeps, account: SendingAccount, entry: OutboxEntry, tryList: string[], raw: Buffer, now: Date) {
  const settings = smtpSettingsFor(account, deps.secretBox);
  const target = { host: settings.host, port: settings.port };
  const states = new Map<string, { state: RecipientState; reply: string }>();
  try {
    // One SMTP session; for an OAuth2 account a refused token is refreshed once and the session repeated.
    const info: SMTPTransport.SentMessageInfo = await withSmtpLogin(deps, account._id, settings, async (session) => {
      const transport = await createSmtpTransport(session, { timeouts: deps.smtpTimeouts });
      try {
        return await transport.sendMail({
          // SIZE= (RFC 1870 §6) lets a server refuse an oversized message at MAIL FROM, before the upload.
          // BODY=8BITMIME (RFC 6152 §3) when the bytes are not all 7-bit: a forwarded .eml (message/rfc822 can not
          // be re-encoded, RFC 2046 §5.2.1) often is 8bit, and it went out undeclared. nodemailer adds it when offered.
          envelope: { from: entry.envelopeFrom, to: tryList, size: raw.length, use8BitMime: !isSevenBit(raw) },
          raw,
        });
      } finally {
        transport.close();
      }
    });
    for (const address of (info.accepted ?? []).map(String)) states.set(address.toLowerCase(), { state: 'accepted', reply: String(info.response ?? '').slice(0, 500) });
    const rejectedErrors = (info as { rejectedErrors?: Array<Error & { recipient?: string; response?: string }> }).rejectedErrors ?? [];
    for (const address of (info.rejected ?? []).map(String)) {
      const err = rejectedErrors.find((e) => e.recipient?.toLowerCase() === address.toLowerCase());
      const code = err ? responseCodeOf(err) : 550;
      states.set(address.toLowerCase(), { state: code >= 400 && code < 500 ? 'deferred' : 'refused', reply: (err?.response ?? err?.message ?? '').slice(0, 500) });
    }
    return { states, failure: null as ClassifiedSmtpError | null };
  } catch (err) {
    const failure = classifyOAuthSendError(err)
      ?? (settings.auth.type === 'oauth2' && isSmtpTokenRefused(err)
        ? await tokenRefusedError(deps.store, account._id, classifySmtpError(err, target).error.message)
        : classifySmtpError(err, target));
    // Every recipient refused: nodemailer lists each reply in rejectedErrors.
    const rejectedErrors = (err as { rejectedErrors?: Array<Error & { recipient?: string; response?: string }> }).rejectedErrors ?? [];
    for (const address of tryList) {
      const own = rejectedErrors.find((e) => e.recipient?.toLowerCase() === address.toLowerCase());
      const code = own ? responseCodeOf(own) : 0;
      const transient = own ? code >= 400 && code < 500 : failure.transient;
      states.set(address.toLowerCase(), { state: transient ? 'deferred' : 'refused', reply: (own?.response ?? failure.serverReply ?? failure.error.message).slice(0, 500) || failure.error.message });
    }
    deps.log.info({ outboxId: entry._id, code: failure.error.code, transient: failure.transient, at: now }, 'SMTP submission failed');
    return { states, failure };
  }
}

/** Transactions after the first one of an attempt, for recipients over the server's per-transaction limit. */
const MAX_EXTRA_TRANSACTIONS = 20;

/** Recipients of `tried` the server deferred for its recipients-per-transaction limit (452, 4.5.3 "too many recipients"). */
function overTheLimit(states: Map<string, { state: RecipientState; reply: string }>, tried: string[]): string[] {
  return tried.filter((address) => {
    const state = states.get(address.toLowerCase());
    return state?.state === 'deferred' && /^452\b/.test(state.reply) && (/\b4\.5\.3\b/.test(state.reply) || /too many recipients/i.test(state.reply));
  });
}

/** Append to Sent (unless the provider files sent mail itself) and store through ingest; each step once. */
async function file(deps: SendDeps, account: SendingAccount, entry: OutboxEntry, raw: Buffer, set: Record<string, unknown>, now: Date): Promise<{ pending: boolean }> {
  const log = deps.log.child({ component: 'send', outboxId: entry._id.toHexString() });
  const retry = { ...DEFAULT_RETRY, ...deps.retry };
  let pending = false;
  const acceptedAt = (set.acceptedAt as Date | undefined) ?? entry.acceptedAt ?? now;

  const sentFolder = { ...(entry.sentFolder ?? { state: 'pending', folder: '', attempts: 0, error: '' }) };
  if (sentFolder.state === 'pending') {
    const service = smtpService(account);
    if (providerFilesSentMail(service)) {
      Object.assign(sentFolder, { state: 'skipped', error: `${service} files sent mail in its Sent folder itself` });
    } else if (!account.imap?.host || (!account.imap?.passwordEnc && !usesOAuth(account))) {
      Object.assign(sentFolder, { state: 'skipped', error: 'no IMAP password to append with' });
    } else {
      const imap = account.imap;
      const target = { host: imap.host!, port: imap.port ?? 0 };
      try {
        const options = { timeoutMs: deps.imapTimeoutMs, log, messageId: entry.messageId };
        const result = usesOAuth(account)
          ? await appendToSentFolderWithOAuth(sendOAuthDeps(deps), { accountId: account._id, user: imap.username || account.email, host: target.host, port: target.port, tls: (imap.tls || 'implicit') as TlsMode }, raw, acceptedAt, options)
          : await appendToSentFolder(imapLoginSettings(account as Parameters<typeof imapLoginSettings>[0], deps.secretBox), raw, acceptedAt, options);
        if (result.outcome === 'appended') Object.assign(sentFolder, { state: 'appended', folder: result.folder, error: '' });
        else Object.assign(sentFolder, { state: 'skipped', error: 'the IMAP server has no Sent folder' });
      } catch (err) {
        const error = isAppError(err) && err.code.startsWith('OAUTH_') ? err : classifyImapError(err, target);
        sentFolder.attempts = (sentFolder.attempts ?? 0) + 1;
        sentFolder.error = `${error.code}: ${error.message}`;
        if (sentFolder.attempts >= retry.sentFolderAttempts) sentFolder.state = 'failed';
        else pending = true;
        log.warn({ code: error.code, attempts: sentFolder.attempts }, 'could not append the sent message to the Sent folder');
      }
    }
    set.sentFolder = sentFolder;
  }

  if (!entry.storedMessageId) {
    const accepted = ((set.recipients as RecipientRow[] | undefined) ?? (entry.recipients as RecipientRow[])).filter((r) => r.state === 'accepted').map((r) => r.address);
    try {
      const result = await ingest({ store: deps.store, log: deps.log, associate: deps.associate }, {
        raw,
        mailboxKey: account._id.toHexString(),
        accountId: account._id,
        ownerId: account.ownerId,
        // `at` is the acceptance time, so a retried filing records the very same source.
        source: { kind: 'sent', at: acceptedAt, queueId: entry._id.toHexString(), envelopeFrom: entry.envelopeFrom, envelopeTo: accepted },
        receivedAt: acceptedAt,
        auth: { verdict: 'none', reason: 'sent from Postroom by the account owner (authenticated SMTP submission)', results: '' },
        maxBytes: Math.max(deps.maxMessageBytes, raw.length),
      });
      if (result.id) set.storedMessageId = result.id;
    } catch (err) {
      pending = true;
      log.error({ err }, 'the sent message could not be stored yet; the outbox worker will retry');
    }
  }
  return { pending };
}

/** Delete the outbox's copies once nothing needs them: the stored Message has its own raw blob. */
async function dropBlobs(deps: SendDeps, entry: OutboxEntry, set: Record<string, unknown>): Promise<void> {
  const ids = [entry.transmitBlobId, entry.fileBlobId].filter((id): id is ObjectId => Boolean(id));
  const unique = ids.filter((id, index) => ids.findIndex((other) => other.equals(id)) === index);
  const results = await Promise.allSettled(unique.map((id) => deps.store.blobs.delete(id)));
  if (results.every((r) => r.status === 'fulfilled')) {
    set.transmitBlobId = null;
    set.fileBlobId = null;
  }
}

/**
 * Run one attempt and save its outcome (releasing the lock held by
 * `holder`). Never throws for SMTP or IMAP trouble: that is the outcome.
 */
/** Failures only the user can put right (sign in again): the account is marked, and the message waits for them. */
const NEEDS_THE_USER = new Set(['AUTH_FAILED', 'OAUTH_REAUTH_NEEDED', 'OAUTH_NOT_CONNECTED']);

/**
 * Failures a queued message outlives. The first attempt spoke TLS with the same settings (else it was refused
 * then, not queued), so a TLS failure on a retry means the server changed: a certificate renewed from a CA
 * this machine does not trust yet, an expired one, or someone in between. Verification stays on, and the
 * message is retried until it gives up (the Outbox shows why) instead of failing at the first such retry.
 */
const OUTLIVED_IN_THE_BACKGROUND = new Set(['TLS_ERROR']);

export interface AttemptOptions {
  /**
   * Nobody is waiting on the answer (the outbox worker). A login refused then
   * keeps the message queued, waiting for the user to authenticate again
   * (and a TLS failure, waiting for the server to be put right),
   * instead of failing it: a request that sends shows the refusal with the
   * form still filled in, but a retry's message exists only here.
   */
  background?: boolean;
}

export async function attemptDelivery(deps: SendDeps, entry: OutboxEntry, holder: string, options: AttemptOptions = {}): Promise<AttemptResult> {
  const now = deps.clock?.() ?? new Date();
  const retry = { ...DEFAULT_RETRY, ...deps.retry };
  const log = deps.log.child({ component: 'send', outboxId: entry._id.toHexString(), accountId: entry.accountId.toHexString() });
  const account = (await deps.store.models.MailAccount.findById(entry.accountId).lean()) as unknown as SendingAccount | null;
  const set: Record<string, unknown> = {};
  const recipients: RecipientRow[] = (entry.recipients as RecipientRow[]).map((r) => ({ address: r.address, state: r.state, reply: r.reply ?? '', at: r.at ?? null }));
  let failure: ClassifiedSmtpError | null = null;
  const refusedNow: Array<{ address: string; reply: string }> = [];
  let filingPending = false;

  const tryList = recipients.filter((r) => r.state === 'pending' || r.state === 'deferred').map((r) => r.address);
  if (tryList.length > 0) {
    const problem = account ? sendingProblem(account) : 'the mail account was deleted';
    if (!account) {
      failure = { error: new AppError('ACCOUNT_NOT_SENDABLE', `Not sent: ${problem}.`, { status: 409 }), transient: false, serverReply: '' };
      for (const r of recipients) if (tryList.includes(r.address)) Object.assign(r, { state: 'refused', reply: failure.error.message, at: now });
      refusedNow.push(...tryList.map((address) => ({ address, reply: failure!.error.message })));
    } else if (problem) {
      // The user can put this right (re-authenticate, turn sending back on): wait, until the entry gives up.
      failure = { error: new AppError('ACCOUNT_NOT_SENDABLE', `Waiting: ${problem}.`, { status: 409 }), transient: true, serverReply: '' };
      for (const r of recipients) if (tryList.includes(r.address)) Object.assign(r, { state: 'deferred', reply: failure.error.message, at: now });
    } else {
      const transmit = await deps.store.blobs.get(entry.transmitBlobId!);
      const outcome = await submit(deps, account, entry, tryList, transmit, now);
      // RFC 5321 §4.5.3.1.10: a server at its recipients-per-transaction limit answers 452 to the rest, which the
      // client sends in another transaction. They waited for the backoff (a minute, then more) as if the server
      // were in trouble, and a message to a team went out in parts over minutes: now the next transaction follows
      // at once, as long as each one gets some recipients through.
      for (let round = 0, left = overTheLimit(outcome.states, tryList); round < MAX_EXTRA_TRANSACTIONS && left.length > 0 && left.length < tryList.length; round++) {
        const next = await submit(deps, account, entry, left, transmit, now);
        for (const [address, state] of next.states) outcome.states.set(address, state);
        const stillLeft = overTheLimit(next.states, left);
        if (next.failure && stillLeft.length === 0) outcome.failure = next.failure;
        if (stillLeft.length === left.length) break;
        left = stillLeft;
      }
      failure = outcome.failure;
      if (failure && options.background && (NEEDS_THE_USER.has(failure.error.code) || OUTLIVED_IN_THE_BACKGROUND.has(failure.error.code))) {
        const waiting = `Waiting: ${failure.error.message}`.slice(0, 500);
        failure = { ...failure, transient: true };
        for (const address of tryList) outcome.states.set(address.toLowerCase(), { state: 'deferred', reply: waiting });
      }
      for (const r of recipients) {
        const state = outcome.states.get(r.address.toLowerCase());
        if (!state) continue;
        Object.assign(r, { state: state.state, reply: state.reply, at: now });
        if (state.state === 'refused') refusedNow.push({ address: r.address, reply: state.reply });
      }
      if (failure?.error.code === 'AUTH_FAILED') {
        // Further sends would fail the same way (and feed the provider's lockout): stop until the user re-authenticates.
        await deps.store.models.MailAccount.updateOne(
          { _id: account._id },
          { $set: { 'smtp.status': 'failing', 'smtp.lastError': failure.error.message, 'smtp.lastErrorCode': failure.error.code, 'smtp.authenticatedAt': null } },
        );
      }
    }
    set.attempts = (entry.attempts ?? 0) + 1;
    set.lastError = failure ? failure.error.message : '';
    set.lastErrorCode = failure ? failure.error.code : '';
  }

  // Give up on recipients the server kept deferring for too long (RFC 5321 §4.5.4.1).
  const expired = now.getTime() - new Date(entry.createdAt).getTime() >= retry.giveUpAfterMs;
  if (expired) {
    for (const r of recipients) {
      if (r.state !== 'deferred') continue;
      Object.assign(r, { state: 'refused', reply: `gave up after ${set.attempts ?? entry.attempts} attempts: ${r.reply}`.slice(0, 500), at: now });
      refusedNow.push({ address: r.address, reply: r.reply });
    }
  }
  set.recipients = recipients;

  const anyAccepted = recipients.some((r) => r.state === 'accepted');
  if (anyAccepted && !entry.acceptedAt) set.acceptedAt = now;
  const deliveryPending = recipients.some((r) => r.state === 'pending' || r.state === 'deferred');
  if (anyAccepted && account && (!entry.storedMessageId || entry.sentFolder?.state === 'pending')) {
    const raw = await deps.store.blobs.get(entry.fileBlobId!);
    filingPending = (await file(deps, account, entry, raw, set, now)).pending;
  }

  const status: OutboxStatus = deliveryPending ? 'queued' : anyAccepted ? 'sent' : 'failed';
  set.status = status;
  let nextAttemptAt: Date | null = null;
  if (deliveryPending) nextAttemptAt = new Date(now.getTime() + backoffDelayMs(Number(set.attempts ?? entry.attempts ?? 1), retry.baseMs, retry.capMs));
  else if (filingPending) nextAttemptAt = new Date(now.getTime() + backoffDelayMs(Number((set.sentFolder as { attempts?: number } | undefined)?.attempts ?? 1) || 1, retry.baseMs, retry.capMs));
  set.nextAttemptAt = nextAttemptAt;
  if (!nextAttemptAt) {
    set.finishedAt = now;
    // A message that failed with nobody waiting on it exists nowhere else (the form it came from is long gone):
    // its copy stays for the Outbox to offer as a download. A sent one is stored; a refused send shows its form.
    if (status !== 'failed' || !options.background) await dropBlobs(deps, entry, set);
  }
  set.lockedUntil = null;
  set.lockedBy = '';

  const saved = await deps.store.models.Outbox.updateOne({ _id: entry._id, lockedBy: holder }, { $set: set });
  if (saved.matchedCount === 0) log.warn({ holder }, 'outbox entry lock was lost during the attempt; another sender may repeat it');
  if (nextAttemptAt && deliveryPending) deps.onQueued?.(nextAttemptAt);
  if (tryList.length > 0) metrics().outboundAttempts.inc({ status, code: failure?.error.code ?? 'none' });
  log.info({ status, attempts: set.attempts ?? entry.attempts, accepted: recipients.filter((r) => r.state === 'accepted').length, refused: refusedNow.length, next: nextAttemptAt }, 'outbox attempt done');
  return { status, failure, refused: refusedNow, storedMessageId: (set.storedMessageId as ObjectId | undefined) ?? entry.storedMessageId ?? null, nextAttemptAt };
}

/**
 * Take the lock of an entry that is due (worker side). Null when none is due
 * or another sender holds it.
 *
 * The entry's lease (sync/lease.ts claimUnderLease, a unique insert) decides
 * which worker writes the lock; the lock then keeps the others off until the
 * attempt is done. A conditional findAndModify alone would not do: FerretDB
 * 1.24 runs it as a read, then a write, so two workers (`npm start` and
 * `npm run syncer` on the embedded store) could both get the entry and both
 * send it.
 */
export async function claimDueEntry(deps: SendDeps, holder: string, now: Date): Promise<OutboxEntry | null> {
  const { Outbox } = deps.store.models;
  const lockMs = deps.lockMs ?? DEFAULT_LOCK_MS;
  const due = { nextAttemptAt: { $lte: now }, $or: [{ lockedUntil: null }, { lockedUntil: { $lte: now } }] };
  const candidate = await Outbox.findOne(due, { _id: 1 }).sort({ nextAttemptAt: 1 }).lean();
  if (!candidate) return null;
  // Read again under the lease: a worker that attempted it meanwhile has moved it on (or finished it).
  return claimUnderLease(deps.store, `outbox:${candidate._id.toHexString()}`, holder, lockMs, async () =>
    (await Outbox.findOneAndUpdate(
      { _id: candidate._id, ...due },
      { $set: { lockedUntil: new Date(now.getTime() + lockMs), lockedBy: holder } },
      // No projection: FerretDB 1.24 does not implement findAndModify "fields".
      { returnDocument: 'after' },
    ).lean()) as OutboxEntry | null, now);
}
