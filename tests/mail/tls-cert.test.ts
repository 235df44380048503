import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureTlsCertificate } from '../../gateway/mail/tls-cert';
import { ensureTestCertificates } from '../support/certs';

describe('STARTTLS certificate', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-tls-'));
  });
  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('generates a self-signed certificate for the gateway name once and reuses it', () => {
    const first = ensureTlsCertificate({ dataDir, hostname: 'in.postroom.test' });
    assert.equal(first.generated, true);
    assert.equal(first.selfSigned, true);
    assert.equal(first.certFile, path.join(dataDir, 'tls', 'cert.pem'));
    const cert = new crypto.X509Certificate(fs.readFileSync(first.certFile));
    assert.equal(cert.checkHost('in.postroom.test'), 'in.postroom.test');
    assert.ok(cert.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(first.keyFile))));
    assert.ok(Date.parse(cert.validTo) > Date.now() + 5 * 365 * 24 * 3600 * 1000);
    assert.equal(fs.statSync(first.keyFile).mode & 0o077, 0, 'key readable by its owner only');

    const second = ensureTlsCertificate({ dataDir, hostname: 'in.postroom.test' });
    assert.equal(second.generated, false);
    assert.equal(new crypto.X509Certificate(fs.readFileSync(second.certFile)).fingerprint256, cert.fingerprint256);
  });

  it('replaces a generated certificate when GATEWAY_DOMAIN changes or it is about to expire', () => {
    const first = ensureTlsCertificate({ dataDir, hostname: 'old.postroom.test' });
    const renamed = ensureTlsCertificate({ dataDir, hostname: 'new.postroom.test' });
    assert.equal(renamed.generated, true);
    assert.equal(new crypto.X509Certificate(fs.readFileSync(renamed.certFile)).checkHost('new.postroom.test'), 'new.postroom.test');

    fs.rmSync(path.join(dataDir, 'tls'), { recursive: true });
    ensureTlsCertificate({ dataDir, hostname: 'new.postroom.test', days: 10 });
    const renewed = ensureTlsCertificate({ dataDir, hostname: 'new.postroom.test' });
    assert.equal(renewed.generated, true, 'a certificate expiring within 30 days is renewed');
    assert.equal(first.certFile, renewed.certFile);
  });

  it('uses TLS_CERT_FILE/TLS_KEY_FILE when given, and says clearly what is wrong with them', () => {
    const certs = ensureTestCertificates();
    const configured = ensureTlsCertificate({ dataDir, hostname: 'gw.test', certFile: certs.certFile, keyFile: certs.keyFile });
    assert.deepEqual(configured, { certFile: certs.certFile, keyFile: certs.keyFile, generated: false, selfSigned: false });
    assert.equal(fs.existsSync(path.join(dataDir, 'tls')), false, 'nothing generated');

    assert.throws(() => ensureTlsCertificate({ dataDir, hostname: 'gw.test', certFile: '/nonexistent.pem', keyFile: certs.keyFile }), /TLS_CERT_FILE \/nonexistent\.pem cannot be read/);
    assert.throws(() => ensureTlsCertificate({ dataDir, hostname: 'gw.test', certFile: certs.keyFile, keyFile: certs.keyFile }), /TLS_CERT_FILE .* is not a PEM certificate/);
    const other = ensureTlsCertificate({ dataDir, hostname: 'gw.test' });
    assert.throws(() => ensureTlsCertificate({ dataDir, hostname: 'gw.test', certFile: certs.certFile, keyFile: other.keyFile }), /TLS_KEY_FILE .* does not belong to the certificate/);
  });
});
