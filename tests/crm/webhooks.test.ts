import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import mongoose from 'mongoose';
import { SecretBox } from '../../gateway/core/crypto';
import { crmAssociator, linkMessage, type CrmDeps } from '../../gateway/crm/link';
import { createObject } from '../../gateway/crm/objects';
import { dispatchDueDeliveries } from '../../gateway/crm/webhook-dispatch';
import { createWebhook, listDeliveries, listWebhooks, resendDelivery, rotateWebhookSecret, sealWebhookUrls, sendTestEvent, shownWebhookUrl, updateWebhook, type WebhookDeps } from '../../gateway/crm/webhooks';
import { startCrmWorker } from '../../gateway/crm/worker';
import { runPendingJobs, sweep } from '../../gateway/crm/backfill';
import { ingest } from '../../gateway/mail/ingest';
import { ensureTestCertificates } from '../support/certs';
import { openTestStore } from '../support/store';
import { insertMessage, makeUser, testLog } from './support';

/** A real HTTP receiver on 127.0.0.1 that verifies signatures the way the README tells integrators to. */
interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  signatureValid: boolean;
}

function startReceiver(secretRef: { secret: string }) {
  const received: Received[] = [];
  let answers: number[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      // The documented algorithm, written out independently of the product code:
      const header = String(req.headers['postroom-signature'] ?? '');
      const parts = Object.fromEntries(header.split(',').map((p) => p.split('=') as [string, string]));
      const expected = crypto.createHmac('sha256', secretRef.secret).update(`${parts.t}.${body}`).digest('hex');
      const fresh = Math.abs(Date.now() / 1000 - Number(parts.t)) <= 300;
      const signatureValid = fresh && typeof parts.v1 === 'string' && parts.v1.length === 64 && crypto.timingSafeEqual(Buffer.from(parts.v1, 'hex'), Buffer.from(expected, 'hex'));
      received.push({ headers: req.headers, body, signatureValid });
      const status = answers.shift() ?? 200;
      res.writeHead(status, { 'Content-Type': 'text/plain' }).end(status === 200 ? 'ok' : 'receiver is down');
    });
  });
  return {
    received,
    answerNext(statuses: number[]) {
      answers = [...statuses];
    },
    async listen() {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/postroom`;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const waitFor = async (check: () => Promise<boolean> | boolean, ms = 10_000) => {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe('crm/webhooks: signed link events with retries (real store, real HTTP receiver)', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let deps: CrmDeps;
  let hookDeps: WebhookDeps;
  const secretBox = new SecretBox(crypto.randomBytes(32), 'webhooks');
  const secretRef = { secret: '' };
  const receiver = startReceiver(secretRef);
  let url: string;
  let bob: Awaited<ReturnType<typeof makeUser>>;
  let jane: mongoose.Types.ObjectId;

  before(async () => {
    store = await openTestStore('crm_webhooks');
    deps = { store, log: testLog };
    hookDeps = { store, log: testLog, secretBox };
    url = await receiver.listen();
    await store.models.BusinessSettings.create({ _id: 'business', domains: ['acme.test'] });
    bob = await makeUser(store, 'bob@acme.test');
    jane = new mongoose.Types.ObjectId((await createObject(deps, { type: 'contact', name: 'Jane Roe', emails: ['jane@globex.test'], externalId: 'crm-jane' })).object.id);
    await runPendingJobs(deps);
  });
  after(async () => {
    await receiver.close();
    await store.drop();
  });

  it('refuses loopback targets unless an admin allows private targets explicitly', async () => {
    await assert.rejects(createWebhook(hookDeps, { url }), (err: Error & { code?: string; status?: number }) => err.code === 'WEBHOOK_URL_REFUSED' && err.status === 400 && /127\.0\.0\.1/.test(err.message));
    await assert.rejects(createWebhook(hookDeps, { url: url.replace('127.0.0.1', 'localhost') }), /private or loopback/);
    await assert.rejects(createWebhook(hookDeps, { url: 'ftp://127.0.0.1/x', allowPrivate: true }), /only http and https/);
    assert.equal(await store.models.Webhook.countDocuments({}), 0);
  });

  it('POSTs a signed link.created event for each new link; the receiver verifies it', async () => {
    const { webhook, secret } = await createWebhook(hookDeps, { url, allowPrivate: true, description: 'CRM' });
    secretRef.secret = secret;
    const stored = await store.models.Webhook.findById(webhook.id).lean();
    assert.ok(!JSON.stringify(stored).includes(secret), 'the signing secret is sealed at rest');
    // So is the URL, which for Slack, Teams or Zapier is the credential: the store, the list and the audit log show its site.
    const shown = url.replace('/hooks/postroom', '/hooks/…');
    assert.ok(!JSON.stringify(stored).includes('/hooks/postroom'), 'the whole URL is not in the store in clear');
    assert.equal(webhook.url, shown);
    assert.equal((await listWebhooks(store))[0]?.url, shown);
    const audit = await store.models.AuditEvent.findOne({ action: 'webhook.create', targetId: webhook.id }).lean();
    assert.equal((audit?.details as { url?: string }).url, shown);
    assert.equal(webhook.secretPrefix, secret.slice(0, 10));

    const worker = startCrmWorker(deps, { intervalMs: 60_000, secretBox, webhooks: { intervalMs: 60_000 } });
    try {
      const message = await insertMessage(store, { ownerId: bob._id, from: { address: 'jane@globex.test', name: 'Jane' }, to: ['bob@acme.test'], subject: 'Renewal' });
      await linkMessage({ ...deps, onEventsQueued: () => worker.kick() }, message);
      await waitFor(() => receiver.received.length >= 1);
      const [hit] = receiver.received;
      assert.equal(hit.signatureValid, true, 'signature verifies with the documented algorithm');
      assert.equal(hit.headers['content-type'], 'application/json');
      assert.equal(hit.headers['postroom-event-type'], 'link.created');
      const event = JSON.parse(hit.body);
      assert.equal(hit.headers['postroom-event-id'], event.id);
      assert.equal(event.type, 'link.created');
      assert.equal(event.data.object.id, jane.toString());
      assert.equal(event.data.object.externalId, 'crm-jane');
      assert.equal(event.data.message.id, message._id.toString());
      assert.equal(event.data.message.subject, 'Renewal');
      assert.deepEqual(event.data.message.from, { address: 'jane@globex.test', name: 'Jane' });
      assert.equal(event.data.link.rule, 'address');
      assert.deepEqual(event.data.link.reasons[0], { address: 'jane@globex.test', rule: 'address', role: 'from', matched: 'jane@globex.test' });
      await waitFor(async () => (await listDeliveries(store, webhook.id))[0]?.status === 'delivered');
      const [delivery] = await listDeliveries(store, webhook.id);
      assert.equal(delivery.attempts, 1);
      assert.equal(delivery.log[0].statusCode, 200);

      // Linking the same message again makes no new event.
      await linkMessage(deps, message);
      assert.equal(await store.models.WebhookDelivery.countDocuments({ webhookId: webhook.id }), 1);
    } finally {
      await worker.stop();
    }
  });

  it('ingested mail queues link.created once while a webhook subscribes, and none for a retried delivery', async () => {
    const associate = crmAssociator(deps);
    const raw = (n: number) => Buffer.from(`From: Jane <jane@globex.test>\r\nTo: bob@acme.test\r\nSubject: Order ${n}\r\nMessage-ID: <order-${n}-${crypto.randomUUID()}@globex.test>\r\n\r\nOrder\r\n`);
    const events = async (subject: string) => (await store.models.WebhookDelivery.find({ eventType: 'link.created' }).lean()).filter((d) => JSON.parse(d.payload).data.message.subject === subject);

    const first = raw(1);
    const stored = await ingest({ store, log: testLog, associate }, { raw: first, mailboxKey: 'hooks', ownerId: bob._id, source: { kind: 'forward' } });
    assert.equal((await events('Order 1')).length, 1, 'the subscribed webhook gets one event');
    await ingest({ store, log: testLog, associate }, { raw: first, mailboxKey: 'hooks', ownerId: bob._id, source: { kind: 'imap', folder: 'INBOX', uidValidity: '1', uid: 1 } });
    assert.equal((await events('Order 1')).length, 1, 'the same mail again adds no event');
    assert.equal(await store.models.Link.countDocuments({ messageId: stored.id, eventQueuedAt: null }), 0);

    // With every webhook disabled, links are written as having nothing to send; enabling one later does not replay them.
    await store.models.Webhook.updateMany({}, { $set: { enabled: false } });
    const quiet = await ingest({ store, log: testLog, associate }, { raw: raw(2), mailboxKey: 'hooks', ownerId: bob._id, source: { kind: 'forward' } });
    assert.equal(await store.models.Link.countDocuments({ messageId: quiet.id, eventQueuedAt: null }), 0);
    await store.models.Webhook.updateMany({}, { $set: { enabled: true } });
    await sweep(deps, { olderThanMs: 0 });
    assert.equal((await events('Order 2')).length, 0);
    // Leave the queue as the next tests expect it.
    await store.models.WebhookDelivery.deleteMany({ _id: { $in: (await events('Order 1')).map((d) => d._id) } });
  });

  it('retries with backoff after the receiver answers 500, then gives up when the window closes; resend delivers', async () => {
    receiver.received.length = 0;
    receiver.answerNext([500, 500]);
    const message = await insertMessage(store, { ownerId: bob._id, from: 'jane@globex.test', to: ['bob@acme.test'], subject: 'Retry me' });
    await linkMessage(deps, message);
    const backoffs: number[] = [];
    const options = { backoffMs: (n: number) => (backoffs.push(n), 100) };
    const delivery = async () => (await store.models.WebhookDelivery.find({ eventType: 'link.created' }).sort({ createdAt: -1 }).limit(1).lean())[0];
    await waitFor(async () => {
      await dispatchDueDeliveries(hookDeps, options);
      return (await delivery()).status === 'delivered';
    });
    const done = await delivery();
    assert.equal(done.attempts, 3);
    assert.deepEqual(done.log.map((e) => e.statusCode), [500, 500, 200]);
    assert.match(done.log[0].error, /HTTP 500: receiver is down/);
    assert.deepEqual(backoffs, [1, 2], 'the schedule is asked after each failure');
    assert.equal(receiver.received.length, 3);
    assert.deepEqual(receiver.received.map((r) => r.headers['postroom-delivery-attempt']), ['1', '2', '3']);
    assert.equal(new Set(receiver.received.map((r) => r.headers['postroom-event-id'])).size, 1, 'one event id across attempts');
    assert.ok(receiver.received.every((r) => r.signatureValid));

    // A receiver that stays down past the retry window: the delivery ends as failed.
    receiver.received.length = 0;
    receiver.answerNext([500, 500, 500, 500, 500, 500, 500, 500]);
    const another = await insertMessage(store, { ownerId: bob._id, from: 'jane@globex.test', to: ['bob@acme.test'], subject: 'Give up' });
    await linkMessage(deps, another);
    const pending = await delivery();
    const current = async () => (await store.models.WebhookDelivery.findById(pending._id).lean())!;
    // Two failed attempts inside the window, then the window closes (moved, not waited for: a loaded machine
    // must not decide how many attempts fit).
    await waitFor(async () => {
      await dispatchDueDeliveries(hookDeps, { backoffMs: () => 100 });
      return (await current()).attempts >= 2;
    });
    assert.equal((await current()).status, 'pending', 'still retried while the window is open');
    await store.models.WebhookDelivery.updateOne({ _id: pending._id }, { $set: { expiresAt: new Date(Date.now() - 1000) } });
    await waitFor(async () => {
      await dispatchDueDeliveries(hookDeps, { backoffMs: () => 100 });
      return (await current()).status === 'failed';
    });
    const failed = await current();
    assert.ok(failed.attempts >= 2 && failed.attempts <= 3, `attempts ${failed.attempts}`);

    receiver.answerNext([]);
    const resent = await resendDelivery(store, pending._id.toString());
    assert.equal(resent.status, 'pending');
    await dispatchDueDeliveries(hookDeps, { backoffMs: () => 100 });
    const after = (await store.models.WebhookDelivery.findById(pending._id).lean())!;
    assert.equal(after.status, 'delivered');
    assert.equal(after.log.length, failed.attempts + 1, 'the delivery log keeps every attempt');
  });

  it('refuses delivery to loopback when private targets are not allowed (checked again at send time)', async () => {
    receiver.received.length = 0;
    const [hook] = await store.models.Webhook.find({}).lean();
    // An admin turns private targets off: saving re-checks the URL and refuses it.
    await assert.rejects(updateWebhook(hookDeps, hook._id.toString(), { allowPrivate: false }), /private or loopback/);
    // Even if the stored flag changes behind the service's back, the sender refuses.
    await store.models.Webhook.updateOne({ _id: hook._id }, { $set: { allowPrivate: false } });
    const message = await insertMessage(store, { ownerId: bob._id, from: 'jane@globex.test', to: ['bob@acme.test'], subject: 'Blocked' });
    await linkMessage(deps, message);
    await dispatchDueDeliveries(hookDeps, { backoffMs: () => 60_000 });
    const row = (await store.models.WebhookDelivery.find({}).sort({ createdAt: -1 }).limit(1).lean())[0];
    assert.equal(row.status, 'pending', 'kept for retry');
    assert.match(row.lastError, /private or loopback/);
    assert.equal(receiver.received.length, 0, 'nothing reached the receiver');
    await store.models.Webhook.updateOne({ _id: hook._id }, { $set: { allowPrivate: true } });
  });

  it('a receiver that answers a byte at a time fails the attempt at the timeout and does not hold the dispatcher', async function () {
    this.timeout(30_000);
    // Status line at once, then one byte every 100 ms for ever: never idle long enough for a socket timeout.
    const trickle = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      const timer = setInterval(() => res.write('.'), 100);
      res.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((resolve) => trickle.listen(0, '127.0.0.1', resolve));
    try {
      const { webhook } = await createWebhook(hookDeps, { url: `http://127.0.0.1:${(trickle.address() as AddressInfo).port}/slow`, allowPrivate: true });
      await sendTestEvent(hookDeps, webhook.id);
      const pass = dispatchDueDeliveries(hookDeps, { timeoutMs: 500, backoffMs: () => 60_000 }).then(() => 'returned');
      const stuck = new Promise((resolve) => setTimeout(() => resolve('still sending after 15 s'), 15_000).unref());
      assert.equal(await Promise.race([pass, stuck]), 'returned');
      const row = (await store.models.WebhookDelivery.find({ webhookId: webhook.id }).lean())[0];
      assert.equal(row.status, 'pending', 'kept for retry');
      assert.equal(row.attempts, 1);
      assert.match(row.lastError, /no complete answer within 500 ms/);
      await updateWebhook(hookDeps, webhook.id, { enabled: false });
    } finally {
      trickle.closeAllConnections();
      await new Promise<void>((resolve) => trickle.close(() => resolve()));
    }
  });

  it('sends a due delivery once when several dispatchers look at once (FerretDB runs findAndModify as a read, then a write)', async () => {
    // Two admin processes on one embedded store (npm start and npm run admin) each run a dispatcher.
    const counting = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        hits.push(String(req.headers['postroom-event-id']));
        res.writeHead(200).end('ok');
      });
    });
    const hits: string[] = [];
    await new Promise<void>((resolve) => counting.listen(0, '127.0.0.1', resolve));
    try {
      const { webhook } = await createWebhook(hookDeps, { url: `http://127.0.0.1:${(counting.address() as AddressInfo).port}/race`, allowPrivate: true });
      for (let round = 0; round < 15; round++) {
        const eventId = await sendTestEvent(hookDeps, webhook.id);
        await Promise.all([1, 2, 3, 4].map(() => dispatchDueDeliveries(hookDeps, { backoffMs: () => 60_000 })));
        assert.deepEqual(hits.filter((id) => id === eventId), [eventId], `round ${round}: sent ${hits.filter((id) => id === eventId).length} times`);
      }
      await updateWebhook(hookDeps, webhook.id, { enabled: false });
    } finally {
      await new Promise<void>((resolve) => counting.close(() => resolve()));
    }
  });

  it('a receiver that does not answer costs one attempt per pass, not one per queued event, and other webhooks are served', async () => {
    const silent = http.createServer(() => undefined); // accepts, never answers
    const hits: string[] = [];
    const healthy = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        hits.push(String(req.headers['postroom-event-id']));
        res.writeHead(200).end('ok');
      });
    });
    const listen = async (server: http.Server) => {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    };
    try {
      const down = (await createWebhook(hookDeps, { url: await listen(silent), allowPrivate: true })).webhook;
      const up = (await createWebhook(hookDeps, { url: await listen(healthy), allowPrivate: true })).webhook;
      for (let i = 0; i < 5; i++) await sendTestEvent(hookDeps, down.id);
      const upEvents: string[] = [];
      for (let i = 0; i < 5; i++) upEvents.push(await sendTestEvent(hookDeps, up.id));
      await dispatchDueDeliveries(hookDeps, { timeoutMs: 300, backoffMs: () => 60_000 });
      assert.deepEqual(hits.sort(), upEvents.sort(), 'the healthy webhook got all its events in the same pass');
      const rows = await store.models.WebhookDelivery.find({ webhookId: down.id }).lean();
      assert.equal(rows.reduce((sum, row) => sum + row.attempts, 0), 1, 'one attempt at the receiver that does not answer');
      assert.deepEqual(rows.map((row) => row.status), ['pending', 'pending', 'pending', 'pending', 'pending'], 'the others wait for the next pass');
      for (const hook of [down, up]) await updateWebhook(hookDeps, hook.id, { enabled: false });
    } finally {
      silent.closeAllConnections();
      for (const server of [silent, healthy]) await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('a webhook an earlier release stored with its URL in clear still delivers, and is sealed at the next start', async () => {
    receiver.received.length = 0;
    const legacyId = new mongoose.Types.ObjectId();
    const legacySecret = 'whsec_legacy';
    const legacyUrl = `${url}?token=s3cr3t`;
    await store.models.Webhook.collection.insertOne({
      _id: legacyId, url: legacyUrl, description: 'from 3f950c1', events: ['link.created'], enabled: true, allowPrivate: true,
      secretEnc: secretBox.seal(legacySecret, `webhook:${legacyId.toString()}`), secretPrefix: 'whsec_lega', createdAt: new Date(), updatedAt: new Date(),
    });
    const before = secretRef.secret;
    secretRef.secret = legacySecret;
    try {
      assert.equal((await listWebhooks(store)).find((hook) => hook.id === legacyId.toString())?.url, shownWebhookUrl(legacyUrl), 'listed without its query even before it is sealed');
      await sendTestEvent(hookDeps, legacyId.toString());
      await dispatchDueDeliveries(hookDeps);
      assert.equal(receiver.received.filter((r) => r.signatureValid).length, 1, 'delivered to the URL in clear');

      assert.equal(await sealWebhookUrls(store, secretBox, testLog), 1);
      const sealed = (await store.models.Webhook.findById(legacyId).lean())!;
      assert.equal(sealed.url, `${url.replace('/hooks/postroom', '/hooks/…')}`);
      assert.ok(!JSON.stringify(sealed).includes('s3cr3t'));
      assert.equal(await sealWebhookUrls(store, secretBox, testLog), 0, 'sealed once');
      await sendTestEvent(hookDeps, legacyId.toString());
      await dispatchDueDeliveries(hookDeps);
      assert.equal(receiver.received.filter((r) => r.signatureValid).length, 2, 'and to the sealed URL, query and all, after');
    } finally {
      secretRef.secret = before;
      await store.models.WebhookDelivery.deleteMany({ webhookId: legacyId });
      await store.models.Webhook.deleteOne({ _id: legacyId });
    }
  });

  it('shows a webhook URL without the part that is often the credential', () => {
    assert.equal(shownWebhookUrl('https://hooks.slack.com/services/T000/B000/XXXX'), 'https://hooks.slack.com/services/…');
    assert.equal(shownWebhookUrl('https://crm.example.com/postroom'), 'https://crm.example.com/postroom');
    assert.equal(shownWebhookUrl('https://crm.example.com/'), 'https://crm.example.com/');
    assert.equal(shownWebhookUrl('https://crm.example.com/?key=abc'), 'https://crm.example.com/…');
    assert.equal(shownWebhookUrl('https://crm.example.com/hook?key=abc'), 'https://crm.example.com/hook/…');
    assert.equal(shownWebhookUrl('https://hook.eu1.make.com/k3ab9xqv7m2lw8rt'), 'https://hook.eu1.make.com/…', 'a first segment that is a token');
    assert.equal(shownWebhookUrl('https://example.com/averyveryverylongword'), 'https://example.com/…');
  });

  it('rotating the secret signs later deliveries with the new one', async () => {
    receiver.received.length = 0;
    const [hook] = await store.models.Webhook.find({}).lean();
    const { secret } = await rotateWebhookSecret(hookDeps, hook._id.toString());
    assert.notEqual(secret, secretRef.secret);
    secretRef.secret = secret;
    await store.models.WebhookDelivery.updateMany({ status: 'pending' }, { $set: { nextAttemptAt: new Date(0) } });
    await dispatchDueDeliveries(hookDeps);
    assert.ok(receiver.received.length >= 1);
    assert.ok(receiver.received.every((r) => r.signatureValid));
  });

  it('an https webhook connects to the addresses checked and still verifies the certificate by the URL\'s name', async () => {
    const certs = ensureTestCertificates(); // SAN: localhost and 127.0.0.1, signed by the CA the test process trusts
    const hits: string[] = [];
    const tls = https.createServer({ cert: fs.readFileSync(certs.certFile), key: fs.readFileSync(certs.keyFile) }, (req, res) => {
      hits.push(String(req.headers.host));
      req.resume();
      req.on('end', () => res.writeHead(200).end('ok'));
    });
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    const port = (tls.address() as AddressInfo).port;
    // Both names answer 127.0.0.1; the certificate names only the first.
    const lookup = async (host: string) => (['localhost', 'not-in-the-cert.test'].includes(host) ? [{ address: '127.0.0.1', family: 4 }] : []);
    const ids: string[] = [];
    try {
      for (const host of ['localhost', 'not-in-the-cert.test']) {
        const { webhook } = await createWebhook({ ...hookDeps, lookup }, { url: `https://${host}:${port}/tls`, allowPrivate: true });
        ids.push(webhook.id);
        await sendTestEvent(hookDeps, webhook.id);
      }
      await dispatchDueDeliveries(hookDeps, { lookup, backoffMs: () => 60_000 });
      const rows = await Promise.all(ids.map(async (id) => (await store.models.WebhookDelivery.findOne({ webhookId: id }).lean())!));
      assert.equal(rows[0].status, 'delivered', rows[0].lastError);
      assert.deepEqual(hits, [`localhost:${port}`], 'the name, not the address, is what the receiver was asked for');
      // Had the connection been made to 127.0.0.1 by address, this certificate (it names 127.0.0.1) would have passed.
      assert.equal(rows[1].status, 'pending');
      assert.match(rows[1].lastError, /ERR_TLS_CERT_ALTNAME_INVALID|not in the cert's altnames/);
    } finally {
      await store.models.WebhookDelivery.deleteMany({ webhookId: { $in: ids } });
      await store.models.Webhook.deleteMany({ _id: { $in: ids } });
      tls.closeAllConnections();
      await new Promise<void>((resolve) => tls.close(() => resolve()));
    }
  });
});
