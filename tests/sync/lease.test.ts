import { strict as assert } from 'node:assert';
import { acquireLease, holdLease, newHolderId, releaseLease, renewLease } from '../../gateway/sync/lease';
import { openTestStore } from '../support/store';

describe('account leases (on the real store)', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  before(async () => {
    store = await openTestStore('sync_lease');
  });
  after(async () => store.drop());

  it('gives a free lease to exactly one of many concurrent takers', async () => {
    const holders = Array.from({ length: 8 }, () => newHolderId());
    assert.equal(new Set(holders).size, 8, 'holder ids are unique');
    const results = await Promise.all(holders.map((holder) => acquireLease(store, 'race', holder, 60_000)));
    assert.equal(results.filter(Boolean).length, 1);
    const winner = holders[results.indexOf(true)];
    const doc = await store.models.SyncLease.findOne({ key: 'race' }).sort({ epoch: -1 }).lean();
    assert.equal(doc?.holder, winner);
  });

  it('refuses a held lease, lets the holder renew it, and hands it over once released', async () => {
    const t0 = new Date('2030-01-01T00:00:00Z');
    assert.equal(await acquireLease(store, 'acct', 'A', 60_000, t0), true);
    assert.equal(await acquireLease(store, 'acct', 'B', 60_000, new Date(t0.getTime() + 59_000)), false);
    assert.equal(await acquireLease(store, 'acct', 'A', 60_000, new Date(t0.getTime() + 59_000)), true, 'the holder may take it again');
    assert.equal(await renewLease(store, 'acct', 'A', 60_000, new Date(t0.getTime() + 100_000)), true);
    assert.equal(await acquireLease(store, 'acct', 'B', 60_000, new Date(t0.getTime() + 150_000)), false, 'renewed: still held');
    assert.equal(await renewLease(store, 'acct', 'B', 60_000), false, 'only the holder renews');
    await releaseLease(store, 'acct', 'B'); // not B's: no effect
    assert.equal(await acquireLease(store, 'acct', 'B', 60_000, new Date(t0.getTime() + 150_000)), false);
    await releaseLease(store, 'acct', 'A');
    assert.equal(await acquireLease(store, 'acct', 'B', 60_000, new Date(t0.getTime() + 150_000)), true);
  });

  it("lets another syncer take a crashed holder's lease after it expires", async () => {
    const t0 = new Date('2030-02-01T00:00:00Z');
    assert.equal(await acquireLease(store, 'crashed', 'dead-process', 120_000, t0), true);
    // The holder never renews nor releases (SIGKILL).
    assert.equal(await acquireLease(store, 'crashed', 'other', 120_000, new Date(t0.getTime() + 119_000)), false);
    assert.equal(await acquireLease(store, 'crashed', 'other', 120_000, new Date(t0.getTime() + 120_000)), true);
    assert.equal(await renewLease(store, 'crashed', 'dead-process', 120_000), false, 'the old holder learns it lost the lease');
  });

  it("gives a crashed holder's expired lease to exactly one of many concurrent takers", async () => {
    for (let round = 0; round < 5; round++) {
      const key = `expired-race-${round}`;
      const t0 = new Date('2030-03-01T00:00:00Z');
      assert.equal(await acquireLease(store, key, 'dead-process', 60_000, t0), true);
      const later = new Date(t0.getTime() + 61_000);
      const holders = Array.from({ length: 6 }, () => newHolderId());
      const results = await Promise.all(holders.map((holder) => acquireLease(store, key, holder, 60_000, later)));
      assert.equal(results.filter(Boolean).length, 1, `round ${round}: one winner`);
      assert.equal((await store.models.SyncLease.findOne({ key }).sort({ epoch: -1 }).lean())?.holder, holders[results.indexOf(true)]);
    }
  });

  it('holdLease renews in the background and signals when the lease was taken over', async function () {
    this.timeout(10_000);
    const held = await holdLease(store, 'held', 'H', { ttlMs: 3000 });
    assert.ok(held);
    assert.equal(await holdLease(store, 'held', 'other', { ttlMs: 3000 }), null);
    await new Promise((resolve) => setTimeout(resolve, 3500)); // past the TTL: only renewal keeps it
    assert.equal(await acquireLease(store, 'held', 'other', 3000), false, 'renewed while held');
    assert.equal(held.lost.aborted, false);
    // Someone steals it (as after a long stall past the TTL): the next renewal notices.
    await store.models.SyncLease.updateOne({ key: 'held' }, { $set: { holder: 'thief' } });
    await new Promise((resolve) => setTimeout(resolve, 1200));
    assert.equal(held.lost.aborted, true);
    await held.release();
    assert.equal((await store.models.SyncLease.findOne({ key: 'held' }).lean())?.holder, 'thief', 'a lost lease is not released from under its new holder');
  });
});
