import { strict as assert } from 'node:assert';
import { Types } from 'mongoose';
import { claimSendKey, newSendKey } from '../../gateway/send';
import { openTestStore } from '../support/store';

/** One message per press of Send (gateway/send/send-once.ts), against the real store. */
describe('send: one message per press of Send', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  const owner = new Types.ObjectId();
  before(async () => {
    store = await openTestStore('send_once');
  });
  after(async () => store.drop());

  it('a second press waits for the first and answers with its result', async () => {
    const key = newSendKey();
    const first = await claimSendKey(store, owner, key, { now: new Date(), waitMs: 5000, pollMs: 20 });
    assert.equal(first.claimed, true);
    const second = claimSendKey(store, owner, key, { now: new Date(), waitMs: 5000, pollMs: 20 });
    if (first.claimed) await first.finish({ location: '/messages/abc', notice: 'Sent from bob@acme.test.', noticeKind: 'success' });
    assert.deepEqual(await second, { claimed: false, result: { location: '/messages/abc', notice: 'Sent from bob@acme.test.', noticeKind: 'success' } });
  });

  it('a first press that sent nothing gives the key up to the next one', async () => {
    const key = newSendKey();
    const first = await claimSendKey(store, owner, key, { now: new Date(), waitMs: 5000, pollMs: 20 });
    const second = claimSendKey(store, owner, key, { now: new Date(), waitMs: 5000, pollMs: 20 });
    if (first.claimed) await first.release();
    assert.equal((await second).claimed, true);
  });

  it('a press still "sending" after the wait is reported as under way, not sent again', async () => {
    const key = newSendKey();
    assert.equal((await claimSendKey(store, owner, key, { now: new Date(), waitMs: 1000 })).claimed, true);
    assert.deepEqual(await claimSendKey(store, owner, key, { now: new Date(), waitMs: 100, pollMs: 20 }), { claimed: false, result: null });
  });

  it('a claim left "sending" by an admin that was restarted mid-send does not block the key for good', async () => {
    const key = newSendKey();
    const tenMinutesAgo = new Date(Date.now() - 10 * 60_000);
    assert.equal((await claimSendKey(store, owner, key, { now: tenMinutesAgo, waitMs: 1000 })).claimed, true);
    const again = await claimSendKey(store, owner, key, { now: new Date(), waitMs: 100, pollMs: 20 });
    assert.equal(again.claimed, true, 'the next press sends');
  });

  it('keys are per user: the same key of another user is a different press', async () => {
    const key = newSendKey();
    assert.equal((await claimSendKey(store, owner, key, { now: new Date(), waitMs: 100 })).claimed, true);
    assert.equal((await claimSendKey(store, new Types.ObjectId(), key, { now: new Date(), waitMs: 100 })).claimed, true);
  });
});
