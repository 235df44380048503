import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import os from 'node:os';
import mongoose from 'mongoose';
import { createMailAccount, createUser, findUserByEmail } from '../../gateway/accounts';
import { runCli } from '../../gateway/bin/cli';
import { silentLogger } from '../../gateway/core/log';
import { ingest } from '../../gateway/mail/ingest';
import { openStore, type Store } from '../../gateway/store';
import { openTestStore, storedRaw, testMongoUri } from '../support/store';

/**
 * README: past a few thousand messages the embedded store of `npm start` is
 * slow, and the way on is MongoDB 7. Setting MONGODB_URI alone starts on an
 * empty store: users, mailboxes and mail would be left behind. copy-store
 * carries everything over (here into another database of the test run's
 * wire server, a real MongoDB-protocol store).
 */
describe('npm run cli -- copy-store', function () {
  this.timeout(60_000);
  let source: Awaited<ReturnType<typeof openTestStore>>;
  let target: Store | undefined;
  const targetDb = `t_copy_target_${crypto.randomBytes(3).toString('hex')}`;
  const targetUri = () => {
    const url = new URL(testMongoUri());
    url.pathname = `/${targetDb}`;
    return url.toString();
  };

  before(async () => {
    source = await openTestStore('copy_source');
  });
  after(async () => {
    await target?.conn.dropDatabase().catch(() => undefined);
    await target?.close();
    await source.drop();
  });

  it('copies users, mailboxes, mail (GridFS too) and settings into another store, and a second run finishes what is missing', async () => {
    const owner = await createUser(source, { email: 'bob@acme.test', password: 'correct-horse-battery', role: 'admin' });
    const account = await createMailAccount(source, owner.id, 'bob@acme.test', { gatewayDomain: 'in.acme.test' });
    const accountId = new mongoose.Types.ObjectId(account.id);
    const mail = (n: number, body: string) => Buffer.from(`From: alice@customer.test\r\nTo: bob@acme.test\r\nSubject: copy ${n}\r\nMessage-ID: <copy-${n}@customer.test>\r\n\r\n${body}\r\n`);
    const stored = [];
    for (let n = 0; n < 12; n++) {
      // Every fourth is past the inline limit: its raw bytes live in GridFS files and chunks.
      const result = await ingest({ store: source, log: silentLogger }, { raw: mail(n, n % 4 === 0 ? crypto.randomBytes(90_000).toString('base64') : `hello ${n}`), mailboxKey: account.id, accountId, ownerId: new mongoose.Types.ObjectId(owner.id), source: { kind: 'imap' } });
      stored.push(result.id!);
    }
    await source.models.BusinessSettings.updateOne({ _id: 'business' }, { $set: { name: 'Acme', retentionDays: 0 } }, { upsert: true });

    const out: string[] = [];
    const err: string[] = [];
    const context = { config: { dataDir: os.tmpdir(), secretKey: crypto.randomBytes(32) }, applianceRunning: false };
    const cli = (argv: string[], running = false) => runCli(argv, source, { out: (l) => out.push(l), err: (l) => err.push(l) }, { ...context, applianceRunning: running });
    assert.equal(await cli(['copy-store', '--to', 'postgres://x/y']), 64);
    assert.equal(await cli(['copy-store', '--to', targetUri()], true), 1, 'refused beside a running appliance');
    assert.match(err.join('\n'), /Postroom is running .*: stop it first/);

    // A first copy cut short: some messages are already in the target.
    target = await openStore({ uri: targetUri(), log: silentLogger });
    await target.models.Message.collection.insertMany(await source.models.Message.collection.find({}).limit(5).toArray());

    assert.equal(await cli(['copy-store', '--to', targetUri()]), 0, err.join('\n'));
    assert.match(out.join('\n'), /^messages: 12 documents, 7 copied, 5 already there$/m);
    assert.match(out.join('\n'), /start Postroom with MONGODB_URI set to that store and the same SECRET_KEY/);
    const names = (await source.conn.db!.listCollections().toArray()).map((c) => c.name).filter((name) => !name.startsWith('system.'));
    assert.ok(names.some((name) => name.endsWith('.chunks')), `GridFS is among the collections: ${names.join(', ')}`);
    for (const name of names) {
      assert.equal(await target.conn.db!.collection(name).countDocuments(), await source.conn.db!.collection(name).countDocuments(), name);
    }
    for (const id of stored) assert.deepEqual(await storedRaw(target, id), await storedRaw(source, id));
    assert.ok(await findUserByEmail(target, 'bob@acme.test'));
    assert.equal((await target.models.BusinessSettings.findById('business').lean())?.name, 'Acme');

    out.length = 0;
    assert.equal(await cli(['copy-store', '--to', targetUri()]), 0);
    assert.match(out.join('\n'), /^copied 0 of \d+ documents in \d+ collections/m);
  });
});
