import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { groupCounterUpdate } from '../../gateway/store/group-counter';
import { castDocument } from '../../gateway/store/cast-document';
import { groupInsert } from '../../gateway/store/group-insert';
import { groupExists } from '../../gateway/store/group-lookup';
import { openTestStore } from '../support/store';

type ObjectId = mongoose.Types.ObjectId;

/** Count the store commands a collection receives (a spy, the writes still go to the real store). */
function countCalls<T extends object>(target: T, method: keyof T): { calls: () => number; restore: () => void } {
  const original = target[method] as unknown as (...args: unknown[]) => unknown;
  let calls = 0;
  (target as Record<keyof T, unknown>)[method] = (...args: unknown[]) => {
    calls += 1;
    return original.apply(target, args);
  };
  return { calls: () => calls, restore: () => ((target as Record<keyof T, unknown>)[method] = original) };
}

describe('group commit: inserts and counters shared by concurrent writers (real store)', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  before(async () => {
    store = await openTestStore('group_write');
  });
  after(async () => store.drop());

  const link = (messageId: ObjectId, objectId: ObjectId) => ({
    messageId, objectId, ownerId: messageId, address: 'a@b.test', rule: 'address', receivedAt: new Date(), createdAt: new Date(), reasons: [],
  });

  it('acknowledges each document on its own: a duplicate key fails only its own caller, the rest are stored', async () => {
    const message = new mongoose.Types.ObjectId();
    const taken = [new mongoose.Types.ObjectId(), new mongoose.Types.ObjectId()];
    for (const objectId of taken) await store.models.Link.create(link(message, objectId));
    const fresh = Array.from({ length: 18 }, () => new mongoose.Types.ObjectId());
    const spy = countCalls(store.models.Link.collection, 'insertMany');
    let outcomes: PromiseSettledResult<void>[];
    try {
      outcomes = await Promise.allSettled([...fresh, ...taken].map((objectId) => groupInsert(store.models.Link, link(message, objectId))));
    } finally {
      spy.restore();
    }
    assert.deepEqual(outcomes.slice(0, 18).map((o) => o.status), Array(18).fill('fulfilled'));
    for (const failed of outcomes.slice(18)) {
      assert.equal(failed.status, 'rejected');
      assert.equal(((failed as PromiseRejectedResult).reason as { code?: number }).code, 11000, 'the caller learns it was a duplicate');
    }
    assert.equal(await store.models.Link.countDocuments({ messageId: message }), 20);
    assert.ok(spy.calls() < 20, `20 concurrent inserts shared commands (${spy.calls()} commands)`);
    const stored = await store.models.Link.findOne({ messageId: message, objectId: fresh[0] }).lean();
    assert.equal(stored?.removedAt, null, 'schema defaults applied as by Model.create');
  });

  it('refuses a document that fails validation before anything is written', async () => {
    await assert.rejects(groupInsert(store.models.Link, { messageId: new mongoose.Types.ObjectId() }), /required/);
  });

  it('writes exactly what Model.create would: cast, defaults, timestamps (message and link documents)', async () => {
    const { BSON } = mongoose.mongo;
    // Byte for byte below the top level, so field order in embedded documents counts too (MongoDB
    // matches those in order: $addToSet of a message source); top-level order means nothing.
    const bytes = (doc: unknown) => {
      const plain = doc as Record<string, unknown>;
      const keys = Object.keys(plain).filter((key) => key !== 'createdAt' && key !== 'updatedAt').sort();
      return Buffer.from(BSON.serialize(Object.fromEntries(keys.map((key) => [key, plain[key]]))));
    };
    const message = {
      _id: new mongoose.Types.ObjectId(),
      mailboxKey: 'acct-1', accountId: new mongoose.Types.ObjectId().toString(), ownerId: new mongoose.Types.ObjectId(),
      contentHash: 'c'.repeat(64), dedupeKey: 'd'.repeat(64), messageId: 'm1@customer.test',
      sources: [{ kind: 'imap', at: new Date(), folder: 'INBOX', uid: 7, uidValidity: '9' }, { kind: 'forward', at: '2026-01-02T03:04:05Z' }],
      receivedAt: new Date(), date: null, from: { address: 'alice@customer.test', name: 'Alice' }, sender: null,
      to: [{ address: 'bob@acme.test' }], cc: [], replyTo: [], addresses: ['alice@customer.test', 'bob@acme.test'],
      subject: 'Quote', references: ['a@b'], headers: [{ name: 'Subject', value: 'Quote' }, { name: 'X-Empty', value: '' }],
      text: 'hello', html: '<p>hello</p>', attachments: [{ filename: 'q.pdf', size: 3, blobId: new mongoose.Types.ObjectId() }],
      rawInline: Buffer.from('Subject: Quote\r\n\r\nhello'), size: 27, auth: { verdict: 'pass', reason: 'dmarc', results: 'x' },
      status: 'quarantine', confirmation: undefined, linkedObjectIds: [new mongoose.Types.ObjectId()], linkedAt: new Date(),
    };
    const cases = [
      { model: store.models.Message, input: message },
      { model: store.models.Link, input: { _id: new mongoose.Types.ObjectId(), ...link(new mongoose.Types.ObjectId(), new mongoose.Types.ObjectId()) } },
    ];
    for (const { model, input } of cases) {
      const lean = castDocument(model, input);
      const expected = new model(input).toBSON();
      assert.ok(bytes(lean).equals(bytes(expected)), `${model.modelName}: same document as Model.create\n${JSON.stringify(lean)}\n${JSON.stringify(expected)}`);
    }
    const stored = castDocument(store.models.Message, message);
    assert.ok(stored.createdAt instanceof Date && stored.updatedAt instanceof Date, 'schema timestamps set');
    assert.equal((stored.sources as Array<{ queueId: string }>)[1].queueId, '', 'defaults inside arrays of sub-documents');
    assert.ok((stored.sources as Array<{ at: Date }>)[1].at instanceof Date, 'strings cast to dates');
    assert.ok(stored.accountId instanceof mongoose.Types.ObjectId, 'strings cast to ObjectIds');
  });

  it('names every path that fails validation or casting, nested ones too', () => {
    const base = { mailboxKey: 'k', ownerId: new mongoose.Types.ObjectId(), contentHash: 'c', dedupeKey: 'd', receivedAt: new Date(), size: 1 };
    assert.throws(
      () => castDocument(store.models.Message, { ...base, mailboxKey: '', status: 'bogus', sources: [{ at: new Date() }], auth: { verdict: 'maybe' } }),
      (err: Error) => {
        assert.equal(err.name, 'ValidationError');
        for (const path of ['mailboxKey', 'status', 'sources.0.kind', 'auth.verdict']) assert.match(err.message, new RegExp(`\\b${path.replace('.', '\\.')}\\b`), path);
        return true;
      },
    );
    assert.throws(() => castDocument(store.models.Message, { ...base, receivedAt: 'not a date' }), /receivedAt/);
    assert.doesNotThrow(() => castDocument(store.models.Message, base));
  });

  it('answers concurrent existence checks from shared queries, each with its own answer', async () => {
    const mailboxKey = `lookup-${new mongoose.Types.ObjectId()}`;
    const deleted = ['k3', 'k11', 'k29'];
    for (const dedupeKey of deleted) await store.models.Tombstone.create({ mailboxKey, dedupeKey, deletedAt: new Date() });
    await store.models.Tombstone.create({ mailboxKey: `${mailboxKey}-other`, dedupeKey: 'k5', deletedAt: new Date() });
    const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
    const spy = countCalls(store.models.Tombstone.collection, 'find');
    let answers: boolean[];
    try {
      answers = await Promise.all(keys.map((dedupeKey) => groupExists(store.models.Tombstone, { mailboxKey, dedupeKey })));
    } finally {
      spy.restore();
    }
    assert.deepEqual(keys.filter((_, i) => answers[i]), deleted, 'only the deleted keys of this mailbox exist (k5 belongs to another mailbox)');
    assert.ok(spy.calls() < 30, `30 concurrent checks shared queries (${spy.calls()} queries)`);
  });

  it('answers a caller that asks again the moment its first answer came (no wake-up lost while the loop winds down)', async () => {
    const mailboxKey = `again-${new mongoose.Types.ObjectId()}`;
    await store.models.Tombstone.create({ mailboxKey, dedupeKey: 'gone', deletedAt: new Date() });
    // The second check is queued by the first one's continuation, before the loop has marked itself idle:
    // it used to wait for ever (ingest asks twice for mail without a Message-ID).
    const first = await groupExists(store.models.Tombstone, { mailboxKey, dedupeKey: 'gone' });
    const second = await groupExists(store.models.Tombstone, { mailboxKey, dedupeKey: 'kept' });
    assert.deepEqual([first, second], [true, false]);
  });

  it('fails every check of a lookup the store could not answer, and the next lookup works again', async () => {
    const collection = store.models.Tombstone.collection;
    const original = collection.find;
    (collection as { find: unknown }).find = () => {
      throw new Error('connection 7 closed');
    };
    let outcomes: PromiseSettledResult<boolean>[];
    try {
      outcomes = await Promise.allSettled(['a', 'b'].map((dedupeKey) => groupExists(store.models.Tombstone, { mailboxKey: 'x', dedupeKey })));
    } finally {
      (collection as { find: unknown }).find = original;
    }
    for (const outcome of outcomes) assert.match(String((outcome as PromiseRejectedResult).reason), /connection 7 closed/);
    assert.equal(await groupExists(store.models.Tombstone, { mailboxKey: 'x', dedupeKey: 'a' }), false);
  });

  it('merges concurrent increments of one document into few writes and acknowledges each caller', async () => {
    const id = new mongoose.Types.ObjectId();
    await store.conn.db!.collection('counters_test').insertOne({ _id: id, messageCount: 0 });
    const model = { collection: store.conn.db!.collection('counters_test') };
    const spy = countCalls(model.collection, 'bulkWrite');
    const last = new Date('2026-11-27T12:00:00Z');
    try {
      await Promise.all(Array.from({ length: 50 }, (_, i) => groupCounterUpdate(model, id, { inc: { messageCount: 1 }, set: { lastMailAt: i === 49 ? last : new Date(0) } })));
    } finally {
      spy.restore();
    }
    const doc = await model.collection.findOne({ _id: id });
    assert.equal(doc?.messageCount, 50, 'no increment lost');
    assert.ok(spy.calls() < 10, `50 increments in ${spy.calls()} writes`);
    assert.equal((doc?.lastMailAt as Date).toISOString(), last.toISOString(), 'the latest value wins');
  });
});
