import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { groupCounterUpdate } from '../../gateway/store/group-counter';
import { groupInsert } from '../../gateway/store/group-insert';
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
