import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { RateLimitedError, takeSendSlot } from '../../gateway/send/rate-limit';
import { openTestStore } from '../support/store';

/**
 * SEND_RATE_LIMIT under concurrent sends of one account, on the test run's
 * real store: FerretDB 1.24 runs findAndModify as a read then a write, so a
 * claim built on it let two sends take the last slot together.
 */
describe('send rate limit: concurrent sends of one account', function () {
  this.timeout(120000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  before(async () => {
    store = await openTestStore('send_rate_limit');
  });
  after(async () => store.drop());

  it('lets exactly `max` of many simultaneous sends through, into new slots and into slots whose window has passed', async () => {
    const windowMs = 3_600_000;
    const deps = { store, rateLimit: { max: 3, windowMs } };
    const burst = async (account: { _id: mongoose.Types.ObjectId; email: string }, now: Date) => {
      const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () => takeSendSlot(deps, account, now)));
      for (const o of outcomes) {
        if (o.status === 'rejected') assert.ok(o.reason instanceof RateLimitedError, String(o.reason));
      }
      return outcomes.filter((o) => o.status === 'fulfilled').length;
    };
    for (let round = 0; round < 6; round++) {
      const account = { _id: new mongoose.Types.ObjectId(), email: `round${round}@acme.test` };
      const t0 = Date.now();
      assert.equal(await burst(account, new Date(t0)), 3, `round ${round}: sends through a limit of 3 (new slots)`);
      assert.equal(await burst(account, new Date(t0 + windowMs + 1000)), 3, `round ${round}: sends through a limit of 3 (slots used an hour ago)`);
    }
  });

  it('frees a slot when its use leaves the window, and says how long to wait until then', async () => {
    const deps = { store, rateLimit: { max: 2, windowMs: 60_000 } };
    const account = { _id: new mongoose.Types.ObjectId(), email: 'carol@acme.test' };
    const t0 = Date.now();
    await takeSendSlot(deps, account, new Date(t0));
    await takeSendSlot(deps, account, new Date(t0 + 20_000));
    const refused = await takeSendSlot(deps, account, new Date(t0 + 30_000)).then(() => null, (err: unknown) => err);
    assert.ok(refused instanceof RateLimitedError);
    assert.equal(refused.retryAfter, 30, 'the first send leaves the window at t0 + 60 s');
    assert.match(refused.message, /^carol@acme\.test has sent 2 messages in the last 1 min, the most the administrator allows \(SEND_RATE_LIMIT\)\. The next one can go in 30 s\.$/);
    await takeSendSlot(deps, account, new Date(t0 + 60_000));
    const again = await takeSendSlot(deps, account, new Date(t0 + 61_000)).then(() => null, (err: unknown) => err);
    assert.ok(again instanceof RateLimitedError);
    assert.equal(again.retryAfter, 19, 'now the second send, at t0 + 20 s, is the oldest in the window');
  });
});
