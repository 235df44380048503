/**
 * Run once by the test wrapper *before* it spawns mocha: Node reads
 * NODE_EXTRA_CA_CERTS only at process start, so the test CA must exist and
 * be in the child's environment before the child starts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CERT_DIR_ENV, generateTestCertificates, type TestCertificates } from './certs';

export interface TestEnvironment extends TestCertificates {
  certDir: string;
  /** Add these to the environment of the mocha child process. */
  env: { POSTROOM_TEST_CERT_DIR: string; NODE_EXTRA_CA_CERTS: string };
  /** Removes certDir; call after the child has exited. */
  cleanup(): void;
}

export function prepareTestEnvironment(): TestEnvironment {
  const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-test-certs-'));
  // World-traversable: services started as other users (dovecot, vmail) read the cert files.
  fs.chmodSync(certDir, 0o755);
  const certs = generateTestCertificates(certDir);
  return {
    certDir,
    ...certs,
    env: { [CERT_DIR_ENV]: certDir, NODE_EXTRA_CA_CERTS: certs.caFile },
    cleanup: () => fs.rmSync(certDir, { recursive: true, force: true }),
  };
}
