/**
 * Servers shared by several test files (Dovecot, DNS), started on first use
 * and stopped by the global teardown, so a run starts each at most once.
 */
type Stoppable = { stop(): Promise<void> };

const started = new Map<string, Promise<Stoppable>>();

export function shared<T extends Stoppable>(name: string, start: () => Promise<T>): Promise<T> {
  let server = started.get(name);
  if (!server) {
    server = start();
    started.set(name, server);
  }
  return server as Promise<T>;
}

export async function stopSharedServers(): Promise<void> {
  const servers = [...started.values()];
  started.clear();
  await Promise.allSettled(servers.map(async (server) => (await server).stop()));
}
