import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore } from '../../gateway/store';
import { startEmbeddedStore, storeSocketPath } from '../../gateway/store/embedded-ferretdb';
import { silentLogger } from '../../gateway/core/log';

/**
 * `npm start`'s embedded store listens on a Unix socket in DATA_DIR/store
 * (tests/bin/start-all.test.ts checks it has no TCP port). A socket's path
 * is limited to about 100 bytes, and DATA_DIR can be deeper than that: such
 * a store must still start, on a socket in a private temporary directory
 * that goes away with it.
 */
describe('store: the embedded store on a Unix socket', function () {
  this.timeout(60_000);
  let root: string;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-socket-'));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('puts the socket beside the data when the path fits', () => {
    const storeDir = path.join(root, 'store');
    assert.equal(storeSocketPath(storeDir), path.join(storeDir, 'ferretdb.sock'));
  });

  it('starts a store whose DATA_DIR is too deep for a socket path, in a 0700 directory of its own that stop() removes', async () => {
    const storeDir = path.join(root, 'a-data-directory-nested-as-deep-as-a-real-installation-may-put-it', 'more', 'and-more', 'store');
    assert.ok(Buffer.byteLength(path.join(storeDir, 'ferretdb.sock')) > 108, 'the fixture must be past the kernel limit');
    const socketPath = storeSocketPath(storeDir);
    assert.ok(Buffer.byteLength(socketPath) <= 103, socketPath);
    const socketDir = path.dirname(socketPath);
    assert.equal(fs.statSync(socketDir).mode & 0o777, 0o700);

    const embedded = await startEmbeddedStore({ dataDir: storeDir, socketPath });
    try {
      assert.equal(embedded.address, socketPath);
      const store = await openStore({ uri: embedded.uri, dbName: 'socket', log: silentLogger, maxWaitMs: 5000, ensureIndexes: false });
      try {
        await store.conn.db!.collection('probe').insertOne({ _id: 'x' } as never);
        assert.equal(await store.conn.db!.collection('probe').countDocuments(), 1);
      } finally {
        await store.close();
      }
      assert.ok(fs.existsSync(path.join(storeDir)), 'the data stays where DATA_DIR says');
    } finally {
      await embedded.stop();
    }
    assert.equal(fs.existsSync(socketDir), false, 'the temporary socket directory is removed');
  });
});
