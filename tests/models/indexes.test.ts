import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { SecretBox } from '../../gateway/core/crypto';
import { ensureIndexes, RETIRED_INDEXES } from '../../gateway/models';
import { openTestStore } from '../support/store';

describe('models on the real store', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  before(async () => {
    store = await openTestStore('models');
  });
  after(async () => store.drop());

  it('creates every declared index on the server (idempotently)', async () => {
    await ensureIndexes(store.models); // second run: must not fail
    for (const model of Object.values(store.models)) {
      const declared = model.schema.indexes().map(([fields]) => JSON.stringify(fields));
      const onServer = (await model.collection.indexes()).map((index) => JSON.stringify(index.key));
      for (const fields of declared) assert.ok(onServer.includes(fields), `${model.modelName} is missing index ${fields} (has ${onServer.join(', ')})`);
    }
  });

  it('drops the indexes an earlier release built that nothing reads any more (each write still paid for them)', async () => {
    const messages = store.models.Message.collection;
    await messages.createIndex({ mailboxKey: 1, references: 1 });
    await messages.createIndex({ mailboxKey: 1, messageId: 1 });
    await ensureIndexes(store.models);
    const names = (await messages.indexes()).map((index) => index.name);
    for (const retired of RETIRED_INDEXES.messages!) assert.ok(!names.includes(retired), `${retired} is still there (${names.join(', ')})`);
    assert.ok(names.includes('ownerId_1_references_1') && names.includes('ownerId_1_messageId_1'));
    await ensureIndexes(store.models); // nothing left to drop: must not fail
  });

  it('enforces the uniqueness the product relies on', async () => {
    const { User, MailAccount, Message } = store.models;
    const owner = await User.create({ email: 'bob@acme.test', dropboxToken: 'drop1' });
    await assert.rejects(User.create({ email: 'BOB@acme.test', dropboxToken: 'drop2' }), /duplicate key/i);
    const base = { ownerId: owner._id, email: 'bob@acme.test', domain: 'acme.test' };
    await MailAccount.create({ ...base, forwardingToken: 'tok1', forwardingAddress: 'bob-acme-test.tok1@in.test' });
    await assert.rejects(MailAccount.create({ ...base, email: 'other@acme.test', forwardingToken: 'tok1', forwardingAddress: 'x.tok1@in.test' }), /duplicate key/i);
    const message = { mailboxKey: 'a1', ownerId: owner._id, contentHash: 'h', dedupeKey: 'k1', receivedAt: new Date(), rawBlobId: owner._id, size: 1 };
    await Message.create(message);
    await assert.rejects(Message.create(message), /duplicate key/i);
    await Message.create({ ...message, mailboxKey: 'a2' }); // same mail in another mailbox is its own record
  });

  it('keeps IMAP passwords encrypted at rest: the stored document never holds the plaintext', async () => {
    const { User, MailAccount } = store.models;
    const box = new SecretBox(crypto.randomBytes(32));
    const owner = await User.create({ email: 'carol@acme.test', dropboxToken: 'drop3' });
    const account = new MailAccount({ ownerId: owner._id, email: 'carol@acme.test', domain: 'acme.test', forwardingToken: 'tok3', forwardingAddress: 'c.tok3@in.test' });
    account.imap!.passwordEnc = box.seal('Sup3r-Secret-Pw', account._id.toString());
    await account.save();
    const raw = await store.conn.db!.collection('mail_accounts').findOne({ _id: account._id });
    assert.ok(raw);
    assert.doesNotMatch(JSON.stringify(raw), /Sup3r-Secret-Pw/);
    const reloaded = await MailAccount.findById(account._id).lean();
    assert.equal(box.open(reloaded!.imap!.passwordEnc!, account._id.toString()), 'Sup3r-Secret-Pw');
  });

  it('stores raw bytes through GridFS and reads them back', async () => {
    const bytes = crypto.randomBytes(600 * 1024); // spans several 255 KB chunks
    const id = await store.blobs.put(bytes);
    assert.deepEqual(await store.blobs.get(id), bytes);
    await store.blobs.delete(id);
    await assert.rejects(store.blobs.get(id), /FileNotFound|not found/i);
  });
});
