/**
 * Fixtures for the syncer tests: configuration, IMAP-enabled accounts with
 * sealed passwords, RFC 5322 test messages, a log capture.
 */
import crypto from 'node:crypto';
import mongoose from 'mongoose';
import { loadConfig, type Config } from '../../gateway/core/config';
import { randomToken, SecretBox } from '../../gateway/core/crypto';
import type { Associator } from '../../gateway/mail/ingest';
import type { Store } from '../../gateway/store';
import type { Syncer } from '../../gateway/sync/schedule';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';
import { openTestStore } from '../support/store';

export const TEST_SECRET_KEY = crypto.randomBytes(32);
export const testSecrets = new SecretBox(TEST_SECRET_KEY);
export const DAY = 86_400_000;

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ NODE_ENV: 'test', SECRET_KEY: TEST_SECRET_KEY.toString('hex'), IMAP_BACKFILL_DAYS: '30', LOG_LEVEL: 'silent', ...env });
}

/** A fresh mailbox name per test, so tests share one Dovecot without seeing each other's mail. */
export function uniqueEmail(prefix: string): string {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}@acme.test`;
}

const RFC2822_DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const RFC2822_MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
function rfc2822(date: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${RFC2822_DAYS[date.getUTCDay()]}, ${date.getUTCDate()} ${RFC2822_MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ${p(date.getUTCHours())}:${p(date.getUTCMinutes())}:${p(date.getUTCSeconds())} +0000`;
}

export interface TestMessage {
  messageId: string;
  subject: string;
  date: Date;
  raw: string;
}

export function makeMessage(options: { to: string; subject?: string; date?: Date; body?: string; extraHeaders?: string[] }): TestMessage {
  const messageId = `${crypto.randomBytes(8).toString('hex')}@customer.test`;
  const date = options.date ?? new Date();
  const subject = options.subject ?? `Quote ${messageId.slice(0, 6)}`;
  const raw = [
    'From: Alice Customer <alice@customer.test>',
    `To: ${options.to}`,
    `Subject: ${subject}`,
    `Date: ${rfc2822(date)}`,
    `Message-ID: <${messageId}>`,
    ...(options.extraHeaders ?? []),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    options.body ?? `Hello,\r\nthis is message ${messageId}.\r\n`,
  ].join('\r\n');
  return { messageId, subject, date, raw };
}

export interface TestAccount {
  id: string;
  email: string;
  password: string;
  ownerId: string;
}

/** A user and a mail account with IMAP on and authenticated, password sealed like the console does. */
export async function createImapAccount(
  store: Store,
  dovecot: DovecotServer,
  options: { email?: string; password?: string; storedPassword?: string; folders?: string[]; forwarding?: Record<string, unknown>; imap?: Record<string, unknown> } = {},
): Promise<TestAccount> {
  const email = options.email ?? uniqueEmail('bob');
  const password = options.password ?? `pw-${randomToken(9)}`;
  await dovecot.addUser(email, password);
  const owner = await store.models.User.create({ email: `owner-${email}`, dropboxToken: randomToken(12) });
  const token = randomToken(12).toLowerCase().replace(/[^a-z0-9]/g, 'x');
  const account = new store.models.MailAccount({
    ownerId: owner._id,
    email,
    domain: 'acme.test',
    forwardingToken: token,
    forwardingAddress: `${email.replace(/[^a-z0-9]/gi, '-')}.${token}@in.postroom.test`,
    forwarding: options.forwarding ?? {},
    imap: {
      enabled: true,
      host: dovecot.host,
      port: dovecot.tlsPort,
      tls: 'implicit',
      username: email,
      status: 'authenticated',
      folders: options.folders ?? [],
      ...options.imap,
    },
  });
  account.imap!.passwordEnc = testSecrets.seal(options.storedPassword ?? password, account._id.toString());
  await account.save();
  return { id: account._id.toString(), email, password, ownerId: owner._id.toString() };
}

export { captureLog, type CapturedLog } from '../support/log';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * An INBOX of `count` messages for `account`, one a minute up to now,
 * oldest first (UIDs in date order): the backfill takes them newest first.
 */
export async function fillInbox(dovecot: DovecotServer, account: TestAccount, count: number): Promise<TestMessage[]> {
  const now = Date.now();
  const messages = Array.from({ length: count }, (_, i) => makeMessage({ to: account.email, date: new Date(now - (count - i) * 60_000) }));
  await dovecot.appendMany(account.email, 'INBOX', messages.map((m) => ({ raw: m.raw, date: m.date })));
  return messages;
}

/**
 * An associator that lets the first `open` messages of a pass through and
 * holds every later one until release(): a pass stopped mid-sync, for as long
 * as the test needs it there.
 */
export function gatedAssociator(open: number): Associator & { release(): void } {
  let seen = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  return {
    plan: async () => {
      seen += 1;
      if (seen > open) await released;
      return { objectIds: [] };
    },
    commit: async () => undefined,
    repair: async () => undefined,
    release,
  };
}

export interface SyncWorld {
  store: Awaited<ReturnType<typeof openTestStore>>;
  dovecot: DovecotServer;
  /** Syncers the test started; stopped after the describe. */
  syncers: Syncer[];
}

/**
 * The usual world of a syncer test, as mocha hooks of the calling describe:
 * its own database and the shared Dovecot (or one of its own, for a test
 * that stops it). The fields are there once the `before` hook ran.
 */
export function useSyncWorld(label: string, options: { ownDovecot?: boolean } = {}): SyncWorld {
  const world = { syncers: [] } as unknown as SyncWorld;
  before(async () => {
    world.store = await openTestStore(label);
    world.dovecot = options.ownDovecot ? await startDovecot() : await shared('dovecot', () => startDovecot());
  });
  after(async () => {
    await Promise.all(world.syncers.map((s) => s.stop()));
    if (options.ownDovecot) await world.dovecot?.stop();
    await world.store?.drop();
  });
  return world;
}

/** Wait (no timing assumed) until the INBOX cursor of an account covers at least `done` stored messages. */
export async function waitForInboxCursor(store: Store, account: TestAccount, done: number): Promise<void> {
  const inbox = { accountId: new mongoose.Types.ObjectId(account.id), folder: 'INBOX' };
  while (((await store.models.FolderState.findOne(inbox).lean())?.backfill?.done ?? 0) < done) await sleep(50);
}
