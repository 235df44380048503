import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import request from 'supertest';
import { createApiToken, createMailAccount, deleteMessage, deleteQuarantined, listMessages, messageVolume, releaseMessage, setPassword, SYSTEM_ACTOR } from '../../gateway/accounts';
import { buildApp, PASSWORD, signIn } from '../admin/fixtures';
import { GATEWAY_DOMAIN, useGatewayWorld } from '../support/gateway';
import { plainMessage } from '../support/mail-auth';
import { sendMail } from '../support/smtp';

/**
 * One mail, several of one employee's own mailboxes: a customer writes to
 * bob@ with sales@ (also Bob's) in Cc, and Bob's provider forwards each
 * mailbox's copy; or Bob Bccs his dropbox on mail his Sent folder also has.
 * Each mailbox keeps its copy (de-duplication is per mailbox), but Bob reads
 * one mail: his inbox, search and the API list it once, and deleting it
 * deletes it, rather than uncovering the copy behind it.
 */
describe('gateway: one mail reaching several of an employee\'s own mailboxes', function () {
  this.timeout(60_000);
  const world = useGatewayWorld('gw_one_mail_own_mailboxes');

  async function forward(mailbox: string, forwardingAddress: string, raw: Buffer) {
    const local = forwardingAddress.split('@')[0];
    const sent = await sendMail(world.gw.port, { from: `${mailbox.split('@')[0]}+caf_=${local}=${GATEWAY_DOMAIN}@acme.test`, to: [forwardingAddress] }, raw);
    assert.equal(sent.ok, true, sent.response);
  }

  it('lists it once with how many mailboxes hold it, finds it once, and deletes every copy', async () => {
    const { bob, store } = world;
    const sales = await createMailAccount(store, bob.userId.toString(), 'sales@acme.test', { gatewayDomain: GATEWAY_DOMAIN });
    const viewer = { id: bob.userId, role: 'employee' };
    const messageId = `${crypto.randomUUID()}@customer.test`;
    const raw = plainMessage({ from: 'Alice <alice@customer.test>', to: 'bob@acme.test', subject: 'Order 4711 for both of you', messageId, extraHeaders: ['Cc: sales@acme.test'] });
    await forward('bob@acme.test', bob.forwardingAddress, raw);
    await forward('sales@acme.test', sales.forwardingAddress, raw);
    // Bob also Bccs his dropbox: a third path for the same mail.
    const sent = await sendMail(world.gw.port, { from: 'bob@acme.test', to: [bob.dropboxAddress] }, raw);
    assert.equal(sent.ok, true, sent.response);
    assert.equal(await store.models.Message.countDocuments({ messageId }), 3, 'each mailbox keeps its copy');

    // Another mail from the same customer, on its own.
    await forward('bob@acme.test', bob.forwardingAddress, plainMessage({ from: 'Alice <alice@customer.test>', to: 'bob@acme.test', subject: 'Order 4712', messageId: `${crypto.randomUUID()}@customer.test` }));

    const inbox = (await listMessages(store, viewer, {})).messages;
    assert.deepEqual(inbox.map((m) => m.subject), ['Order 4712', 'Order 4711 for both of you'], 'the mail is listed once');
    assert.equal(inbox[1].copies, 3);
    assert.equal(inbox[0].copies, 1);
    const today = (await messageVolume(store, viewer)).at(-1)!;
    assert.equal(today.total, 2, 'the dashboard counts it once, as the list shows it');
    const found = (await listMessages(store, viewer, { q: 'Order 4711' })).messages;
    assert.equal(found.length, 1, 'search finds it once');
    // One mailbox's view still shows that mailbox's copy.
    assert.equal((await listMessages(store, viewer, { accountId: sales.id })).messages.length, 1);

    await setPassword(store, bob.userId, PASSWORD);
    const owner = (await store.models.User.findById(bob.userId).lean())!;
    const app = buildApp(store).app;
    const { agent } = await signIn(app, owner.email);
    const page = await agent.get('/').expect(200);
    assert.equal(page.text.split('<span class="subject" dir="auto">Order 4711 for both of you</span>').length - 1, 1, 'the console lists it once');
    assert.match(page.text, /in 3 mailboxes/);
    const { token } = await createApiToken(store, owner.email, { name: 'crm sync' }, SYSTEM_ACTOR);
    const api = await request(app).get('/api/v1/messages').set('Authorization', `Bearer ${token}`).expect(200);
    assert.equal((api.body.messages as Array<{ subject: string }>).filter((m) => m.subject === 'Order 4711 for both of you').length, 1, 'the API lists it once');

    await deleteMessage({ store, actor: SYSTEM_ACTOR }, viewer, inbox[1].id);
    assert.deepEqual((await listMessages(store, viewer, {})).messages.map((m) => m.subject), ['Order 4712'], 'deleted, not replaced by another copy');
    assert.equal(await store.models.Message.countDocuments({ messageId }), 0);
    assert.equal(await store.models.Tombstone.countDocuments({ mailboxKey: { $in: [bob.accountId.toString(), sales.id, `dropbox:${bob.userId.toString()}`] } }), 3, 'no path brings it back');

    // Forwarded again (a provider retry): it stays deleted.
    await forward('sales@acme.test', sales.forwardingAddress, raw);
    assert.equal(await store.models.Message.countDocuments({ messageId }), 0);
  });

  it('releases or deletes a held mail from Quarantine with its copies, so no copy stays behind in the list', async () => {
    const { bob, store } = world;
    const sales = (await store.models.MailAccount.findOne({ email: 'sales@acme.test' }).lean())!;
    const viewer = { id: bob.userId, role: 'employee' };
    const held = async (subject: string) => {
      const raw = plainMessage({ from: 'Alice <alice@customer.test>', to: 'bob@acme.test', subject, messageId: `${crypto.randomUUID()}@customer.test`, extraHeaders: ['Cc: sales@acme.test'] });
      // A forwarder that proves nothing (no SPF for its envelope domain): both copies are held.
      for (const address of [bob.forwardingAddress, sales.forwardingAddress]) {
        const sent = await sendMail(world.gw.port, { from: 'bounces@relay.forwarder.test', to: [address] }, raw);
        assert.equal(sent.ok, true, sent.response);
      }
      const listed = (await listMessages(store, viewer, { status: 'quarantine', q: subject })).messages;
      assert.equal(listed.length, 1, 'held once in the list');
      assert.equal(listed[0].copies, 2);
      return listed[0].id;
    };
    const keep = await held('Held order 1');
    const drop = await held('Held order 2');

    await releaseMessage({ store, actor: SYSTEM_ACTOR }, viewer, keep);
    assert.deepEqual((await listMessages(store, viewer, { status: 'quarantine', q: 'Held order' })).messages.map((m) => m.subject), ['Held order 2'], 'no copy left held');
    const released = (await listMessages(store, viewer, { q: 'Held order 1' })).messages;
    assert.equal(released.length, 1);
    assert.equal(released[0].copies, 2, 'both copies in the inbox');

    assert.equal(await deleteQuarantined({ store, actor: SYSTEM_ACTOR }, viewer, [drop]), 1);
    assert.equal((await listMessages(store, viewer, { status: 'quarantine', q: 'Held order' })).messages.length, 0, 'no copy left held');
    assert.equal(await store.models.Message.countDocuments({ subject: 'Held order 2' }), 0);
  });

  it('lists a mail whose copies fall on two pages once, on the page of its newest copy, counting every copy', async () => {
    // A store upgraded from a version that listed each copy is full of such mail, and a page ends between
    // two copies stored a millisecond apart as readily as anywhere else.
    const { bob, store } = world;
    const sales = (await store.models.MailAccount.findOne({ email: 'sales@acme.test' }).lean())!;
    const viewer = { id: bob.userId, role: 'employee' };
    const mail = (subject: string, cc = '') => plainMessage({ from: 'Alice <alice@customer.test>', to: 'bob@acme.test', subject, messageId: `${crypto.randomUUID()}@customer.test`, extraHeaders: cc ? [`Cc: ${cc}`] : [] });
    await forward('bob@acme.test', bob.forwardingAddress, mail('Paged 1'));
    const both = mail('Paged 2', 'sales@acme.test');
    await forward('sales@acme.test', sales.forwardingAddress, both);
    await forward('bob@acme.test', bob.forwardingAddress, both);
    await forward('bob@acme.test', bob.forwardingAddress, mail('Paged 3'));

    // Newest first: Paged 3, Paged 2 (bob@), | Paged 2 (sales@), Paged 1.
    const first = await listMessages(store, viewer, { q: 'Paged' }, { limit: 2 });
    assert.deepEqual(first.messages.map((m) => [m.subject, m.copies]), [['Paged 3', 1], ['Paged 2', 2]], 'listed with both its copies');
    assert.ok(first.nextCursor);
    const second = await listMessages(store, viewer, { q: 'Paged' }, { limit: 2, cursor: first.nextCursor! });
    assert.deepEqual(second.messages.map((m) => m.subject), ['Paged 1'], 'not listed again on the next page');
  });

  it('keeps two employees\' copies apart: each sees their own', async () => {
    const { bob, store } = world;
    const carolUser = await store.models.User.create({ email: 'carol-user@acme.test', dropboxToken: crypto.randomBytes(8).toString('hex') });
    const carol = await createMailAccount(store, carolUser._id.toString(), 'carol@acme.test', { gatewayDomain: GATEWAY_DOMAIN });
    const messageId = `${crypto.randomUUID()}@customer.test`;
    const raw = plainMessage({ from: 'Alice <alice@customer.test>', to: 'bob@acme.test, carol@acme.test', subject: 'For Bob and Carol', messageId });
    await forward('bob@acme.test', bob.forwardingAddress, raw);
    await forward('carol@acme.test', carol.forwardingAddress, raw);
    for (const id of [bob.userId, carolUser._id]) {
      const mine = (await listMessages(store, { id, role: 'employee' }, { q: 'For Bob and Carol' })).messages;
      assert.equal(mine.length, 1);
      assert.equal(mine[0].ownerId, id.toString());
    }
    // An admin reading everyone's mail sees both employees' copies, each under its owner.
    const all = (await listMessages(store, { id: carolUser._id, role: 'admin' }, { q: 'For Bob and Carol' })).messages;
    assert.deepEqual(all.map((m) => m.ownerId).sort(), [bob.userId.toString(), carolUser._id.toString()].sort());
  });
});
