import { MAX_BATCH, perModel, WriteLoop, writeAndSettle, type Settlement } from './group-commit';

/**
 * Group commit for inserts. Documents that concurrent callers insert into
 * the same collection while a write is in flight go to the store together,
 * in one `insertMany` (ordered: false), instead of one command each: on
 * FerretDB/SQLite, where writes are serialised, the per-command cost is
 * most of the cost of a small insert (measured: 10 documents per command
 * store twice as fast as one). MongoDB gains fewer round trips.
 *
 * Each caller's promise settles with its own document's outcome — resolved
 * once the store acknowledged that document, or rejected with its own error
 * (a duplicate key is reported to the one caller whose document it is) —
 * so "acknowledged before 250" holds per message (gateway/store/group-commit.ts).
 *
 * Documents are cast, validated and time-stamped by mongoose exactly as
 * Model.create would, then written by the driver.
 */

/** The part of a mongoose model this needs (any model of any schema). */
export interface InsertableModel {
  new (doc?: Record<string, unknown>): { validate(): Promise<void>; toBSON(): unknown };
  collection: { insertMany(docs: Array<Record<string, unknown>>, options: { ordered: boolean }): Promise<unknown> };
}

interface Queued extends Settlement {
  doc: Record<string, unknown>;
}

class GroupInserter {
  private queue: Queued[] = [];
  private readonly loop = new WriteLoop(async () => {
    const batch = this.queue.splice(0, MAX_BATCH);
    await writeAndSettle(batch, () => this.model.collection.insertMany(batch.map((q) => q.doc), { ordered: false }));
    return this.queue.length > 0;
  });

  constructor(private readonly model: InsertableModel) {}

  async insert(input: Record<string, unknown>): Promise<void> {
    const doc = new this.model(input);
    await doc.validate();
    // What Model.create does before it writes (schema timestamps: createdAt/updatedAt).
    (doc as unknown as { initializeTimestamps?: () => void }).initializeTimestamps?.();
    const bson = doc.toBSON() as Record<string, unknown>;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ doc: bson, resolve, reject });
      this.loop.kick();
    });
  }
}

const inserterOf = perModel((model: InsertableModel) => new GroupInserter(model));

/** Insert one document, sharing the store command with concurrent inserts into the same collection. */
export function groupInsert(model: InsertableModel, doc: Record<string, unknown>): Promise<void> {
  return inserterOf(model).insert(doc);
}
