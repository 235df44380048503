import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describeStartFailure } from '../../gateway/bin/lifecycle';
import { ensureFerretdbBinary } from '../../gateway/store/embedded-ferretdb';

/**
 * What an operator reads when a process cannot start because of the
 * machine it runs on: one line naming the variable to fix and exit 78,
 * not a stack trace (docker compose logs shows only the last lines).
 */
describe('start failures an operator must fix', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-startfail-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** The error a real write under DATA_DIR raises when DATA_DIR is a file (root can write anywhere else). */
  function writeErrorUnder(dataDir: string): unknown {
    try {
      fs.mkdirSync(path.join(dataDir, 'tls'), { recursive: true });
    } catch (err) {
      return err;
    }
    assert.fail('the write should have failed');
  }

  it('names DATA_DIR, the path and the reason when DATA_DIR cannot be written', () => {
    const dataDir = path.join(dir, 'not-a-dir');
    fs.writeFileSync(dataDir, '');
    const described = describeStartFailure(writeErrorUnder(dataDir), dataDir);
    assert.ok(described, 'a write failure under DATA_DIR is described');
    assert.equal(described.status, 78);
    assert.match(described.line, new RegExp(`^cannot write ${dataDir}/tls: .+ \\(ENOTDIR\\); DATA_DIR=${dataDir} must be a directory .*can write`));
  });

  // A volume owned by root, a read-only mount, a full disk (root cannot provoke these here: injected).
  for (const [code, words] of [['EACCES', 'permission denied'], ['EROFS', 'read-only file system'], ['ENOSPC', 'no space left on the device']] as const) {
    it(`says ${words} for ${code}`, () => {
      const err = Object.assign(new Error(`${code}: …`), { code, syscall: 'open', path: '/data/haraka/config/smtp.ini' });
      assert.match(describeStartFailure(err, '/data')?.line ?? '', new RegExp(`^cannot write /data/haraka/config/smtp.ini: ${words} \\(${code}\\); DATA_DIR=/data `));
    });
  }

  it('names BIND_ADDRESS when it is not an address of this machine (a real listen on a TEST-NET address)', async () => {
    const server = net.createServer();
    const err = await new Promise<unknown>((resolve) => {
      server.once('error', resolve);
      server.listen(2525, '192.0.2.7', () => resolve(null));
    });
    server.close();
    assert.equal((err as NodeJS.ErrnoException | null)?.code, 'EADDRNOTAVAIL');
    const described = describeStartFailure(err, '/data');
    assert.equal(described?.status, 78);
    assert.equal(described?.line, 'cannot listen on 192.0.2.7:2525: 192.0.2.7 is not an address of this machine; set BIND_ADDRESS to one of its addresses (127.0.0.1, or 0.0.0.0 for all)');
  });

  it('leaves file errors outside DATA_DIR to the stack trace (a bug, not the setup)', () => {
    const err = Object.assign(new Error('EACCES'), { code: 'EACCES', syscall: 'open', path: '/app/admin/views/x.ejs' });
    assert.equal(describeStartFailure(err, '/data'), null);
    assert.equal(describeStartFailure(err, '/app/adm'), null, 'a path that merely starts with the same letters is not inside');
  });

  it('asks for MONGODB_URI where the embedded store is not installed (the Docker image)', () => {
    const saved = process.env.POSTROOM_FERRETDB_BIN;
    delete process.env.POSTROOM_FERRETDB_BIN;
    try {
      const missing = path.join(dir, 'tests', 'ferretdb');
      let thrown: unknown;
      try {
        ensureFerretdbBinary(undefined, missing);
      } catch (err) {
        thrown = err;
      }
      const described = describeStartFailure(thrown, '/data');
      assert.equal(described?.status, 78, String(thrown));
      assert.match(described.line, /^MONGODB_URI is not set, and this installation has no embedded store .*: set MONGODB_URI \(example: MONGODB_URI=mongodb:\/\/mongo:27017\/postroom\?replicaSet=rs0\)$/);
    } finally {
      if (saved !== undefined) process.env.POSTROOM_FERRETDB_BIN = saved;
    }
  });
});
