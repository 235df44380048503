import type mongoose from 'mongoose';
import { MAX_BATCH, perModel, BatchLoop, writeAndSettle, type Settlement } from './group-commit';

/**
 * Group commit for counter updates (a mail account's messageCount and
 * lastMailAt, one update per stored message). Updates of one document that
 * arrive while a write is in flight are merged — increments summed, later
 * `$set` values win — and the updates of all documents leave together in
 * one `bulkWrite` (gateway/store/group-commit.ts). Each caller's promise
 * settles when the write carrying its increment is acknowledged, so no
 * count is reported before it is stored; under load, twenty concurrent
 * messages to one account cost one store command instead of twenty.
 */

export interface CounterUpdate {
  inc?: Record<string, number>;
  set?: Record<string, unknown>;
}

/** The part of a mongoose model this needs. */
export interface UpdatableModel {
  collection: { bulkWrite(operations: mongoose.mongo.AnyBulkWriteOperation[], options: { ordered: boolean }): Promise<unknown> };
}

interface Merged {
  id: { toString(): string };
  inc: Record<string, number>;
  set: Record<string, unknown>;
  waiters: Settlement[];
}

class CounterWriter {
  private pending = new Map<string, Merged>();
  private readonly loop = new BatchLoop(async () => {
    const batch = [...this.pending.values()].slice(0, MAX_BATCH);
    for (const merged of batch) this.pending.delete(merged.id.toString());
    const operations = batch.map((merged) => {
      const update: Record<string, unknown> = {};
      if (Object.keys(merged.inc).length > 0) update.$inc = merged.inc;
      if (Object.keys(merged.set).length > 0) update.$set = merged.set;
      return { updateOne: { filter: { _id: merged.id }, update } } as mongoose.mongo.AnyBulkWriteOperation;
    });
    // One settlement per document (operation index); its waiters share it.
    const settlements: Settlement[] = batch.map((merged) => ({
      resolve: () => merged.waiters.forEach((w) => w.resolve()),
      reject: (err: unknown) => merged.waiters.forEach((w) => w.reject(err)),
    }));
    await writeAndSettle(settlements, () => this.model.collection.bulkWrite(operations, { ordered: false }));
    return this.pending.size > 0;
  });

  constructor(private readonly model: UpdatableModel) {}

  update(id: { toString(): string }, change: CounterUpdate): Promise<void> {
    const key = id.toString();
    let merged = this.pending.get(key);
    if (!merged) {
      merged = { id, inc: {}, set: {}, waiters: [] };
      this.pending.set(key, merged);
    }
    for (const [field, by] of Object.entries(change.inc ?? {})) merged.inc[field] = (merged.inc[field] ?? 0) + by;
    Object.assign(merged.set, change.set);
    const entry = merged;
    return new Promise<void>((resolve, reject) => {
      entry.waiters.push({ resolve, reject });
      this.loop.kick();
    });
  }
}

const writerOf = perModel((model: UpdatableModel) => new CounterWriter(model));

/** Apply `{$inc, $set}` to the document `id`, merged with concurrent updates of it. */
export function groupCounterUpdate(model: UpdatableModel, id: { toString(): string }, change: CounterUpdate): Promise<void> {
  return writerOf(model).update(id, change);
}
