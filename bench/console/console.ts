import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import mongoose from 'mongoose';
import { startAdmin } from '../../admin/server';
import { createMailAccount, createUser, encodeCursor, PAGE_SIZE } from '../../gateway/accounts';
import { loadConfig } from '../../gateway/core/config';
import type { Logger } from '../../gateway/core/log';
import { ingest } from '../../gateway/mail/ingest';
import type { Store } from '../../gateway/store';
import { GATEWAY_DOMAIN, openNamedStore, uniqueDbName, type StoreServer } from '../lib/env';
import { makeMessage, prng } from '../lib/messages';
import { checkGoal, type Report } from '../lib/report';
import { round, summarize } from '../lib/stats';

/**
 * The console under load: `GET /` (the inbox), page 20 of the inbox (the
 * "Older »" link followed 19 times) and a search, each driven by autocannon
 * with 10 connections, next to the bare driver queries that page issues.
 *
 * "The queries each page needs" are not hand-copied (they would drift from
 * the code): one warm request of each page runs with mongoose's debug hook
 * on, which records every operation the page sends to the store (session,
 * user, accounts, messages…); the baseline replays exactly those operations
 * through the native driver, concurrently, with 10 workers for the same
 * time. page p99 / bare p99 is Postroom's own overhead (goal ≤ 1.3).
 *
 * The store holds 100,000 messages, inserted with insertMany from documents
 * that ingest() produced for real messages. On FerretDB every sorted or
 * range query scans and sorts in FerretDB itself (tens of seconds at 20,000
 * documents on this machine), so there the default is a smaller mailbox and
 * the figures are reported, not judged; run with MONGODB_URI for the gate.
 */

export interface ConsoleBenchOptions {
  quick: boolean;
  store: StoreServer;
  log: Logger;
  messages?: number;
  seconds?: number;
  progress: (line: string) => void;
}

const SEARCH_TERM = 'initech';
const PASSWORD = 'bench-console-password-1';

interface Operation {
  collection: string;
  method: string;
  args: unknown[];
}

/** Insert `count` realistic messages: documents produced by ingest() for real messages, cloned with varied fields. */
async function fillMailbox(store: Store, options: { count: number; viewerId: mongoose.Types.ObjectId; accounts: mongoose.Types.ObjectId[]; otherOwner: mongoose.Types.ObjectId; otherAccount: mongoose.Types.ObjectId; log: Logger; progress: (line: string) => void }): Promise<void> {
  const templates: Array<Record<string, unknown>> = [];
  for (let i = 0; i < 12; i++) {
    const message = makeMessage({ size: i % 4 === 0 ? 40 * 1024 : 10 * 1024, seed: 900_000 + i, label: 'console-template', to: 'bob@acme.test' });
    const result = await ingest({ store, log: options.log }, { raw: message.raw, mailboxKey: options.accounts[0].toHexString(), accountId: options.accounts[0], ownerId: options.viewerId, source: { kind: 'forward' } });
    const found = await store.conn.db!.collection('messages').findOne({ _id: result.id! });
    await store.conn.db!.collection('messages').deleteOne({ _id: result.id! });
    const { _id: _ignored, ...doc } = found!;
    templates.push(doc);
  }
  const random = prng(42);
  const contacts = Array.from({ length: 500 }, (_, i) => (i % 97 === 0 ? `buyer${i}@${SEARCH_TERM}.test` : `person${i}@customer${i % 40}.test`));
  const collection = store.conn.db!.collection('messages');
  const now = Date.now();
  const batch = 1000;
  const started = performance.now();
  for (let offset = 0; offset < options.count; offset += batch) {
    const docs = [];
    for (let i = offset; i < Math.min(options.count, offset + batch); i++) {
      const template = templates[i % templates.length];
      const mine = random() < 0.6;
      const accountId = mine ? options.accounts[i % options.accounts.length] : options.otherAccount;
      const from = contacts[Math.floor(random() * contacts.length)];
      const receivedAt = new Date(now - Math.floor(random() * 90 * 86_400_000));
      const key = crypto.createHash('sha256').update(`console-${i}`).digest('hex');
      docs.push({
        ...template,
        _id: new mongoose.Types.ObjectId(),
        mailboxKey: accountId.toHexString(),
        accountId,
        ownerId: mine ? options.viewerId : options.otherOwner,
        messageId: `console-${i}@customer.test`,
        dedupeKey: key,
        contentHash: key,
        receivedAt,
        date: receivedAt,
        from: { address: from, name: `Person ${i % 500}` },
        addresses: [from, 'bob@acme.test'],
        subject: `${String(template.subject).replace(/#\d+$/, '')}#${i}`,
        status: random() < 0.05 ? 'quarantine' : 'inbox',
        sources: [{ kind: random() < 0.7 ? 'forward' : 'imap', at: receivedAt, queueId: '', remoteIp: '', envelopeFrom: '', envelopeTo: [], folder: '', uidValidity: '', uid: 0 }],
        // Already associated, as stored mail is: the CRM sweep has nothing to pick up.
        linkedAt: receivedAt,
        createdAt: receivedAt,
        updatedAt: receivedAt,
      });
    }
    await collection.insertMany(docs, { ordered: false });
    if ((offset / batch) % 20 === 19) options.progress(`console: ${offset + batch} messages inserted`);
  }
  options.progress(`console: ${options.count} messages inserted in ${round(performance.now() - started)} ms`);
}

/** Sign in through the real form (CSRF token from the page, session cookie from the redirect). */
async function signIn(baseUrl: string, email: string): Promise<string> {
  const page = await fetch(`${baseUrl}/login`);
  const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0];
  const html = await page.text();
  const csrf = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  if (!csrf) throw new Error('no CSRF token on /login');
  const response = await fetch(`${baseUrl}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams({ email, password: PASSWORD, _csrf: csrf }).toString(),
  });
  const session = (response.headers.get('set-cookie') ?? '').split(';')[0];
  if (response.status !== 303 || !session) throw new Error(`sign-in failed: ${response.status}`);
  return session;
}

/**
 * The address of page `n` of the inbox: the "Older »" link carries a cursor (receivedAt, _id) of
 * the last message of the page before. Computed from one scan instead of following the link n−1
 * times (on FerretDB each page costs seconds); the captured request checks that the page answers 200.
 */
async function pagePath(store: Store, viewerId: mongoose.Types.ObjectId, n: number): Promise<string> {
  const rows = await store.conn.db!.collection('messages').find({ ownerId: viewerId, status: 'inbox' }, { projection: { receivedAt: 1 } }).toArray();
  rows.sort((a, b) => b.receivedAt.getTime() - a.receivedAt.getTime() || (b._id.toHexString() < a._id.toHexString() ? -1 : 1));
  const last = rows[(n - 1) * PAGE_SIZE - 1];
  if (!last) throw new Error(`the inbox has ${rows.length} messages: too few for page ${n}`);
  return `/?cursor=${encodeURIComponent(encodeCursor(last.receivedAt, last._id))}`;
}

/**
 * The store operations one request of `url` issues (mongoose debug hook), after a warm-up request.
 * Background work of the admin process (CRM sweep, webhook dispatcher) shares the connection, so the
 * page is captured twice and only operations seen in both captures (by collection and method, in
 * order) are kept.
 */
async function captureOperations(store: Store, url: string, cookie: string): Promise<Operation[]> {
  await fetch(url, { headers: { cookie } }).then((r) => r.arrayBuffer());
  const captureOnce = async () => {
    const operations: Operation[] = [];
    store.conn.set('debug', (collection: string, method: string, ...args: unknown[]) => {
      operations.push({ collection, method, args });
    });
    try {
      const response = await fetch(url, { headers: { cookie } });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
    } finally {
      store.conn.set('debug', false);
    }
    return operations;
  };
  const first = await captureOnce();
  const second = await captureOnce();
  const key = (op: Operation) => `${op.collection}.${op.method}`;
  const remaining = second.map(key);
  return first.filter((op) => {
    const at = remaining.indexOf(key(op));
    if (at < 0) return false;
    remaining.splice(at, 1);
    return true;
  });
}

/** Replay the operations through the native driver (no mongoose), `connections` workers for `seconds`. */
async function replay(uri: string, dbName: string, operations: Operation[], connections: number, limit: { seconds: number; amount?: number }) {
  const client = new mongoose.mongo.MongoClient(uri, { maxPoolSize: connections + 2 });
  await client.connect();
  const db = client.db(dbName);
  let failures = 0;
  const run = async (op: Operation) => {
    const collection = db.collection(op.collection) as unknown as Record<string, (...args: unknown[]) => unknown>;
    try {
      const result = collection[op.method](...op.args) as { toArray?: () => Promise<unknown> } | Promise<unknown>;
      if (result && typeof (result as { toArray?: unknown }).toArray === 'function') return await (result as { toArray: () => Promise<unknown> }).toArray();
      return await result;
    } catch {
      // The page tried it too (e.g. an aggregation FerretDB lacks, then its fallback): it costs a round trip either way.
      failures++;
      return null;
    }
  };
  const latencies: number[] = [];
  const deadline = performance.now() + limit.seconds * 1000;
  const started = performance.now();
  let issued = 0;
  const more = () => (limit.amount ? issued++ < limit.amount : performance.now() < deadline);
  try {
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (more()) {
          const t0 = performance.now();
          await Promise.all(operations.map(run));
          latencies.push(performance.now() - t0);
        }
      }),
    );
  } finally {
    await client.close();
  }
  return { latencies, failures, rate: latencies.length / ((performance.now() - started) / 1000) };
}

function describeOps(operations: Operation[]): string {
  return operations.map((op) => `${op.collection}.${op.method}`).join(', ');
}

export async function benchConsole(options: ConsoleBenchOptions, report: Report): Promise<void> {
  const { progress } = options;
  const ferret = options.store.kind === 'ferretdb';
  const count = options.messages ?? (ferret ? (options.quick ? 1800 : 2400) : options.quick ? 20_000 : 100_000);
  const seconds = options.seconds ?? (options.quick ? 4 : 10);
  if (count !== 100_000) report.note(`console: ${count} stored messages, not 100,000${ferret ? ' (FerretDB sorts by scanning every document: 100,000 would take minutes per request; set MONGODB_URI for the full figure)' : ''}`);
  const dbName = uniqueDbName('console');
  const store = await openNamedStore(options.store.uri, dbName);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-bench-admin-'));
  try {
    const viewer = await createUser(store, { email: 'reader@acme.test', password: PASSWORD, name: 'Reader' });
    const other = await createUser(store, { email: 'other@acme.test', name: 'Other' });
    const accounts = [
      await createMailAccount(store, viewer.id, 'reader@acme.test', { gatewayDomain: GATEWAY_DOMAIN }),
      await createMailAccount(store, viewer.id, 'sales@acme.test', { gatewayDomain: GATEWAY_DOMAIN }),
    ];
    const otherAccount = await createMailAccount(store, other.id, 'other@acme.test', { gatewayDomain: GATEWAY_DOMAIN });
    const id = (s: string) => new mongoose.Types.ObjectId(s);
    await fillMailbox(store, { count, viewerId: id(viewer.id), accounts: accounts.map((a) => id(a.id)), otherOwner: id(other.id), otherAccount: id(otherAccount.id), log: options.log, progress });

    // Production mode: compiled-view cache on, as deployed.
    const config = loadConfig({ NODE_ENV: 'production', DATA_DIR: dataDir, SECRET_KEY: crypto.randomBytes(32).toString('hex'), GATEWAY_DOMAIN, PUBLIC_URL: 'http://127.0.0.1:8080', LOG_LEVEL: 'warn' });
    const admin = await startAdmin({ config, log: options.log, store, port: 0, host: '127.0.0.1' });
    try {
      const cookie = await signIn(admin.url, 'reader@acme.test');
      const pages = [
        { name: 'console.inbox', path: '/', what: 'GET / (inbox, first page)' },
        { name: 'console.page20', path: await pagePath(store, id(viewer.id), 20), what: 'page 20 of the inbox' },
        { name: 'console.search', path: `/?q=${SEARCH_TERM}`, what: `search "${SEARCH_TERM}"` },
      ];
      for (const page of pages) {
        const url = `${admin.url}${page.path}`;
        const operations = await captureOperations(store, url, cookie);
        // On FerretDB a page takes seconds: a fixed number of requests (bounded time) instead of a duration.
        const amount = ferret ? (options.quick ? 5 : 20) : undefined;
        const duration = seconds;
        const result = await autocannon({ url, connections: 10, ...(amount ? { amount } : { duration }), headers: { cookie }, timeout: 300 });
        const bad = result.non2xx + result.errors + result.timeouts;
        const bare = await replay(options.store.uri, dbName, operations, 10, { seconds: duration, amount });
        const bareLatency = summarize(bare.latencies);
        const p99 = result.requests.total > 0 ? result.latency.p99 : Number.NaN;
        const ratio = p99 / bareLatency.p99;
        const judged = !ferret;
        progress(`${page.name}: ${round(result.requests.average)} req/s, p50 ${result.latency.p50} ms, p99 ${p99} ms; bare (${describeOps(operations)}): p50 ${round(bareLatency.p50)} ms, p99 ${round(bareLatency.p99)} ms${bad ? `; ${bad} failed requests` : ''}`);
        report.add({
          name: page.name,
          value: p99,
          unit: 'ms',
          baseline: bareLatency.p99,
          ratio,
          goal: judged ? '<= 1.3' : null,
          met: bad > 0 ? false : judged ? checkGoal(ratio, '<= 1.3') : null,
          detail: `${page.what}, ${count} msgs, 10 conns, ${amount ? `${amount} requests` : `${duration} s`}: ${round(result.requests.average)} req/s, p50 ${result.latency.p50} ms; bare ${operations.length} ops (${describeOps(operations)}): p50 ${round(bareLatency.p50)} ms, ${round(bare.rate)}/s${bare.failures ? ` (${bare.failures} ops failed as in the app)` : ''}${bad ? `; ${bad} failed requests` : ''}${judged ? '' : ' (FerretDB: reported, not judged)'}`,
        });
        if (page.name === 'console.inbox' && !ferret) {
          report.add({ name: 'console.inbox.p99_mongodb', value: p99, unit: 'ms', baseline: null, ratio: null, goal: '<= 50', met: checkGoal(p99, '<= 50'), detail: 'inbox p99 on MongoDB (goal < 50 ms)' });
        }
      }
    } finally {
      await admin.close();
    }
  } finally {
    await store.conn.dropDatabase().catch(() => undefined);
    await store.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
