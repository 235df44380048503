/**
 * A signal that aborts when any of `signals` does, for as long as it is in
 * use: `dispose()` unlinks it from them.
 *
 * `AbortSignal.any()` would do the same, but on Node 20 the signal it makes
 * stays listed on every source until that source aborts — it is never
 * pruned when the combined signal is collected (nodejs/node#55351, fixed in
 * later Node versions only). A source that lives as long as the process
 * (the syncer's stop signal) then keeps one entry per call: one per mailbox
 * and sync pass, for months. Plain listeners, removed by `dispose()`, leave
 * nothing behind. ESLint forbids `AbortSignal.any` for this reason.
 */
export interface LinkedAbort {
  readonly signal: AbortSignal;
  /** Stop following the sources (call it in a `finally`); the signal keeps whatever state it has. */
  dispose(): void;
}

export function linkedAbort(signals: readonly AbortSignal[]): LinkedAbort {
  const controller = new AbortController();
  const already = signals.find((source) => source.aborted);
  if (already) {
    controller.abort(already.reason);
    return { signal: controller.signal, dispose: () => undefined };
  }
  const unlink = () => {
    for (const source of signals) source.removeEventListener('abort', onAbort);
  };
  function onAbort(this: AbortSignal): void {
    unlink();
    controller.abort(this.reason);
  }
  for (const source of signals) source.addEventListener('abort', onAbort);
  return { signal: controller.signal, dispose: unlink };
}
