import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import { deleteMessage, SYSTEM_ACTOR } from '../../gateway/accounts';
import { silentLogger } from '../../gateway/core/log';
import { startSyncer } from '../../gateway/sync/schedule';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { GATEWAY_DOMAIN, useGatewayWorld } from '../support/gateway';
import { shared } from '../support/shared';
import { sendMail } from '../support/smtp';
import { testConfig, testSecrets } from '../sync/helpers';

/**
 * Mail without a Message-ID (RFC 5322 §3.6.4 only says "should"), reaching
 * a mailbox that is both forwarded and synced. A host that forwards with a
 * Sieve redirect re-submits the message locally, and its MTA (Postfix,
 * Exchange) adds a Message-ID to the forwarded copy; the copy in the
 * mailbox has none. Same sender, date, subject and body: one mail, shown
 * once. A different mail without a Message-ID is still stored.
 */
describe('gateway + IMAP sync: a mail without a Message-ID, forwarded with one added and synced without', function () {
  this.timeout(120_000);
  const world = useGatewayWorld('gw_two_paths_no_message_id');
  let dovecot: DovecotServer;
  const password = 'pw-bob-two-paths';

  before(async () => {
    dovecot = await shared('dovecot', () => startDovecot());
    // Its own login on the Dovecot the test files share: another file's bob@acme.test mail would be synced here too.
    await dovecot.addUser('bob.twopaths@acme.test', password);
    const account = (await world.store.models.MailAccount.findById(world.bob.accountId))!;
    account.set('imap', { enabled: true, host: dovecot.host, port: dovecot.tlsPort, tls: 'implicit', username: 'bob.twopaths@acme.test', status: 'authenticated', folders: [] });
    account.imap!.passwordEnc = testSecrets.seal(password, account._id.toString());
    await account.save();
  });

  async function syncPass() {
    const syncer = startSyncer({ config: testConfig(), log: silentLogger, store: world.store, secretBox: testSecrets, associate: null, schedule: false });
    try {
      return (await syncer.runPassNow()).accounts.find((a) => a.accountId === world.bob.accountId.toString())!;
    } finally {
      await syncer.stop();
    }
  }

  const original = (subject: string, body: string) => [
    'From: Billing <billing@vendor.test>', 'To: bob@acme.test', `Subject: ${subject}`, `Date: ${new Date(Date.now() - 3600_000).toUTCString()}`,
    'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', body, '',
  ].join('\r\n');

  it('stores it once, with both paths, and still stores another mail without a Message-ID', async () => {
    const { bob, store } = world;
    const invoice = original('Invoice 2026-118', 'Your invoice 2026-118 is attached as text: 118.00 EUR.');
    const other = original('Invoice 2026-119', 'Your invoice 2026-119: 119.00 EUR.');
    const added = `<${crypto.randomUUID()}@mail.acme.test>`;
    // The redirect, with the Message-ID its MTA added on re-submission.
    const sent = await sendMail(world.gw.port, { from: `bob@acme.test`, to: [bob.forwardingAddress] },
      `Received: by mail.acme.test (Postfix, from userid 5000); ${new Date().toUTCString()}\r\nMessage-ID: ${added}\r\nResent-From: bob@acme.test\r\n${invoice}`);
    assert.equal(sent.ok, true, sent.response);
    // The copies in the mailbox, as delivered there: no Message-ID.
    await dovecot.append('bob.twopaths@acme.test', 'INBOX', `Delivered-To: bob@acme.test\r\nReceived: from mx.vendor.test by mail.acme.test; ${new Date().toUTCString()}\r\n${invoice}`);
    await dovecot.append('bob.twopaths@acme.test', 'INBOX', `Delivered-To: bob@acme.test\r\n${other}`);

    const result = await syncPass();
    assert.equal(result.outcome, 'synced');
    assert.equal(result.duplicates, 1, 'the synced copy of the forwarded invoice is recognised');
    assert.equal(result.stored, 1, 'the other mail is stored');
    const stored = await store.models.Message.find({ accountId: bob.accountId, subject: /^Invoice 2026-11[89]$/ }).lean();
    assert.deepEqual(stored.map((m) => m.subject).sort(), ['Invoice 2026-118', 'Invoice 2026-119']);
    const copy = stored.find((m) => m.subject === 'Invoice 2026-118')!;
    assert.deepEqual(copy.sources.map((s) => s.kind), ['forward', 'imap']);
    assert.equal((await store.models.MailAccount.findById(bob.accountId).lean())?.messageCount, 2);

    // A later pass (or a resync after a UIDVALIDITY change) finds it again, and stores nothing.
    await dovecot.recreateMailbox('bob.twopaths@acme.test', 'INBOX');
    await dovecot.append('bob.twopaths@acme.test', 'INBOX', `Delivered-To: bob@acme.test\r\n${invoice}`);
    const again = await syncPass();
    assert.equal(again.stored, 0);
    assert.equal(await store.models.Message.countDocuments({ accountId: bob.accountId, subject: 'Invoice 2026-118' }), 1);
  });

  it('does not bring it back from the mailbox once the employee deleted the forwarded copy', async () => {
    const { bob, store } = world;
    const notice = original('Parcel notice 5531', 'Your parcel 5531 is waiting at the depot.');
    const sent = await sendMail(world.gw.port, { from: 'bob@acme.test', to: [bob.forwardingAddress] },
      `Message-ID: <${crypto.randomUUID()}@mail.acme.test>\r\n${notice}`);
    assert.equal(sent.ok, true, sent.response);
    const forwarded = (await store.models.Message.findOne({ subject: 'Parcel notice 5531' }).lean())!;
    await deleteMessage({ store, actor: SYSTEM_ACTOR }, { id: bob.userId, role: 'employee' }, forwarded._id.toString());

    await dovecot.append('bob.twopaths@acme.test', 'INBOX', `Delivered-To: bob@acme.test\r\n${notice}`);
    const result = await syncPass();
    assert.equal(result.tombstoned, 1, 'recognised as the deleted mail');
    assert.equal(await store.models.Message.countDocuments({ subject: 'Parcel notice 5531' }), 0, 'deleted mail stays deleted');
  });

  it('keeps a mail without a Message-ID apart from one with the same words from another sender', async () => {
    const { bob, store } = world;
    const body = 'Meeting moved to 3 pm.';
    const date = new Date(Date.now() - 7200_000).toUTCString();
    const withId = ['From: Carol <carol@vendor.test>', 'To: bob@acme.test', 'Subject: Moved', `Date: ${date}`, `Message-ID: <${crypto.randomUUID()}@vendor.test>`, '', body, ''].join('\r\n');
    const sent = await sendMail(world.gw.port, { from: `bob+caf_=${bob.forwardingAddress.split('@')[0]}=${GATEWAY_DOMAIN}@acme.test`, to: [bob.forwardingAddress] }, withId);
    assert.equal(sent.ok, true, sent.response);
    await dovecot.append('bob.twopaths@acme.test', 'INBOX', ['From: Dave <dave@vendor.test>', 'To: bob@acme.test', 'Subject: Moved', `Date: ${date}`, '', body, ''].join('\r\n'));
    const result = await syncPass();
    assert.equal(result.stored, 1);
    assert.equal(await store.models.Message.countDocuments({ accountId: bob.accountId, subject: 'Moved' }), 2);
  });
});
