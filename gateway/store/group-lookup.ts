import type { CastableModel } from './cast-document';
import { BatchLoop, MAX_BATCH, perModel } from './group-commit';

/**
 * Group lookups: concurrent "does a document with these field values
 * exist?" checks against one collection share one `find` with an `$or` of
 * their filters. The ingest pipeline asks this once per message (has the
 * owner deleted this message before?) and almost always hears "no"; on
 * FerretDB every such query reads the whole collection, on MongoDB each
 * clause is an index lookup, and on both the command itself (round trip,
 * query planning) cost more than the answer.
 *
 * Filters are equalities on plain values (strings, numbers), compared as
 * stored, no casting.
 */

export type EqualityFilter = Record<string, string | number>;

interface Pending {
  filter: EqualityFilter;
  resolve: (found: boolean) => void;
  reject: (err: unknown) => void;
}

function matches(doc: Record<string, unknown>, filter: EqualityFilter): boolean {
  return Object.entries(filter).every(([field, value]) => doc[field] === value);
}

class GroupLookup {
  private queue: Pending[] = [];
  private readonly loop = new BatchLoop(async () => {
    const batch = this.queue.splice(0, MAX_BATCH);
    const fields = Object.fromEntries([...new Set(batch.flatMap((p) => Object.keys(p.filter)))].map((field) => [field, 1]));
    try {
      const found = (await this.model.collection.find({ $or: batch.map((p) => p.filter) }, { projection: fields }).toArray()) as Array<Record<string, unknown>>;
      for (const pending of batch) pending.resolve(found.some((doc) => matches(doc, pending.filter)));
    } catch (err) {
      for (const pending of batch) pending.reject(err);
    }
    return this.queue.length > 0;
  });

  constructor(private readonly model: CastableModel) {}

  exists(filter: EqualityFilter): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.queue.push({ filter, resolve, reject });
      this.loop.kick();
    });
  }
}

const lookupOf = perModel((model: CastableModel) => new GroupLookup(model));

/** Whether a document with exactly these field values exists, sharing the query with concurrent checks. */
export function groupExists(model: CastableModel, filter: EqualityFilter): Promise<boolean> {
  return lookupOf(model).exists(filter);
}
