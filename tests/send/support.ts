/**
 * Real servers and fixtures for the send tests: a submission server (npm
 * smtp-server) that requires AUTH, speaks STARTTLS or implicit TLS with the
 * test CA's certificate, records what it receives and can be told to refuse
 * (5xx) or defer (4xx) recipients or data; the shared test Dovecot for the
 * Sent folder; accounts authenticated through the real IMAP and SMTP steps.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import mongoose from 'mongoose';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { authenticateMailAccountImap, createMailAccount, createUser, updateMailAccount, SYSTEM_ACTOR, type PublicUser, type Viewer } from '../../gateway/accounts';
import { SecretBox } from '../../gateway/core/crypto';
import { createLogger } from '../../gateway/core/log';
import { authenticateMailAccountSmtp, type SendDeps } from '../../gateway/send';
import { crmAssociator } from '../../gateway/crm/link';
import { ensureTestCertificates } from '../support/certs';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';
import { openTestStore } from '../support/store';

export type TestStore = Awaited<ReturnType<typeof openTestStore>>;
export const log = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
export const GATEWAY_DOMAIN = 'in.postroom.test';

export interface ReceivedMessage {
  user: string;
  from: string;
  /** MAIL FROM parameters (SIZE, BODY …), as the server read them. */
  mailFromArgs: Record<string, string | true>;
  to: string[];
  raw: Buffer;
  parsed: ParsedMail;
}

/** What the server answers; each rule is consulted per command. */
export interface SmtpBehaviour {
  /** Recipient → the reply to RCPT TO (e.g. '550 5.1.1 No such user'), or undefined to accept. */
  rcpt?: (address: string, acceptedInTransaction: number) => string | undefined;
  /** Reply to the end of DATA, or undefined to accept. */
  data?: () => string | undefined;
  /** Wait this long before replying to the end of DATA (a slow server). */
  dataDelayMs?: number;
  /** Reply to the end of DATA only once this settles (a server held as long as the test needs). */
  dataGate?: Promise<unknown>;
}

export interface RecordingSmtp {
  port: number;
  host: string;
  received: ReceivedMessage[];
  /** AUTH attempts as user names, successful or not. */
  logins: string[];
  behaviour: SmtpBehaviour;
  addUser(user: string, password: string): void;
  /** Resolve when `count` messages have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

function replyError(reply: string): Error & { responseCode: number } {
  const code = Number(reply.slice(0, 3));
  return Object.assign(new Error(reply.slice(4)), { responseCode: code });
}

/**
 * A submission server on 127.0.0.1: AUTH PLAIN/LOGIN required, and only over
 * TLS (`tls: 'starttls'` offers STARTTLS, `'implicit'` is TLS from the start).
 */
export async function startRecordingSmtp(options: { tls: 'starttls' | 'implicit'; users?: Record<string, string>; size?: number }): Promise<RecordingSmtp> {
  const certs = ensureTestCertificates();
  const users = new Map(Object.entries(options.users ?? {}));
  const received: ReceivedMessage[] = [];
  const logins: string[] = [];
  const behaviour: SmtpBehaviour = {};
  const waiters: Array<() => void> = [];
  const serverOptions: SMTPServerOptions = {
    secure: options.tls === 'implicit',
    key: fs.readFileSync(certs.keyFile),
    cert: fs.readFileSync(certs.certFile),
    authMethods: ['PLAIN', 'LOGIN'],
    // AUTH only after TLS (RFC 4954 §4: no plaintext passwords), which makes STARTTLS mandatory for the client.
    allowInsecureAuth: false,
    authOptional: false,
    size: options.size,
    logger: false,
    onAuth(auth, _session, callback) {
      logins.push(auth.username ?? '');
      if (auth.username && users.get(auth.username) === auth.password) return callback(null, { user: auth.username });
      return callback(Object.assign(new Error('5.7.8 Username and Password not accepted'), { responseCode: 535 }));
    },
    onRcptTo(address, session, callback) {
      const reply = behaviour.rcpt?.(address.address, session.envelope.rcptTo.length);
      if (reply) return callback(replyError(reply));
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => void Promise.resolve(behaviour.dataGate).then(() => setTimeout(() => {
        // What real servers do when the upload exceeds the SIZE they announced (RFC 1870 §6.3).
        if ((stream as { sizeExceeded?: boolean }).sizeExceeded) return callback(replyError(`552 5.3.4 Message size exceeds fixed limit of ${options.size} bytes`));
        const reply = behaviour.data?.();
        if (reply) return callback(replyError(reply));
        const raw = Buffer.concat(chunks);
        simpleParser(raw).then((parsed) => {
          received.push({
            user: String(session.user),
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            mailFromArgs: (session.envelope.mailFrom ? session.envelope.mailFrom.args : false) || {},
            to: session.envelope.rcptTo.map((r) => r.address),
            raw,
            parsed,
          });
          for (const wake of waiters.splice(0)) wake();
          callback(null, `2.0.0 Ok: queued as ${crypto.randomBytes(5).toString('hex').toUpperCase()}`);
        }, (err: Error) => callback(err));
      }, behaviour.dataDelayMs ?? 0)));
    },
  };
  const server = new SMTPServer(serverOptions);
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    host: '127.0.0.1',
    received,
    logins,
    behaviour,
    addUser: (user, password) => void users.set(user, password),
    async waitFor(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (received.length < count) {
        if (Date.now() > deadline) throw new Error(`expected ${count} messages at the SMTP server, got ${received.length}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100);
        });
      }
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export function sharedDovecot(): Promise<DovecotServer> {
  return shared('dovecot', () => startDovecot());
}

export interface SendFixture {
  store: TestStore;
  secretBox: SecretBox;
  user: PublicUser;
  viewer: Viewer;
  accountId: string;
  email: string;
  password: string;
}

/**
 * A user with a mail account whose IMAP login (test Dovecot) and SMTP login
 * (the recording server) were both authenticated for real, sending turned on.
 */
export async function sendableAccount(
  store: TestStore,
  secretBox: SecretBox,
  servers: { dovecot: DovecotServer; smtp: RecordingSmtp; smtpTls: 'starttls' | 'implicit' },
  options: { email?: string; userEmail?: string; name?: string; /** Another account of this user instead of a new user. */ user?: PublicUser } = {},
): Promise<SendFixture> {
  const tag = crypto.randomBytes(4).toString('hex');
  const email = options.email ?? `sender-${tag}@acme.test`;
  const password = `pw-${tag}-secret`;
  await servers.dovecot.addUser(email, password);
  servers.smtp.addUser(email, password);
  const user = options.user ?? await createUser(store, { email: options.userEmail ?? `user-${tag}@acme.test`, password: 'correct-horse-battery-staple', role: 'employee', name: options.name ?? 'Bob Sender' });
  const viewer: Viewer = { id: new mongoose.Types.ObjectId(user.id), role: user.role };
  const account = await createMailAccount(store, user.id, email, { gatewayDomain: GATEWAY_DOMAIN });
  const change = { store, secretBox, actor: SYSTEM_ACTOR };
  await updateMailAccount(change, viewer, account.id, {
    imap: { enabled: true, service: 'custom', host: servers.dovecot.host, port: servers.dovecot.tlsPort, tls: 'implicit', username: email, password },
    smtp: { enabled: true, service: 'custom', host: servers.smtp.host, port: servers.smtp.port, tls: servers.smtpTls, sameCredentials: true },
  });
  const imap = await authenticateMailAccountImap({ ...change, timeoutMs: 10_000 }, viewer, account.id);
  if (imap.error) throw imap.error;
  const smtp = await authenticateMailAccountSmtp({ ...change, timeoutMs: 10_000 }, viewer, account.id);
  if (smtp.error) throw smtp.error;
  return { store, secretBox, user, viewer, accountId: account.id, email, password };
}

export function sendDeps(store: TestStore, secretBox: SecretBox, overrides: Partial<SendDeps> = {}): SendDeps {
  return {
    store,
    log,
    secretBox,
    associate: crmAssociator({ store, log, settings: { businessDomains: ['acme.test'] } }),
    rateLimit: { max: 1000, windowMs: 3_600_000 },
    gatewayDomain: GATEWAY_DOMAIN,
    maxMessageBytes: 10 * 1024 * 1024,
    smtpTimeouts: { connectionTimeoutMs: 5000, greetingTimeoutMs: 5000, socketTimeoutMs: 10_000 },
    imapTimeoutMs: 10_000,
    ...overrides,
  };
}

export function newSecretBox(): SecretBox {
  return new SecretBox(crypto.randomBytes(32));
}

/** A CRM contact for `email`, so association has something to link. */
export async function makeContact(store: TestStore, name: string, email: string) {
  return store.models.CrmObject.create({ type: 'contact', name, nameLower: name.toLowerCase(), emails: [email.toLowerCase()], externalId: `local:${crypto.randomBytes(6).toString('hex')}` });
}
