import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { GATEWAY_DOMAIN, useGatewayWorld } from '../support/gateway';
import { plainMessage } from '../support/mail-auth';
import { sendMail } from '../support/smtp';

/**
 * Through the real gateway (Haraka and the plugins): forwarded mail arrives unread, held mail too, and what
 * Bob Bccs to his dropbox — his own outgoing mail from another client — arrives read, in the one write that
 * stores it.
 */
describe('gateway: the read state mail arrives with', function () {
  this.timeout(60_000);
  const world = useGatewayWorld('gw_read_state_arrival');

  it('forwarded mail is unread, quarantined mail is unread, the owner\'s dropbox mail is read', async () => {
    const { bob, store } = world;
    const forwardedId = `${crypto.randomUUID()}@customer.test`;
    const local = bob.forwardingAddress.split('@')[0];
    // SPF passes for acme.test from 127.0.0.1 (the world's DNS): forwarded by Bob's provider.
    let sent = await sendMail(world.gw.port, { from: `bob+caf_=${local}=${GATEWAY_DOMAIN}@acme.test`, to: [bob.forwardingAddress] },
      plainMessage({ from: 'Alice <alice@customer.test>', to: 'bob@acme.test', subject: 'Forwarded', messageId: forwardedId }));
    assert.equal(sent.ok, true, sent.response);
    // Nothing proves this one came through Bob's provider: held.
    const heldId = `${crypto.randomUUID()}@customer.test`;
    sent = await sendMail(world.gw.port, { from: 'mallory@elsewhere.test', to: [bob.forwardingAddress] },
      plainMessage({ from: 'Mallory <mallory@elsewhere.test>', to: 'bob@acme.test', subject: 'Held', messageId: heldId }));
    assert.equal(sent.ok, true, sent.response);
    const bccId = `${crypto.randomUUID()}@acme.test`;
    sent = await sendMail(world.gw.port, { from: 'bob@acme.test', to: [bob.dropboxAddress] },
      plainMessage({ from: 'Bob <bob@acme.test>', to: 'alice@customer.test', subject: 'Sent from my phone', messageId: bccId }));
    assert.equal(sent.ok, true, sent.response);

    const state = async (messageId: string) => {
      const doc = await store.models.Message.findOne({ messageId }).lean();
      return [doc?.status, doc?.unread];
    };
    assert.deepEqual(await state(forwardedId), ['inbox', true]);
    assert.deepEqual(await state(heldId), ['quarantine', true]);
    assert.deepEqual((await state(bccId))[1], false);
  });
});
