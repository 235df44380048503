import { spawn, type ChildProcess } from 'node:child_process';
import { fromRoot } from '../../gateway/core/paths';

export interface RunningAppliance {
  child: ChildProcess;
  /** Everything it wrote, stdout and stderr in arrival order. */
  output: string[];
}

/**
 * `npm start` (the built dist/gateway/bin/start-all.js) with the given
 * environment and little else of this process's: only what finds programs,
 * caches and test CAs, so a setting the test leaves out is really unset. Its
 * own process group, as in a terminal: Ctrl-C (SIGINT to -pid) reaches the
 * whole group.
 */
export function startAppliance(env: NodeJS.ProcessEnv): RunningAppliance {
  const output: string[] = [];
  const inherited = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
    XDG_CACHE_HOME: process.env.XDG_CACHE_HOME,
    POSTROOM_FERRETDB_BIN: process.env.POSTROOM_FERRETDB_BIN,
    // The test mail servers are on loopback, which the default refuses (tests/support/prepare-env.ts).
    MAIL_SERVER_BLOCKED_NETWORKS: process.env.MAIL_SERVER_BLOCKED_NETWORKS,
  };
  const child = spawn(process.execPath, [fromRoot('dist/gateway/bin/start-all.js')], { env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  return { child, output };
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}
