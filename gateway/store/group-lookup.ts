import type { CastableModel } from './cast-document';
import { perModel, SharedQuery } from './group-commit';

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

function matches(doc: Record<string, unknown>, filter: EqualityFilter): boolean {
  return Object.entries(filter).every(([field, value]) => doc[field] === value);
}

const lookupOf = perModel(
  (model: CastableModel) =>
    new SharedQuery<EqualityFilter, boolean>(async (filters) => {
      const fields = Object.fromEntries([...new Set(filters.flatMap((filter) => Object.keys(filter)))].map((field) => [field, 1]));
      const found = (await model.collection.find({ $or: filters }, { projection: fields }).toArray()) as Array<Record<string, unknown>>;
      return filters.map((filter) => found.some((doc) => matches(doc, filter)));
    }),
);

/** Whether a document with exactly these field values exists, sharing the query with concurrent checks. */
export function groupExists(model: CastableModel, filter: EqualityFilter): Promise<boolean> {
  return lookupOf(model).ask(filter);
}
