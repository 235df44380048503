import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from '../lib/proc';

/**
 * Tier (a): Postfix's smtp-sink, the machine's SMTP ceiling — a C server
 * that answers every command at once and throws the mail away. Taken from
 * Debian's `postfix` package with `apt-get download` + `dpkg -x` into a
 * cache directory: nothing is installed, no Postfix service appears.
 * smtp-sink needs only the libpostfix-*.so next to it (LD_LIBRARY_PATH).
 */

function cacheRoot(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'postroom', 'postfix');
}

export interface SmtpSinkBinary {
  bin: string;
  libDir: string;
  version: string;
}

/** Download and unpack once; later runs reuse the cache. */
export function ensureSmtpSink(log: (line: string) => void = () => undefined): SmtpSinkBinary {
  const root = cacheRoot();
  const existing = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, 'usr/sbin/smtp-sink'))) : [];
  if (existing.length > 0) {
    const dir = path.join(root, existing.sort().at(-1)!);
    return { bin: path.join(dir, 'usr/sbin/smtp-sink'), libDir: path.join(dir, 'usr/lib/postfix'), version: existing.sort().at(-1)! };
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-postfix-'));
  // apt's download sandbox user must be able to write here.
  fs.chmodSync(work, 0o777);
  try {
    const download = () => execFileSync('apt-get', ['download', 'postfix'], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      download();
    } catch {
      log('apt-get download postfix failed; refreshing the package lists once (apt-get update)');
      execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'pipe', 'pipe'] });
      download();
    }
    const deb = fs.readdirSync(work).find((f) => /^postfix_.*\.deb$/.test(f));
    if (!deb) throw new Error('apt-get download postfix produced no .deb');
    const version = deb.replace(/^postfix_/, '').replace(/\.deb$/, '').replace(/[^\w.+-]/g, '_');
    const target = path.join(root, version);
    const partial = `${target}.${process.pid}.tmp`;
    fs.mkdirSync(partial, { recursive: true });
    execFileSync('dpkg', ['-x', path.join(work, deb), partial]);
    fs.renameSync(partial, target);
    log(`unpacked ${deb} into ${target}`);
    return { bin: path.join(target, 'usr/sbin/smtp-sink'), libDir: path.join(target, 'usr/lib/postfix'), version };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export interface RunningSink {
  port: number;
  pid: number | undefined;
  version: string;
  stop(): Promise<void>;
}

export async function startSmtpSink(options: { log?: (line: string) => void } = {}): Promise<RunningSink> {
  const binary = ensureSmtpSink(options.log);
  const port = await freePort();
  // -u: required as root (it drops privileges); -m: concurrent sessions; backlog 256.
  const args = [...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []), '-m', '256', `127.0.0.1:${port}`, '256'];
  const child: ChildProcess = spawn(binary.bin, args, { env: { ...process.env, LD_LIBRARY_PATH: binary.libDir }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  try {
    await waitForPort(port, 5000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`smtp-sink did not start: ${stderr || (err as Error).message}`);
  }
  return {
    port,
    pid: child.pid,
    version: binary.version,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
