import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describeStartFailure } from '../../gateway/bin/lifecycle';
import { ensureFerretdbBinary, ferretdbBinaryPath } from '../../gateway/store/embedded-ferretdb';

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

  it('names the variable whose port is taken (a real listen on a port in use)', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as net.AddressInfo;
    const second = net.createServer();
    const err = await new Promise<unknown>((resolve) => {
      second.once('error', resolve);
      second.listen(port, '127.0.0.1', () => resolve(null));
    });
    second.close();
    holder.close();
    assert.equal((err as NodeJS.ErrnoException | null)?.code, 'EADDRINUSE');
    const described = describeStartFailure(err, '/data', { smtpPort: 2525, adminPort: port, healthPort: 0 });
    assert.equal(described?.status, 78);
    assert.equal(described?.line, `cannot listen on 127.0.0.1:${port}: the port is already in use (by another program, or another Postroom); choose another ADMIN_PORT (now ${port})`);
    assert.match(describeStartFailure(err, '/data')?.line ?? '', /choose another SMTP_PORT, ADMIN_PORT or HEALTH_PORT$/, 'without the settings: all three');
  });

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

  describe('the embedded store on a machine that cannot build it', () => {
    const saved = { bin: process.env.POSTROOM_FERRETDB_BIN, path: process.env.PATH, cache: process.env.XDG_CACHE_HOME, goCache: process.env.GOCACHE };
    let source: string;
    beforeEach(() => {
      delete process.env.POSTROOM_FERRETDB_BIN;
      // Go's own build cache stays where the real build filled it (it follows XDG_CACHE_HOME otherwise): in an
      // empty one, go compiles its runtime first, which took past the test's timeout on a loaded machine.
      process.env.GOCACHE = saved.goCache ?? execFileSync('go', ['env', 'GOCACHE'], { encoding: 'utf8' }).trim();
      process.env.XDG_CACHE_HOME = path.join(dir, 'cache');
      source = path.join(dir, 'ferretdb');
      fs.mkdirSync(source);
      fs.writeFileSync(path.join(source, 'go.mod'), 'module postroom/broken\n\ngo 1.21\n');
      fs.writeFileSync(path.join(source, 'go.sum'), '');
      fs.writeFileSync(path.join(source, 'main.go'), 'package main\n\nfunc main() { notDefined() }\n');
    });
    afterEach(() => {
      for (const [name, value] of [['POSTROOM_FERRETDB_BIN', saved.bin], ['PATH', saved.path], ['XDG_CACHE_HOME', saved.cache], ['GOCACHE', saved.goCache]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    });
    const failure = () => {
      try {
        ensureFerretdbBinary(undefined, source);
      } catch (err) {
        return describeStartFailure(err, '/data');
      }
      return undefined;
    };

    it('says to install Go (the version go.mod asks for) or set MONGODB_URI when Go is not on PATH', () => {
      process.env.PATH = path.join(dir, 'empty-bin');
      const described = failure();
      assert.equal(described?.status, 78);
      assert.match(described.line, /^MONGODB_URI is not set, and the embedded store is built once with Go, which is not on PATH: install Go 1\.21 or later \(https:\/\/go\.dev\/dl\/\), or set MONGODB_URI/);
    });

    it('says why Go is needed again when an upgrade changed the embedded store an earlier version built', () => {
      // What `git pull` leaves: the earlier version's build in the cache, under the hash of its sources.
      fs.mkdirSync(path.join(dir, 'cache', 'postroom'), { recursive: true });
      const earlier = ferretdbBinaryPath(source).replace(/[0-9a-f]{12}$/, '0123456789ab');
      fs.writeFileSync(earlier, '');
      try {
        process.env.PATH = path.join(dir, 'empty-bin');
        const described = failure();
        assert.equal(described?.status, 78);
        assert.match(described.line, /^MONGODB_URI is not set, and this version of Postroom changed its embedded store, which is built again once with Go \(the build an earlier version made does not fit it\), and Go is not on PATH: install Go 1\.21 or later \(https:\/\/go\.dev\/dl\/\) and start again \(DATA_DIR is untouched\), or set MONGODB_URI/);
      } finally {
        fs.rmSync(earlier);
      }
    });

    it('says the build failed, with the end of what go printed, in one line', () => {
      const described = failure();
      assert.equal(described?.status, 78);
      assert.match(described.line, /^MONGODB_URI is not set, and building the embedded store failed \(go build exited 1: .*undefined: notDefined.*\); .*or set MONGODB_URI/);
      assert.doesNotMatch(described.line, /\n/);
    });
  });
});
