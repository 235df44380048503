/**
 * The mechanism behind group-insert.ts, group-counter.ts and
 * group-lookup.ts: one command in flight at a time; whatever callers queue
 * meanwhile leaves together in the next one. When the store is idle a write starts at once (after the
 * current tick, so callers of that tick share it); no timer ever holds a
 * write back. Each caller waits on a Settlement that the write settles with
 * that caller's own outcome.
 */

export interface Settlement {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Largest batch per command (a bounded command size; MongoDB's own limit is 100,000 operations). */
export const MAX_BATCH = 100;

export class BatchLoop {
  private flushing = false;
  private scheduled = false;
  /**
   * Queued while a flush ran. `flushOnce` says whether more is queued before it returns, but a caller it
   * just settled runs on (a microtask) before this loop marks itself idle, and may queue again at once:
   * that request is not in the answer, and without this flag it waited for ever.
   */
  private kickedWhileFlushing = false;

  /** `flushOnce` takes what is queued, writes it, settles it, and says whether more is queued. */
  constructor(private readonly flushOnce: () => Promise<boolean>) {}

  /** Something was queued: make sure a write will take it. */
  kick(): void {
    if (this.flushing) {
      this.kickedWhileFlushing = true;
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    this.kickedWhileFlushing = false;
    let more = false;
    try {
      more = await this.flushOnce();
    } finally {
      this.flushing = false;
      // Whatever was queued during the flush was not taken by it (it takes its batch first).
      if (more || this.kickedWhileFlushing) this.kick();
    }
  }
}

interface WriteErrorLike {
  index: number;
  code?: number;
  errmsg?: string;
  message?: string;
}

/**
 * Settle a batch whose write failed. A bulk write that failed only on some
 * operations (each named by its index) settles the others as written;
 * anything else — a network error, a write concern error, an error without
 * per-operation detail — fails every caller of the batch, exactly as it
 * would have failed a single write.
 */
export function settleFailedBatch(batch: Settlement[], err: unknown): void {
  const e = err as { writeErrors?: WriteErrorLike[] | WriteErrorLike; writeConcernErrors?: unknown[]; result?: { getWriteConcernError?: () => unknown } };
  const writeErrors = Array.isArray(e.writeErrors) ? e.writeErrors : e.writeErrors ? [e.writeErrors] : [];
  const concernFailed = Boolean(e.writeConcernErrors?.length) || Boolean(e.result?.getWriteConcernError?.());
  if (writeErrors.length === 0 || concernFailed) {
    for (const settlement of batch) settlement.reject(err);
    return;
  }
  const byIndex = new Map(writeErrors.map((w) => [w.index, w]));
  batch.forEach((settlement, index) => {
    const failure = byIndex.get(index);
    if (!failure) return settlement.resolve();
    settlement.reject(Object.assign(new Error(failure.errmsg ?? failure.message ?? 'write failed'), { code: failure.code, cause: err }));
  });
}

/** Writes settled in batches: on success every caller resolves, on failure settleFailedBatch decides per caller. */
export async function writeAndSettle(batch: Settlement[], write: () => Promise<unknown>): Promise<void> {
  try {
    await write();
    for (const settlement of batch) settlement.resolve();
  } catch (err) {
    settleFailedBatch(batch, err);
  }
}

/**
 * Reads shared the same way: the requests queued while a query is in
 * flight are answered together by the next one. `answer` gets the batch's
 * requests and returns one answer per request, in order; if it throws,
 * every request of the batch fails with that error.
 */
export class SharedQuery<Request, Answer> {
  private queue: Array<{ request: Request; resolve: (answer: Answer) => void; reject: (err: unknown) => void }> = [];
  private readonly loop = new BatchLoop(async () => {
    const batch = this.queue.splice(0, MAX_BATCH);
    try {
      const answers = await this.answer(batch.map((pending) => pending.request));
      batch.forEach((pending, i) => pending.resolve(answers[i]));
    } catch (err) {
      for (const pending of batch) pending.reject(err);
    }
    return this.queue.length > 0;
  });

  constructor(private readonly answer: (requests: Request[]) => Promise<Answer[]>) {}

  ask(request: Request): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.loop.kick();
    });
  }
}

/** One instance per model (a model belongs to one connection). */
export function perModel<M extends object, W>(create: (model: M) => W): (model: M) => W {
  const instances = new WeakMap<M, W>();
  return (model) => {
    let instance = instances.get(model);
    if (!instance) {
      instance = create(model);
      instances.set(model, instance);
    }
    return instance;
  };
}
