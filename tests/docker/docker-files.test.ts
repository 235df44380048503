import { strict as assert } from 'node:assert';
import { execFile, execFileSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fromRoot } from '../../gateway/core/paths';
import { loadConfig } from '../../gateway/core/config';

/**
 * No Docker engine runs on the build machines, so the images are checked
 * statically: everything the Dockerfile copies exists, every entry point and
 * health-check command it or the compose file runs is produced by
 * `npm run build`, and `docker-compose config` accepts the compose file with
 * the documented .env.example.
 */
const dockerfile = fs.readFileSync(fromRoot('docker', 'Dockerfile'), 'utf8');
const compose = fs.readFileSync(fromRoot('docker-compose.yml'), 'utf8');

/** The environment `docker-compose config` resolved for one service (plain `KEY: value` lines). */
function serviceEnvironment(resolved: string, service: string): Record<string, string> {
  const section = new RegExp(`\\n  ${service}:\\n([\\s\\S]*?)(?=\\n  [a-z]+:\\n|\\n[a-z]+:)`).exec(resolved)?.[1] ?? '';
  const block = /\n    environment:\n((?: {6}.+\n?)+)/.exec(section)?.[1] ?? '';
  return Object.fromEntries(block.split('\n').filter(Boolean).map((line) => {
    const [, key, value] = /^ {6}([A-Z0-9_]+): (.*)$/.exec(line)!;
    return [key, value.replace(/^(['"])(.*)\1$/, '$2')];
  }));
}

function distPaths(text: string): string[] {
  return [...new Set([...text.matchAll(/dist\/[\w./-]+\.js/g)].map((m) => m[0]))];
}

describe('docker files', () => {
  it('copies only paths that exist in the repository and are not docker-ignored', () => {
    const ignored = fs.readFileSync(fromRoot('.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#') && !l.startsWith('!'));
    const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)].map((m) => m[1].trim().split(/\s+/).slice(0, -1)).flat();
    assert.ok(copies.length >= 5, 'the Dockerfile copies the sources');
    for (const source of copies) {
      assert.ok(fs.existsSync(fromRoot(source)), `COPY source ${source} does not exist`);
      const top = source.replace(/^\.\//, '').split('/')[0];
      assert.ok(!ignored.includes(top) && !ignored.includes(source), `COPY source ${source} is excluded by .dockerignore`);
    }
  });

  it('copies into the runtime image every repository file the compiled code reads', () => {
    // The runtime stage starts at the last FROM; what it holds is what its COPY lines put under /app.
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    const inImage = [...runtime.matchAll(/^COPY (?:--from=\S+ )?\S+ (\S+)$/gm)].map((m) => path.posix.normalize(m[1].replace(/^\/app\//, '')));
    assert.ok(inImage.includes('dist'), 'the runtime stage copies dist');
    // Files read at run time through fromRoot('a', 'b', …) in the code that `npm run build` compiles.
    const sources = ['gateway', 'admin', 'plugins'].flatMap((dir) => fs.readdirSync(fromRoot(dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).map((f) => path.join(dir, f)));
    const read = new Set<string>();
    for (const file of sources) {
      for (const call of fs.readFileSync(fromRoot(file), 'utf8').matchAll(/fromRoot\(((?:\s*'[^']+'\s*,?)+)\)/g)) {
        read.add([...call[1].matchAll(/'([^']+)'/g)].map((m) => m[1]).join('/'));
      }
    }
    assert.ok(read.has('admin/views'), 'the scan finds the views');
    // The embedded FerretDB is built from tests/ferretdb with Go: the image has neither and needs MONGODB_URI.
    const notInImage = new Set(['tests/ferretdb']);
    for (const needed of read) {
      if (notInImage.has(needed)) continue;
      assert.ok(inImage.some((copied) => needed === copied || needed.startsWith(`${copied}/`)), `${needed} is read at run time but the Dockerfile's runtime stage does not copy it`);
    }
  });

  it('runs entry points and health checks that the build produces', () => {
    const wanted = [...distPaths(dockerfile), ...distPaths(compose)];
    assert.ok(wanted.includes('dist/gateway/bin/healthcheck.js'));
    for (const service of ['gateway', 'admin', 'syncer', 'start-all']) assert.ok(wanted.includes(`dist/gateway/bin/${service}.js`), `${service} entry point referenced`);
    for (const file of wanted) assert.ok(fs.existsSync(fromRoot(file)), `${file} is referenced by the Docker files but not built by npm run build`);
  });

  it('builds on Node 22 LTS, runs as non-root with tini and a HEALTHCHECK', () => {
    assert.match(dockerfile, /^FROM node:22-bookworm-slim AS build$/m);
    assert.match(dockerfile, /npm ci/);
    assert.match(dockerfile, /npm prune --omit=dev/);
    assert.match(dockerfile, /^USER node$/m);
    assert.match(dockerfile, /^HEALTHCHECK /m);
    assert.match(dockerfile, /ENTRYPOINT \["\/usr\/bin\/tini"/);
  });

  describe('entrypoint', () => {
    const entrypoint = fromRoot('docker', 'entrypoint.sh');
    let certs: string;
    beforeEach(() => {
      certs = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-certs-'));
    });
    afterEach(() => fs.rmSync(certs, { recursive: true, force: true }));

    /** The TLS variables the command the entrypoint execs sees. */
    function tlsSeen(env: NodeJS.ProcessEnv = {}): string {
      return execFileSync('sh', [entrypoint, 'sh', '-c', 'echo "${TLS_CERT_FILE:-}|${TLS_KEY_FILE:-}"'], { env: { PATH: process.env.PATH, POSTROOM_CERTS_DIR: certs, ...env }, encoding: 'utf8' }).trim();
    }

    it('is valid sh', () => {
      execFileSync('sh', ['-n', entrypoint]);
    });

    it('leaves the self-signed certificate to the gateway when ./certs is empty', () => {
      assert.equal(tlsSeen(), '|');
    });

    it('uses ./certs when the operator put a certificate there', () => {
      fs.writeFileSync(path.join(certs, 'fullchain.pem'), '');
      fs.writeFileSync(path.join(certs, 'privkey.pem'), '');
      assert.equal(tlsSeen(), `${certs}/fullchain.pem|${certs}/privkey.pem`);
    });

    it('hands a half-present pair to the gateway, which names the missing file, instead of going self-signed unnoticed', () => {
      fs.writeFileSync(path.join(certs, 'fullchain.pem'), '');
      assert.equal(tlsSeen(), `${certs}/fullchain.pem|${certs}/privkey.pem`);
    });

    it('keeps TLS_CERT_FILE/TLS_KEY_FILE set in .env', () => {
      fs.writeFileSync(path.join(certs, 'fullchain.pem'), '');
      fs.writeFileSync(path.join(certs, 'privkey.pem'), '');
      assert.equal(tlsSeen({ TLS_CERT_FILE: '/etc/x.pem', TLS_KEY_FILE: '/etc/y.pem' }), '/etc/x.pem|/etc/y.pem');
    });
  });

  it("the image's HEALTHCHECK probes the admin port when HEALTH_PORT is 0 (off)", async function () {
    this.timeout(30_000);
    const server = http.createServer((_req, res) => res.end('{"status":"ok"}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const probe = (env: NodeJS.ProcessEnv) => new Promise<number | null>((resolve) => {
        execFile(process.execPath, ['--import', 'tsx', fromRoot('gateway', 'bin', 'healthcheck.ts')], { env: { ...process.env, HEALTH_PORT: '', ADMIN_PORT: '', ...env }, cwd: fromRoot() }, (err) => resolve(err ? (err.code as number) : 0));
      });
      assert.equal(await probe({ HEALTH_PORT: '0', ADMIN_PORT: String(port) }), 0);
      assert.equal(await probe({ HEALTH_PORT: String(port), ADMIN_PORT: '1' }), 0, 'HEALTH_PORT when it is on');
    } finally {
      server.close();
    }
  });

  it('fixes the ports and bind address of every service, so a port set in .env cannot stop one with a port clash', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-compose-'));
    try {
      fs.copyFileSync(fromRoot('docker-compose.yml'), path.join(dir, 'docker-compose.yml'));
      // An operator whose host has 8080 taken tries the variable first.
      fs.writeFileSync(path.join(dir, '.env'), `${fs.readFileSync(fromRoot('.env.example'), 'utf8')}SECRET_KEY=${'ab'.repeat(32)}\nGATEWAY_DOMAIN=in.postroom.acme.test\nADMIN_PORT=8081\nSMTP_PORT=8080\nBIND_ADDRESS=127.0.0.1\n`);
      const resolved = execFileSync('docker-compose', ['config'], { cwd: dir, encoding: 'utf8' });
      const dockerfileEnv = { NODE_ENV: 'production', DATA_DIR: '/data' };
      for (const service of ['gateway', 'admin', 'syncer']) {
        const env = serviceEnvironment(resolved, service);
        assert.equal(env.SECRET_KEY, 'ab'.repeat(32), `${service}: .env reaches it`);
        const config = loadConfig({ ...dockerfileEnv, ...env });
        assert.deepEqual([config.bindAddress, config.smtpPort, config.adminPort, config.healthPort], ['0.0.0.0', 2525, 8080, 8081], service);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is a valid compose file with MongoDB 7 as a replica set and health-gated start', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-compose-'));
    try {
      fs.copyFileSync(fromRoot('docker-compose.yml'), path.join(dir, 'docker-compose.yml'));
      fs.copyFileSync(fromRoot('.env.example'), path.join(dir, '.env'));
      execFileSync('docker-compose', ['config', '-q'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      const resolved = execFileSync('docker-compose', ['config'], { cwd: dir, encoding: 'utf8' });
      assert.match(resolved, /image: mongo:7/);
      assert.match(resolved, /--replSet/);
      for (const service of ['gateway', 'admin', 'syncer']) assert.match(resolved, new RegExp(`\\n  ${service}:\\n`), `service ${service}`);
      assert.equal((resolved.match(/condition: service_healthy/g) ?? []).length, 3, 'every Postroom service waits for a healthy store');
      assert.match(resolved, /published: 25\n\s+target: 2525|- 25:2525|published: "25"/);
      // The image's tini is PID 1; Docker's init in front of it makes tini print a warning at every start.
      assert.doesNotMatch(resolved, /^\s+init: true$/m, 'no Docker init in front of the image\'s tini');
      // The console speaks plain HTTP: by default only a reverse proxy on the host reaches it.
      assert.match(resolved, /^\s+- 127\.0\.0\.1:8080:8080(\/tcp)?$/m, 'the console is published on loopback by default');
      const mongo = /\n  mongo:\n([\s\S]*?)\n  [a-z]+:\n/.exec(resolved)?.[1] ?? '';
      assert.match(mongo, /image: mongo:7/);
      assert.doesNotMatch(mongo, /ports:/, 'MongoDB (no authentication) is reachable only on the compose network');
      // Set in .env, MONGODB_URI reaches every process (compose's environment: would otherwise override env_file).
      fs.appendFileSync(path.join(dir, '.env'), 'MONGODB_URI=mongodb://postroom:pw@db.acme.test:27017/postroom?authSource=admin\n');
      const external = execFileSync('docker-compose', ['config'], { cwd: dir, encoding: 'utf8' });
      assert.equal((external.match(/MONGODB_URI: mongodb:\/\/postroom:pw@db\.acme\.test:27017\/postroom\?authSource=admin$/gm) ?? []).length, 3, external);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
