import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedStore, type EmbeddedStore } from '../gateway/store/embedded-ferretdb';
import { stopSharedServers } from './support/shared';

/**
 * Mocha global fixtures: one FerretDB for the whole run (each test file uses
 * its own database), unless MONGODB_URI points at a real MongoDB.
 */
let embedded: EmbeddedStore | undefined;
let dataDir: string | undefined;

export async function mochaGlobalSetup(): Promise<void> {
  if (process.env.MONGODB_URI) {
    process.env.POSTROOM_TEST_MONGODB_URI = process.env.MONGODB_URI;
    return;
  }
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-ferretdb-'));
  embedded = await startEmbeddedStore({ dataDir });
  process.env.POSTROOM_TEST_MONGODB_URI = embedded.uri;
}

export async function mochaGlobalTeardown(): Promise<void> {
  await stopSharedServers();
  await embedded?.stop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
}
