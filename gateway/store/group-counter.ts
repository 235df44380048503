import type mongoose from 'mongoose';
import { settleFailedBatch, type Pending } from './group-insert';

/**
 * Group commit for counter updates (a mail account's messageCount and
 * lastMailAt, one update per stored message). Updates of one document that
 * arrive while a write is in flight are merged — increments summed, later
 * `$set` values win — and the updates of all documents leave together in
 * one `bulkWrite`. Each caller's promise settles when the write carrying
 * its increment is acknowledged, so no count is reported before it is
 * stored; under load, twenty concurrent messages to one account cost one
 * store command instead of twenty.
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
  id: unknown;
  inc: Record<string, number>;
  set: Record<string, unknown>;
  waiters: Array<Omit<Pending, 'doc'>>;
}

/** Documents per command, as for grouped inserts. */
const MAX_BATCH = 100;

class CounterWriter {
  private pending = new Map<string, Merged>();
  private flushing = false;
  private scheduled = false;

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
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.flushing || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.pending.size === 0) return;
    this.flushing = true;
    const batch = [...this.pending.values()].slice(0, MAX_BATCH);
    for (const merged of batch) this.pending.delete(merged.id!.toString());
    const operations = batch.map((merged) => {
      const update: Record<string, unknown> = {};
      if (Object.keys(merged.inc).length > 0) update.$inc = merged.inc;
      if (Object.keys(merged.set).length > 0) update.$set = merged.set;
      return { updateOne: { filter: { _id: merged.id }, update } } as mongoose.mongo.AnyBulkWriteOperation;
    });
    // One settlement per document; its waiters share it.
    const settlements: Pending[] = batch.map((merged) => ({
      doc: {},
      resolve: () => merged.waiters.forEach((w) => w.resolve()),
      reject: (err: unknown) => merged.waiters.forEach((w) => w.reject(err)),
    }));
    try {
      await this.model.collection.bulkWrite(operations, { ordered: false });
      for (const settlement of settlements) settlement.resolve();
    } catch (err) {
      settleFailedBatch(settlements, err);
    } finally {
      this.flushing = false;
      if (this.pending.size > 0) this.schedule();
    }
  }
}

const writers = new WeakMap<object, CounterWriter>();

/** Apply `{$inc, $set}` to the document `id`, merged with concurrent updates of it. */
export function groupCounterUpdate(model: UpdatableModel, id: { toString(): string }, change: CounterUpdate): Promise<void> {
  let writer = writers.get(model);
  if (!writer) {
    writer = new CounterWriter(model);
    writers.set(model, writer);
  }
  return writer.update(id, change);
}
