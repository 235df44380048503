/**
 * A timer loop whose passes never overlap within one process: a kick while a
 * pass runs schedules exactly one more pass after it. Background workers
 * (CRM jobs, webhook deliveries) share it; errors are reported, never thrown.
 */
export interface SerialLoop {
  kick(): void;
  /** Resolves when no pass is running. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

export function startSerialLoop(run: () => Promise<unknown>, intervalMs: number, onError: (err: Error) => void): SerialLoop {
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;
  const pass = () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = run()
      .then(() => undefined)
      .catch(onError)
      .finally(() => {
        running = null;
        if (again) {
          again = false;
          pass();
        }
      });
  };
  const timer = setInterval(pass, intervalMs);
  timer.unref();
  const idle = async () => {
    while (running) await running;
  };
  return {
    kick: pass,
    idle,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await idle();
    },
  };
}
