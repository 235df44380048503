/**
 * Throwaway TLS material for the real-service tests: a private CA and a
 * server certificate for 127.0.0.1/localhost signed by it. Generated with the
 * `openssl` CLI (no hand-rolled crypto); trusted by test processes through
 * NODE_EXTRA_CA_CERTS, so certificate verification stays on everywhere.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface TestCertificates {
  caFile: string;   // PEM CA certificate (what NODE_EXTRA_CA_CERTS points at)
  certFile: string; // PEM server certificate (SAN IP:127.0.0.1, DNS:localhost)
  keyFile: string;  // PEM server private key (unencrypted)
}

export const CERT_DIR_ENV = 'POSTROOM_TEST_CERT_DIR';

function paths(dir: string): TestCertificates {
  return {
    caFile: path.join(dir, 'ca.pem'),
    certFile: path.join(dir, 'cert.pem'),
    keyFile: path.join(dir, 'key.pem'),
  };
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('openssl CLI not found (apt-get install -y openssl)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString().trim() || e.message}`);
  }
}

/** Creates a fresh CA and server certificate in `dir` (which must exist). */
export function generateTestCertificates(dir: string): TestCertificates {
  const out = paths(dir);
  const caKey = path.join(dir, 'ca.key');
  const csr = path.join(dir, 'server.csr');
  const ext = path.join(dir, 'server.ext');
  // P-256 keys: generated in milliseconds, accepted by Node, Dovecot, Haraka and Chromium.
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

  openssl(['req', '-x509', ...ecKey, '-keyout', caKey, '-out', out.caFile, '-days', '30',
    '-subj', '/CN=Postroom Test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);

  openssl(['req', ...ecKey, '-keyout', out.keyFile, '-out', csr, '-subj', '/CN=localhost'], dir);
  // Extensions go in a file because `x509 -req` ignores the CSR's own extensions.
  fs.writeFileSync(ext, [
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    '',
  ].join('\n'));
  // A random serial (instead of -CAcreateserial) leaves no .srl state behind.
  const serial = '0x' + execFileSync('openssl', ['rand', '-hex', '16']).toString().trim();
  openssl(['x509', '-req', '-in', csr, '-CA', out.caFile, '-CAkey', caKey, '-set_serial', serial,
    '-days', '30', '-extfile', ext, '-out', out.certFile], dir);

  fs.rmSync(csr, { force: true });
  fs.rmSync(ext, { force: true });
  // Throwaway key: readable so service users (dovecot, Haraka workers) can load it too.
  fs.chmodSync(out.keyFile, 0o644);
  fs.chmodSync(caKey, 0o600);
  return out;
}

/**
 * The certificates prepared by prepareTestEnvironment() before mocha started
 * (their directory is in POSTROOM_TEST_CERT_DIR).
 */
export function ensureTestCertificates(): TestCertificates {
  const dir = process.env[CERT_DIR_ENV];
  if (!dir) {
    throw new Error(
      `${CERT_DIR_ENV} is not set: run the tests through tests/run-tests.ts (it calls ` +
      'prepareTestEnvironment() from tests/support/prepare-env.ts and sets it together with NODE_EXTRA_CA_CERTS)');
  }
  const out = paths(dir);
  for (const file of Object.values(out)) {
    if (!fs.existsSync(file)) throw new Error(`${CERT_DIR_ENV}=${dir} has no ${path.basename(file)}`);
  }
  return out;
}
