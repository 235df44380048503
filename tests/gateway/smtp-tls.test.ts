import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { ensureTestCertificates } from '../support/certs';
import { startDns, type TestDns } from '../support/dns';
import { createEmployeeAccount, GATEWAY_DOMAIN, startTestGateway, type TestGateway } from '../support/gateway';
import { plainMessage } from '../support/mail-auth';
import { swaks } from '../support/smtp';
import { openTestStore, storedRaw } from '../support/store';

/** STARTTLS (RFC 3207) with a configured certificate and with the self-signed one generated at first start. */
describe('SMTP gateway: STARTTLS', function () {
  this.timeout(60000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let testDns: TestDns;
  let bob: Awaited<ReturnType<typeof createEmployeeAccount>>;

  before(async () => {
    store = await openTestStore('gw_tls');
    testDns = await startDns();
    testDns.setTxt('acme.test', 'v=spf1 ip4:127.0.0.1 -all');
    bob = await createEmployeeAccount(store, 'bob@acme.test');
  });

  after(async () => {
    await testDns?.stop();
    await store?.drop();
  });

  describe('with TLS_CERT_FILE/TLS_KEY_FILE (the test CA\'s certificate)', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startTestGateway({ dbName: store.dbName, dnsAddress: testDns.address, tls: 'test-ca' });
    });
    after(async () => gw?.close());

    it('offers STARTTLS and delivers over a verified TLS session (swaks --tls --tls-verify)', async () => {
      const { caFile } = ensureTestCertificates();
      const messageId = `${crypto.randomUUID()}@acme.test`;
      const result = await swaks([
        '--server', '127.0.0.1', '--port', String(gw.port),
        '--tls', '--tls-verify', '--tls-ca-path', caFile,
        '--from', 'alice@acme.test', '--to', bob.forwardingAddress,
        '--header', `Subject: over tls ${messageId}`, '--body', 'sent over TLS',
      ]);
      assert.equal(result.exitCode, 0, result.transcript);
      assert.match(result.transcript, /250.STARTTLS/);
      assert.match(result.transcript, /=== TLS started with cipher TLSv1\.[23]/);
      assert.ok(result.replies.some((r) => /^250 Message stored/.test(r)), result.transcript);
      const doc = await store.models.Message.findOne({ subject: `over tls ${messageId}` }).lean();
      assert.ok(doc, 'stored');
      assert.match((await storedRaw(store, doc._id)).toString(), /with ESMTPS/);
      const line = await gw.waitForLog((l) => l.msg === 'smtp transaction' && l.queueId === doc.sources[0].queueId);
      assert.equal(line.tls, true);
    });

    it('does not trust a client that does not trust the certificate (verification stays on)', async () => {
      const result = await swaks(['--server', '127.0.0.1', '--port', String(gw.port), '--tls', '--tls-verify', '--tls-ca-path', '/dev/null', '--from', 'alice@acme.test', '--to', bob.forwardingAddress]);
      assert.notEqual(result.exitCode, 0);
    });
  });

  describe('without a configured certificate', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startTestGateway({ dbName: store.dbName, dnsAddress: testDns.address, tls: 'generated' });
    });
    after(async () => gw?.close());

    it('generates a self-signed certificate for GATEWAY_DOMAIN into DATA_DIR/tls and serves STARTTLS with it', async () => {
      const certFile = path.join(gw.dataDir, 'tls', 'cert.pem');
      const cert = new crypto.X509Certificate(fs.readFileSync(certFile));
      assert.equal(cert.checkHost(GATEWAY_DOMAIN), GATEWAY_DOMAIN);
      assert.equal((fs.statSync(path.join(gw.dataDir, 'tls', 'key.pem')).mode & 0o777).toString(8), '600');

      const transport = nodemailer.createTransport({
        host: '127.0.0.1',
        port: gw.port,
        secure: false,
        requireTLS: true,
        // Trust exactly the generated certificate, checked against the gateway's name.
        tls: { ca: [fs.readFileSync(certFile)], servername: GATEWAY_DOMAIN },
      });
      try {
        const messageId = `${crypto.randomUUID()}@acme.test`;
        const info = await transport.sendMail({ envelope: { from: 'alice@acme.test', to: [bob.forwardingAddress] }, raw: plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'tls self-signed', messageId }) });
        assert.match(info.response, /^250 Message stored/);
        assert.ok(await store.models.Message.exists({ messageId }));
      } finally {
        transport.close();
      }
    });
  });
});
