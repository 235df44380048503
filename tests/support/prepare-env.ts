/**
 * Run once by the test wrapper *before* it spawns mocha: Node reads
 * NODE_EXTRA_CA_CERTS only at process start, so the test CA must exist and
 * be in the child's environment before the child starts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS } from '../../gateway/core/mail-server-networks';
import { CERT_DIR_ENV, generateTestCertificates, type TestCertificates } from './certs';

/**
 * Every test mail server (Dovecot, Haraka, the SMTP test servers) listens on
 * 127.0.0.1, which the default MAIL_SERVER_BLOCKED_NETWORKS refuses: the
 * suite runs with the default minus loopback, so the rest of the check (and
 * connecting to the address checked) is on every test connection.
 * tests/accounts/mail-server-networks.test.ts covers the default itself.
 */
export const TEST_BLOCKED_MAIL_SERVER_NETWORKS = DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS.split(',')
  .filter((network) => network !== '127.0.0.0/8' && network !== '::1/128')
  .join(',');

export interface TestEnvironment extends TestCertificates {
  certDir: string;
  /** Add these to the environment of the mocha child process. */
  env: { POSTROOM_TEST_CERT_DIR: string; NODE_EXTRA_CA_CERTS: string; MAIL_SERVER_BLOCKED_NETWORKS: string };
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
    env: { [CERT_DIR_ENV]: certDir, NODE_EXTRA_CA_CERTS: certs.caFile, MAIL_SERVER_BLOCKED_NETWORKS: TEST_BLOCKED_MAIL_SERVER_NETWORKS },
    cleanup: () => fs.rmSync(certDir, { recursive: true, force: true }),
  };
}
