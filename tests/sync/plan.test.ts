import { strict as assert } from 'node:assert';
import { backoffDelayMs } from '../../gateway/sync/backoff';
import { isUnchanged, planBatches, seenSince, uidSet, uidSets } from '../../gateway/sync/plan';

describe('sync planning (pure)', () => {
  describe('seenSince', () => {
    it('asks for the flags changed since the saved mod-sequence only when HIGHESTMODSEQ grew and both sides have one', () => {
      assert.equal(seenSince({ highestModSeq: '41' }, 45n), 41n);
      assert.equal(seenSince({ highestModSeq: '45' }, 45n), undefined, 'nothing changed');
      assert.equal(seenSince({ highestModSeq: '45' }, 44n), undefined, 'never backwards');
      assert.equal(seenSince({ highestModSeq: '' }, 45n), undefined, 'a server that had no CONDSTORE');
      assert.equal(seenSince({ highestModSeq: '41' }, undefined), undefined, 'a server that has none now');
      assert.equal(seenSince(null, 45n), undefined, 'a folder read for the first time');
      assert.equal(seenSince({ highestModSeq: '0' }, 45n), undefined, 'no mod-sequence 0 to ask from');
      assert.equal(seenSince({ highestModSeq: '18446744073709551600' }, 18446744073709551615n), 18446744073709551600n, 'mod-sequences are 63-bit and more');
    });
  });

  describe('isUnchanged', () => {
    const state = { uidValidity: '77', lastUid: 41, backfill: { completed: true } };
    const cases: Array<[string, Parameters<typeof isUnchanged>[0], Parameters<typeof isUnchanged>[1], boolean]> = [
      ['same UIDVALIDITY, UIDNEXT right above the cursor', state, { uidValidity: 77n, uidNext: 42 }, true],
      ['UIDNEXT below the cursor (top messages expunged)', state, { uidValidity: 77n, uidNext: 40 }, true],
      ['a new UID was assigned', state, { uidValidity: 77n, uidNext: 43 }, false],
      ['UIDVALIDITY changed', state, { uidValidity: 78n, uidNext: 42 }, false],
      ['UIDNEXT went back below the one the last pass saw (a mailbox restored from a backup)', { ...state, uidNext: 42 }, { uidValidity: 77n, uidNext: 40 }, false],
      ['backfill not finished', { ...state, backfill: { completed: false } }, { uidValidity: 77n, uidNext: 42 }, false],
      ['no cursor yet', null, { uidValidity: 77n, uidNext: 42 }, false],
      ['no STATUS from the server', state, undefined, false],
      ['STATUS without UIDNEXT', state, { uidValidity: 77n }, false],
    ];
    for (const [name, cursor, status, expected] of cases) {
      it(`${expected ? 'skips' : 'syncs'} when ${name}`, () => assert.equal(isUnchanged(cursor, status), expected));
    }
  });

  describe('planBatches', () => {
    const items = (sizes: number[]) => sizes.map((size, i) => ({ uid: i + 1, size }));

    it('cuts by count, keeping the order it was given', () => {
      const batches = planBatches(items(Array(250).fill(10)), { maxCount: 100, maxBytes: 1e9 });
      assert.deepEqual(batches.map((b) => b.length), [100, 100, 50]);
      assert.equal(batches[2][49].uid, 250);
      const reversed = planBatches(items([1, 1, 1]).reverse(), { maxCount: 2, maxBytes: 1e9 });
      assert.deepEqual(reversed.map((b) => b.map((i) => i.uid)), [[3, 2], [1]]);
    });

    it('cuts by bytes; a message bigger than the budget gets a batch of its own', () => {
      const batches = planBatches(items([40, 40, 40, 500, 10]), { maxCount: 100, maxBytes: 100 });
      assert.deepEqual(batches.map((b) => b.map((i) => i.uid)), [[1, 2], [3], [4], [5]]);
    });

    it('counts an oversized message at the truncation cap', () => {
      const batches = planBatches(items([10, 5000, 10]), { maxCount: 100, maxBytes: 100, messageCap: 50 });
      assert.deepEqual(batches.map((b) => b.map((i) => i.uid)), [[1, 2, 3]]);
    });

    it('returns nothing for nothing', () => assert.deepEqual(planBatches([], { maxCount: 10, maxBytes: 10 }), []));
  });

  describe('uidSet', () => {
    it('writes ranges so thousands of UIDs fit a command line', () => {
      assert.equal(uidSet([5, 1, 2, 3, 7, 9, 10, 11, 3]), '1:3,5,7,9:11');
      assert.equal(uidSet(Array.from({ length: 5000 }, (_, i) => 5000 - i)), '1:5000');
      assert.equal(uidSet([42]), '42');
    });

    it('cuts scattered UIDs into sets that each fit a command line, losing none', () => {
      const scattered = Array.from({ length: 15_000 }, (_, i) => 2 * i + 1);
      const sets = uidSets(scattered, 800);
      assert.ok(sets.every((set) => set.length <= 800 && !set.startsWith(',') && !set.endsWith(',')));
      assert.deepEqual(sets.join(',').split(',').map(Number), scattered);
      assert.deepEqual(uidSets([3, 1, 2, 9]), ['1:3,9']);
      assert.deepEqual(uidSets([]), []);
    });
  });

  describe('backoffDelayMs', () => {
    it('doubles from the base and stops at the cap', () => {
      const minute = 60_000;
      const delays = [1, 2, 3, 4, 5, 6, 7, 8, 50].map((failures) => backoffDelayMs(failures, minute, 60 * minute));
      assert.deepEqual(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60].map((m) => m * minute));
      assert.equal(backoffDelayMs(0, minute, 60 * minute), 0);
    });
  });
});
