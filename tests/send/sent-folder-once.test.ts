import { strict as assert } from 'node:assert';
import net from 'node:net';
import mongoose from 'mongoose';
import { ImapFlow } from 'imapflow';
import { sendMessage, startOutboxWorker, type SendDeps } from '../../gateway/send';
import type { DovecotServer } from '../support/dovecot';
import { openTestStore } from '../support/store';
import { newSecretBox, sendableAccount, sendDeps, sharedDovecot, startRecordingSmtp, type RecordingSmtp, type TestStore } from './support';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A TCP relay to Dovecot's plain-text port that drops the connection at the
 * moment the server says it filed an APPEND (RFC 4315 APPENDUID), before
 * the client hears it: the copy is in the folder, the sender does not know.
 */
async function appendReplyDropper(target: number): Promise<{ port: number; dropped: () => number; close(): Promise<void> }> {
  let dropped = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => {
      if (dropped === 0 && /OK \[APPENDUID /.test(chunk.toString('latin1'))) {
        dropped += 1;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    for (const [a, b] of [[client, upstream], [upstream, client]]) {
      a.on('close', () => b.destroy());
      a.on('error', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    dropped: () => dropped,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

describe('send: the Sent copy is filed once, even when the answer to APPEND was lost', function () {
  this.timeout(60_000);
  let store: TestStore;
  let dovecot: DovecotServer;
  let smtp: RecordingSmtp;
  let deps: SendDeps;
  const secretBox = newSecretBox();

  before(async () => {
    store = await openTestStore('send_sent_once');
    dovecot = await sharedDovecot();
    smtp = await startRecordingSmtp({ tls: 'implicit' });
    deps = sendDeps(store, secretBox, { retry: { baseMs: 200, capMs: 1000, giveUpAfterMs: 60_000, sentFolderAttempts: 3 } });
  });
  after(async () => {
    await smtp?.stop();
    await store?.drop();
  });

  it('finds the copy the server filed and does not append a second one', async () => {
    const fixture = await sendableAccount(store, secretBox, { dovecot, smtp, smtpTls: 'implicit' });
    const relay = await appendReplyDropper(dovecot.port);
    try {
      // A server reached without TLS (a host on the office network), through the relay.
      await store.models.MailAccount.updateOne({ _id: new mongoose.Types.ObjectId(fixture.accountId) }, { $set: { 'imap.port': relay.port, 'imap.tls': 'none' } });
      const result = await sendMessage(deps, fixture.viewer, fixture.accountId, { to: 'alice@customer.test', subject: 'Filed once', text: 'See you on Monday.' });
      assert.equal(result.status, 'sent');
      assert.equal(relay.dropped(), 1, 'the answer to APPEND was lost');
      const pending = await store.models.Outbox.findById(result.outboxId).lean();
      assert.equal(pending?.sentFolder?.state, 'pending', 'the sender does not know it was filed');

      const worker = startOutboxWorker(deps, { intervalMs: 100 });
      try {
        const deadline = Date.now() + 15_000;
        while ((await store.models.Outbox.findById(result.outboxId).lean())?.sentFolder?.state !== 'appended') {
          if (Date.now() > deadline) throw new Error('the Sent copy was never recorded as filed');
          await sleep(50);
        }
      } finally {
        await worker.stop();
      }

      const client = new ImapFlow({ ...dovecot.clientOptions(fixture.email, fixture.password), logger: false });
      await client.connect();
      try {
        const lock = await client.getMailboxLock('Sent');
        try {
          const found = (await client.search({ header: { 'message-id': result.messageId } }, { uid: true })) || [];
          assert.equal(found.length, 1, 'one copy in the Sent folder the user\'s mail program shows');
        } finally {
          lock.release();
        }
      } finally {
        await client.logout();
      }
      assert.equal(await store.models.Message.countDocuments({ messageId: result.messageId }), 1);
    } finally {
      await relay.close();
    }
  });
});
