import { strict as assert } from 'node:assert';
import type { Config } from '../../gateway/core/config';
import { createLogger } from '../../gateway/core/log';
import { serveHealthIfConfigured, type Lifecycle } from '../../gateway/bin/lifecycle';
import { freePort } from '../../gateway/store/embedded-ferretdb';
import { useGatewayWorld } from '../support/gateway';
import { ownCount, seriesValue as value } from '../support/metrics';
import { plainMessage } from '../support/mail-auth';
import { sendMail, SmtpSession } from '../support/smtp';

/**
 * GET /metrics on HEALTH_PORT as Prometheus scrapes the gateway: the counts
 * of what Haraka's child process did (stored, refused), merged with the
 * parent's process metrics, without any address in a label.
 */
describe('gateway metrics (GET /metrics on HEALTH_PORT)', function () {
  this.timeout(60000);
  const world = useGatewayWorld('gw_metrics');
  const stops: Array<() => Promise<unknown>> = [];
  let url = '';

  before(async () => {
    const lifecycle: Lifecycle = { add: (_name, stop) => void stops.push(stop), shutdown: async () => undefined };
    const config = { healthPort: await freePort(), bindAddress: '127.0.0.1' } as Config;
    await serveHealthIfConfigured(config, createLogger({ level: 'silent' }), lifecycle, { conn: world.store.conn, what: 'the test', gateway: world.gw.gateway });
    url = `http://127.0.0.1:${config.healthPort}`;
  });
  after(async () => {
    for (const stop of stops) await stop();
  });

  it('counts stored mail and refused recipients from the Haraka process', async () => {
    const sent = await sendMail(world.gw.port, { from: 'alice@acme.test', to: [world.bob.forwardingAddress] }, plainMessage({ from: 'alice@acme.test', to: 'bob@acme.test', subject: 'counted' }));
    assert.equal(sent.ok, true, sent.response);
    const { session } = await SmtpSession.open(world.gw.port);
    for (const command of ['EHLO sender.example', 'MAIL FROM:<spammer@example.com>']) await session.command(command);
    assert.equal((await session.command('RCPT TO:<victim@elsewhere.example>')).code, 550);
    assert.equal((await session.command('RCPT TO:<nobody.0000@gw.test>')).code, 550);
    await session.quit();

    const res = await fetch(`${url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.equal(value(text, 'postroom_smtp_transactions_total{code="250",outcome="stored"}'), 1, text.slice(0, 3000));
    // /metrics adds the parent's registry (here mocha's process, where other test files ingest mail in-process) to Haraka's.
    assert.equal(value(text, 'postroom_messages_total{source="forward",outcome="stored"}'), 1 + (await ownCount('postroom_messages_total', { source: 'forward', outcome: 'stored' })));
    assert.equal(value(text, 'postroom_smtp_transaction_seconds_count{outcome="stored"}'), 1);
    assert.equal(value(text, 'postroom_smtp_refusals_total{command="rcpt",code="550",reason="relaying denied"}'), 1);
    assert.equal(value(text, 'postroom_smtp_refusals_total{command="rcpt",code="550",reason="unknown recipient"}'), 1);
    assert.ok((value(text, 'process_resident_memory_bytes') ?? 0) > 0, 'process metrics of the gateway');
    assert.doesNotMatch(text, /acme\.test|elsewhere\.example|gw\.test|spammer/, 'no address in any label');
  });

  it('still answers with the parent\'s own metrics while Haraka is down, and /healthz says so', async () => {
    await world.gw.gateway.close();
    const res = await fetch(`${url}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.equal(value(text, 'postroom_smtp_transactions_total{code="250",outcome="stored"}'), undefined, 'no counts without the child');
    assert.ok((value(text, 'process_resident_memory_bytes') ?? 0) > 0);
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 503);
    assert.deepEqual(await health.json(), {
      status: 'unavailable',
      checks: { store: 'up', writes: 'up', smtp: 'down' },
      problem: 'the SMTP server (Haraka) is not running',
    });
  });
});
