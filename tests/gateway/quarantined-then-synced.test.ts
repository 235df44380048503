import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import mongoose from 'mongoose';
import { createMailAccount, listMessages } from '../../gateway/accounts';
import { createLogger } from '../../gateway/core/log';
import { crmAssociator } from '../../gateway/crm/link';
import { objectTimeline } from '../../gateway/crm/timeline';
import { startSyncer } from '../../gateway/sync/schedule';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { GATEWAY_DOMAIN, useGatewayWorld } from '../support/gateway';
import { plainMessage } from '../support/mail-auth';
import { shared } from '../support/shared';
import { sendMail } from '../support/smtp';
import { testConfig, testSecrets } from '../sync/helpers';

/**
 * Forwarding that fails authentication (the provider's forwarder is not in
 * the mailbox domain's SPF, say) holds the mail in Quarantine: nothing
 * proved it came through the mailbox's provider. The IMAP sync then finds
 * the same mail in the mailbox itself, which is that proof. Had the sync
 * come first the mail would be in the inbox; in this order it stayed
 * held, so an employee with IMAP on missed mail that was plainly theirs.
 */
describe('gateway + IMAP sync: forwarded mail held for authentication, then found in the mailbox', function () {
  this.timeout(120_000);
  const world = useGatewayWorld('gw_quarantined_then_synced');
  const log = createLogger({ level: 'silent' });
  let dovecot: DovecotServer;
  const password = 'pw-bob-quarantine';

  before(async () => {
    dovecot = await shared('dovecot', () => startDovecot());
    // Its own login on the Dovecot the test files share: another file's bob@acme.test mail would be synced here too.
    await dovecot.addUser('bob.held@acme.test', password);
    const account = (await world.store.models.MailAccount.findById(world.bob.accountId))!;
    account.set('imap', { enabled: true, host: dovecot.host, port: dovecot.tlsPort, tls: 'implicit', username: 'bob.held@acme.test', status: 'authenticated', folders: [] });
    account.imap!.passwordEnc = testSecrets.seal(password, account._id.toString());
    await account.save();
  });

  async function syncPass() {
    const syncer = startSyncer({ config: testConfig(), log, store: world.store, secretBox: testSecrets, associate: crmAssociator({ store: world.store, log }), schedule: false });
    try {
      return (await syncer.runPassNow()).accounts.find((a) => a.accountId === world.bob.accountId.toString())!;
    } finally {
      await syncer.stop();
    }
  }

  it('moves it to the inbox and links it, and leaves held mail the mailbox does not have in Quarantine', async () => {
    const { bob, store } = world;
    const alice = await store.models.CrmObject.create({ type: 'contact', name: 'Alice', nameLower: 'alice', emails: ['alice@customer.test'], externalId: `local:${crypto.randomUUID()}` });
    const viewer = { id: bob.userId, role: 'employee' };
    const order = plainMessage({ from: 'Alice <alice@customer.test>', to: 'bob@acme.test', subject: 'Order 88', messageId: `${crypto.randomUUID()}@customer.test`, date: new Date(Date.now() - 600_000).toUTCString() });
    const stranger = plainMessage({ from: 'Alice <alice@customer.test>', to: 'bob@acme.test', subject: 'Urgent wire transfer', messageId: `${crypto.randomUUID()}@customer.test` });
    // A forwarder whose envelope domain has no SPF record for it: authentication fails.
    for (const raw of [order, stranger]) {
      const sent = await sendMail(world.gw.port, { from: 'bounces@relay.forwarder.test', to: [bob.forwardingAddress] }, raw);
      assert.equal(sent.ok, true, sent.response);
    }
    // Bob's other mailbox (sales@, without IMAP) got the order too, held the same way.
    const sales = await createMailAccount(store, bob.userId.toString(), 'sales@acme.test', { gatewayDomain: GATEWAY_DOMAIN });
    const copy = await sendMail(world.gw.port, { from: 'bounces@relay.forwarder.test', to: [sales.forwardingAddress] }, order);
    assert.equal(copy.ok, true, copy.response);
    const held = (await store.models.Message.findOne({ subject: 'Order 88', accountId: bob.accountId }).lean())!;
    assert.equal(held.status, 'quarantine');
    assert.match(held.quarantineReason ?? '', /^authentication failed/);

    // Only the order is in the mailbox.
    await dovecot.append('bob.held@acme.test', 'INBOX', `Delivered-To: bob@acme.test\r\n${order.toString()}`);
    const result = await syncPass();
    assert.equal(result.duplicates, 1);
    assert.equal(result.stored, 0);

    const inbox = (await listMessages(store, viewer, {})).messages;
    assert.deepEqual(inbox.map((m) => m.subject), ['Order 88'], 'in the inbox, once');
    assert.deepEqual([...inbox[0].sources].sort(), ['forward', 'imap']);
    const quarantine = (await listMessages(store, viewer, { status: 'quarantine' })).messages;
    assert.deepEqual(quarantine.map((m) => m.subject), ['Urgent wire transfer'], 'mail the mailbox does not have stays held, and no copy of the order does');
    assert.equal(inbox[0].copies, 2, 'the copy in sales@ is released with it');
    const timeline = await objectTimeline({ store }, alice._id as mongoose.Types.ObjectId, viewer);
    assert.deepEqual(timeline.entries.map((e) => e.subject), ['Order 88'], 'linked to the customer like inbox mail');
    const audit = await store.models.AuditEvent.findOne({ action: 'message.release', targetId: held._id.toString() }).lean();
    assert.match(String(audit?.details?.reason ?? ''), /IMAP/, 'the audit log says why it left Quarantine');
    const account = (await store.models.MailAccount.findById(bob.accountId).lean())!;
    assert.ok(!account.forwarding?.quarantinedMessageId || !account.forwarding.quarantinedMessageId.equals(held._id), 'the account page no longer points to it as held');
  });
});
