/**
 * Shared set-up for the admin tests: the real app on a fresh database,
 * users, signed-in supertest agents (with their CSRF token) and messages
 * stored through the real ingest pipeline.
 */
import crypto from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import type { Express } from 'express';
import { Types } from 'mongoose';
import MailComposer from 'nodemailer/lib/mail-composer';
import request from 'supertest';
import type TestAgent from 'supertest/lib/agent';
import { createUser, createMailAccount, type PublicUser } from '../../gateway/accounts';
import { loadConfig, type Config } from '../../gateway/core/config';
import { SecretBox } from '../../gateway/core/crypto';
import { createLogger } from '../../gateway/core/log';
import { ingest, type AuthVerdict, type Classification } from '../../gateway/mail/ingest';
import type { SourceKind } from '../../gateway/models/message';
import type { Store } from '../../gateway/store';
import { createApp, type CreateAppOptions } from '../../admin/app';
import { startDovecot } from '../support/dovecot';
import { shared } from '../support/shared';
import { openTestStore } from '../support/store';

export type TestStore = Awaited<ReturnType<typeof openTestStore>>;

export const PASSWORD = 'correct-horse-battery-staple';
export const GATEWAY_DOMAIN = 'in.postroom.test';

export function testConfig(overrides: Record<string, string> = {}): Readonly<Config> {
  return loadConfig({
    NODE_ENV: 'test',
    GATEWAY_DOMAIN,
    PUBLIC_URL: 'http://127.0.0.1:8080',
    SECRET_KEY: crypto.randomBytes(32).toString('hex'),
    BUSINESS_DOMAINS: 'acme.test',
    LOG_LEVEL: 'silent',
    ...overrides,
  });
}

export interface TestApp {
  app: Express & { locals: { deps: import('../../admin/types').AdminDeps } };
  config: Readonly<Config>;
  secretBox: SecretBox;
}

export function buildApp(store: Store, options: Partial<CreateAppOptions> & { env?: Record<string, string> } = {}): TestApp {
  const config = options.config ?? testConfig(options.env);
  const secretBox = options.secretBox ?? new SecretBox(crypto.randomBytes(32));
  const app = createApp({
    store,
    log: createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    config,
    secretBox,
    sessionSecret: 'test-session-secret',
    ...options,
  });
  return { app, config, secretBox };
}

export async function makeUser(store: TestStore, email: string, role: 'admin' | 'employee' = 'employee', password = PASSWORD): Promise<PublicUser> {
  return createUser(store, { email, password, role });
}

/** The value of the hidden _csrf field in an HTML page. */
export function csrfFrom(html: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!match) throw new Error('no CSRF field in the page');
  return match[1];
}

export interface SignedIn {
  agent: TestAgent;
  csrf: string;
}

/** Sign in through the real form; returns the cookie-carrying agent and the session's CSRF token. */
export async function signIn(app: Express, email: string, password = PASSWORD): Promise<SignedIn> {
  const agent = request.agent(app);
  const form = await agent.get('/login').expect(200);
  const res = await agent.post('/login').type('form').send({ _csrf: csrfFrom(form.text), email, password });
  if (res.status !== 303) throw new Error(`sign-in of ${email} failed with ${res.status}`);
  const page = await agent.get('/preferences/profile').expect(200);
  return { agent, csrf: csrfFrom(page.text) };
}

export async function makeAccount(store: TestStore, owner: PublicUser, email: string) {
  return createMailAccount(store, owner.id, email, { gatewayDomain: GATEWAY_DOMAIN });
}

export interface MessageSpec {
  from?: string;
  to?: string;
  subject?: string;
  text?: string;
  html?: string;
  /** `cid` puts the part into a multipart/related beside the HTML (an inline image); `filename: false` gives it no name. */
  attachments?: Array<{ filename: string | false; content: string | Buffer; contentType?: string; cid?: string }>;
  date?: Date;
  messageId?: string;
  headers?: Record<string, string>;
  /** The message as another mailer wrote it (raw 8-bit headers, legacy charsets), instead of one composed from the fields above. */
  raw?: Buffer;
}

/** Build RFC 5322 bytes with nodemailer's composer (tests never hand-roll MIME either). */
export async function buildRaw(spec: MessageSpec): Promise<Buffer> {
  const composer = new MailComposer({
    from: spec.from ?? 'Alice Customer <alice@customer.test>',
    to: spec.to ?? 'bob@acme.test',
    subject: spec.subject ?? 'Hello',
    text: spec.text ?? 'Hello Bob',
    html: spec.html,
    attachments: spec.attachments,
    date: spec.date ?? new Date(),
    messageId: spec.messageId ?? `<${crypto.randomUUID()}@customer.test>`,
    headers: spec.headers,
  });
  return composer.compile().build();
}

export interface StoreMessageOptions {
  ownerId: string;
  accountId?: string | null;
  source?: SourceKind;
  receivedAt?: Date;
  status?: 'inbox' | 'quarantine';
  quarantineReason?: string;
  auth?: AuthVerdict;
  classify?: Classification;
}

/** Store a message through the real ingest pipeline (gateway/mail/ingest.ts). */
export async function storeMessage(store: TestStore, spec: MessageSpec, options: StoreMessageOptions) {
  
  const raw = spec.raw ?? await buildRaw(spec);
  const accountId = options.accountId ? new Types.ObjectId(options.accountId) : null;
  const ownerId = new Types.ObjectId(options.ownerId);
  const result = await ingest({ store, log: createLogger({ level: 'silent' }) }, {
    raw,
    mailboxKey: accountId ? accountId.toString() : `dropbox:${ownerId.toString()}`,
    accountId,
    ownerId,
    source: { kind: options.source ?? 'forward' },
    status: options.status,
    quarantineReason: options.quarantineReason,
    receivedAt: options.receivedAt,
    auth: options.auth,
    classify: options.classify ? () => options.classify! : undefined,
  });
  if (!result.id) throw new Error(`message not stored: ${result.outcome}`);
  return { id: result.id.toString(), raw };
}

interface HeldGate {
  port: number;
  /** Resolves once a client connected (and is being held). */
  connected: Promise<void>;
  /** Let every held and later connection through to the target. */
  release(): void;
  close(): void;
}

/**
 * A TCP gate in front of a real server that holds connections until
 * released: keeps a console request (an IMAP Authenticate, say) running
 * for as long as a test needs something else to happen meanwhile.
 */
export async function startHeldGate(target: { host: string; port: number }): Promise<HeldGate> {
  const held: net.Socket[] = [];
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let connected!: () => void;
  const firstConnection = new Promise<void>((resolve) => (connected = resolve));
  const server = net.createServer((client) => {
    held.push(client);
    connected();
    void released.then(() => {
      const upstream = net.connect(target.port, target.host);
      client.pipe(upstream).pipe(client);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    connected: firstConnection,
    release,
    close: () => {
      release();
      for (const socket of held) socket.destroy();
      server.close();
    },
  };
}

export interface SlowRequest {
  /** The mail account whose Authenticate is held. */
  accountId: string;
  /** Let the request through; resolves with its response once it ended. */
  finish(): Promise<request.Response>;
  close(): void;
}

/**
 * A request of a signed-in browser kept running on purpose: Authenticate of
 * IMAP Support for a new account of `owner` (a mailbox on the shared test
 * Dovecot, reached through a held gate). Resolves once the request is in
 * flight, so a test can end the session meanwhile and see what the
 * request's end does to it. The mailbox's password is `<local part>-password`.
 */
export async function holdAuthenticate(store: TestStore, owner: PublicUser, session: SignedIn, mailbox: string, options: { typedPassword?: string } = {}): Promise<SlowRequest> {
  const dovecot = await shared('dovecot', () => startDovecot());
  const mailboxPassword = `${mailbox.split('@')[0]}-password`;
  await dovecot.addUser(mailbox, mailboxPassword);
  // What the form sends: the mailbox's password unless the test has the user mistype it.
  const password = options.typedPassword ?? mailboxPassword;
  const gate = await startHeldGate({ host: dovecot.host, port: dovecot.tlsPort });
  try {
    const account = await makeAccount(store, owner, mailbox);
    const response = session.agent.post(`/preferences/email/${account.id}`).type('form').send({
      _csrf: session.csrf, enabled: 'on', service: 'custom', host: '127.0.0.1', port: String(gate.port), tls: 'implicit',
      username: mailbox, password, action: 'authenticate',
    }).then((res) => res);
    await gate.connected;
    return {
      accountId: account.id,
      finish: () => {
        gate.release();
        return response;
      },
      close: () => gate.close(),
    };
  } catch (err) {
    gate.close();
    throw err;
  }
}
