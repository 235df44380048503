import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../core/config';
import type { Logger } from '../core/log';
import { silentLogger } from '../core/log';

/**
 * The STARTTLS certificate of the gateway (RFC 3207). TLS_CERT_FILE /
 * TLS_KEY_FILE when configured; otherwise a self-signed certificate for
 * GATEWAY_DOMAIN generated once into DATA_DIR/tls with the openssl CLI and
 * reused across restarts (renewed when it is within 30 days of expiry).
 * Sending MTAs do opportunistic TLS and do not verify certificates
 * (RFC 7435), so a self-signed certificate still encrypts the hop; operators
 * who want MTA-STS/DANE configure a real one.
 */

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** True when Postroom generated (or renewed) the self-signed certificate now. */
  generated: boolean;
  selfSigned: boolean;
}

export interface TlsOptions {
  dataDir: string;
  hostname: string;
  certFile?: string;
  keyFile?: string;
  log?: Logger;
  /** Validity of a generated certificate; default ten years (nobody verifies it). */
  days?: number;
}

const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;

function readable(file: string, what: string): void {
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch {
    throw new ConfigError([`${what} ${file} cannot be read (check the path and its permissions)`]);
  }
}

/** Parse the PEM pair and check the key matches the certificate, with a clear error for each problem. */
export function checkCertificatePair(certFile: string, keyFile: string): crypto.X509Certificate {
  readable(certFile, 'TLS_CERT_FILE');
  readable(keyFile, 'TLS_KEY_FILE');
  let cert: crypto.X509Certificate;
  try {
    cert = new crypto.X509Certificate(fs.readFileSync(certFile));
  } catch (err) {
    throw new ConfigError([`TLS_CERT_FILE ${certFile} is not a PEM certificate: ${(err as Error).message}`]);
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(fs.readFileSync(keyFile));
  } catch (err) {
    throw new ConfigError([`TLS_KEY_FILE ${keyFile} is not a PEM private key: ${(err as Error).message}`]);
  }
  if (!cert.checkPrivateKey(key)) throw new ConfigError([`TLS_KEY_FILE ${keyFile} does not belong to the certificate in ${certFile}`]);
  return cert;
}

function generate(dir: string, hostname: string, days: number): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = fs.mkdtempSync(path.join(dir, '.new-'));
  const keyFile = path.join(tmp, 'key.pem');
  const certFile = path.join(tmp, 'cert.pem');
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', keyFile, '-out', certFile, '-days', String(days),
        '-subj', `/CN=${hostname}`,
        '-addext', `subjectAltName=DNS:${hostname}`,
        '-addext', 'extendedKeyUsage=serverAuth',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('cannot generate the STARTTLS certificate: the openssl command is not installed (or set TLS_CERT_FILE and TLS_KEY_FILE)');
    throw new Error(`cannot generate the STARTTLS certificate: ${e.stderr?.toString().trim() || e.message}`);
  }
  fs.chmodSync(keyFile, 0o600);
  // Key first, then certificate: a reader that sees the new certificate also sees its key.
  fs.renameSync(keyFile, path.join(dir, 'key.pem'));
  fs.renameSync(certFile, path.join(dir, 'cert.pem'));
  fs.rmSync(tmp, { recursive: true, force: true });
}

export function ensureTlsCertificate(options: TlsOptions): TlsFiles {
  const log = options.log ?? silentLogger;
  if (options.certFile && options.keyFile) {
    const cert = checkCertificatePair(options.certFile, options.keyFile);
    if (Date.parse(cert.validTo) < Date.now()) log.warn({ certFile: options.certFile, validTo: cert.validTo }, 'the configured STARTTLS certificate has expired');
    return { certFile: options.certFile, keyFile: options.keyFile, generated: false, selfSigned: false };
  }

  const dir = path.join(options.dataDir, 'tls');
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  let reason = 'none yet';
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) {
    try {
      const cert = checkCertificatePair(certFile, keyFile);
      const fresh = Date.parse(cert.validTo) - Date.now() > RENEW_BEFORE_MS;
      const sameName = cert.checkHost(options.hostname) !== undefined;
      if (fresh && sameName) return { certFile, keyFile, generated: false, selfSigned: true };
      reason = fresh ? `it names another host (${cert.subject.replace(/\n/g, ', ')})` : `it expires ${cert.validTo}`;
    } catch (err) {
      reason = (err as Error).message;
    }
  }
  generate(dir, options.hostname, options.days ?? 3650);
  log.info({ certFile, hostname: options.hostname, reason }, 'generated a self-signed STARTTLS certificate (set TLS_CERT_FILE/TLS_KEY_FILE to use your own)');
  return { certFile, keyFile, generated: true, selfSigned: true };
}
