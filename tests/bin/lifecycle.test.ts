import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { fromRoot } from '../../gateway/core/paths';

/**
 * The shutdown every Postroom process shares (gateway/bin/lifecycle.ts), in
 * a process of its own as an operator meets it: Ctrl-C / SIGTERM must stop
 * the process even when one part never finishes stopping (a background pass
 * stuck on a slow store kept `npm start` running after Ctrl-C), naming that
 * part, and still stop the parts started before it (the store last).
 */
describe('process lifecycle', function () {
  this.timeout(30_000);
  const children = new Set<ChildProcess>();
  // A lifecycle that never exits (the defect) must not outlive the test.
  after(() => children.forEach((child) => child.kill('SIGKILL')));

  it('a part that never stops is named and left behind; the others stop and the process exits 0', async () => {
    const script = `
      const { createLifecycle } = require(${JSON.stringify(fromRoot('dist/gateway/bin/lifecycle.js'))});
      const { createLogger } = require(${JSON.stringify(fromRoot('dist/gateway/core/log.js'))});
      const log = createLogger({ level: 'info', destination: process.stdout, pretty: false });
      const lifecycle = createLifecycle(log, 'the test process', 'nothing is lost', { partStopTimeoutMs: 300 });
      lifecycle.add('store', async () => log.info('store stopped'));
      lifecycle.add('crm', () => new Promise(() => undefined));
      lifecycle.add('gateway', async () => log.info('gateway stopped'));
      setInterval(() => undefined, 1000);
      process.stdout.write('ready\\n');
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    const lines: string[] = [];
    let ready: () => void;
    const isReady = new Promise<void>((resolve) => (ready = resolve));
    child.stdout!.on('data', (chunk: Buffer) => {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      if (lines.includes('ready')) ready();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await isReady;
    child.kill('SIGTERM');
    assert.equal(await exited, 0, lines.join('\n'));
    const messages = lines.filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { msg: string; part?: string }));
    const texts = messages.map((m) => m.msg);
    const warning = messages.find((m) => m.part === 'crm');
    assert.ok(warning, texts.join('\n'));
    assert.match(warning.msg, /^crm did not stop within 0\.3 s; stopping the rest anyway/);
    assert.deepEqual(texts.filter((t) => /stopped/.test(t)), ['gateway stopped', 'store stopped', 'the test process stopped']);
  });
});
