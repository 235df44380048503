import { strict as assert } from 'node:assert';
import { createObject } from '../../gateway/crm/objects';
import { silentLogger } from '../../gateway/core/log';
import { wildCorpus, type WildCase } from '../fixtures/wild';
import { useGatewayWorld } from '../support/gateway';
import { sendMail } from '../support/smtp';

/**
 * Everyday mail of real mailers (tests/fixtures/wild) through the real
 * gateway (Haraka, plugins, CRM association at ingest): every message is
 * stored and parsed; what a person wrote is linked to the customer and the
 * contact, and what a machine wrote about our mail (bounces, read receipts,
 * vacation replies, newsletters) is stored but does not pass for the
 * customer writing to us.
 */
describe('SMTP gateway: mail as it arrives from the wild', function () {
  this.timeout(120_000);
  const world = useGatewayWorld('gw_wild');
  const stored = new Map<string, Awaited<ReturnType<typeof find>>>();
  let contactId = '';
  let customerId = '';

  async function find(wild: WildCase) {
    const messageId = /^Message-I[Dd]: <([^>]+)>/m.exec(wild.raw.toString('latin1'))?.[1];
    const query = messageId ? { messageId } : { text: { $regex: /Disk usage on backup host/ } };
    return world.store.models.Message.findOne(query).lean();
  }

  before(async () => {
    const deps = { store: world.store, log: silentLogger };
    customerId = (await createObject(deps, { type: 'customer', name: 'Customer Inc', domains: ['customer.test'] })).object.id;
    contactId = (await createObject(deps, { type: 'contact', name: 'Alice Customer', emails: ['alice@customer.test'] })).object.id;
    // Bob's provider forwards each of them to his forwarding address (SPF of acme.test passes from 127.0.0.1).
    for (const wild of wildCorpus()) {
      const sent = await sendMail(world.gw.port, { from: 'bob@acme.test', to: [world.bob.forwardingAddress] }, wild.raw);
      assert.equal(sent.code, 250, `${wild.name}: ${sent.response}`);
      const doc = await find(wild);
      assert.ok(doc, `${wild.name} stored`);
      stored.set(wild.name, doc);
    }
  });

  const linked = (name: string) => (stored.get(name)!.linkedObjectIds ?? []).map(String).sort();

  it('stores every shape in the inbox, parsed without error', () => {
    for (const [name, doc] of stored) {
      assert.equal(doc!.status, 'inbox', name);
      assert.equal(doc!.parseError, '', name);
    }
  });

  it('links what a person at the customer wrote (invites, signed mail, Apple Mail, Outlook rich text, a long thread)', () => {
    for (const name of ['google-invite-request', 'outlook-invite', 'smime-signed', 'pgp-signed', 'outlook-tnef', 'apple-mail-middle-attachment', 'long-thread', 'many-recipients']) {
      assert.deepEqual(linked(name), [contactId, customerId].sort(), name);
      assert.equal(stored.get(name)!.bulk, false, name);
    }
  });

  it('does not link bounces, read receipts, vacation replies or newsletters as if the customer wrote to us', () => {
    for (const name of ['postfix-bounce', 'exchange-ndr', 'read-receipt', 'vacation-auto-submitted', 'vacation-x-autoreply', 'newsletter']) {
      assert.equal(stored.get(name)!.bulk, true, `${name} is marked automated`);
      assert.deepEqual(linked(name), [], `${name} is not linked`);
    }
    assert.equal(stored.get('exchange-ndr')!.from.address, 'postmaster@customer.test', 'the NDR comes from the customer domain, which links the customer by domain');
  });

  it('keeps the words of a forwarded-as-attachment chain for search, and the raw attachment as it came', () => {
    const chain = stored.get('forwarded-as-attachment')!;
    assert.match(chain.attachedText, /Complaint about order 1234\nAlice Customer <alice@customer\.test>, dave@acme\.test\nThe delivery arrived damaged\./);
    assert.match(chain.attachedText, /Please send 40 units of item 7\./, 'the mail attached to the attached mail');
    assert.deepEqual(chain.attachments.map((a) => [a.filename, a.contentType]), [['Complaint about order 1234.eml', 'message/rfc822']]);
    assert.equal(stored.get('outlook-invite')!.attachedText, '');
  });

  it('keeps a message without From, Date, Message-ID or Subject, saying so rather than inventing them', () => {
    const bare = stored.get('bare-minimum')!;
    assert.equal(bare.subject, '');
    assert.equal(bare.from.address, '');
    assert.match(bare.text, /Disk usage on backup host is at 91%/);
    assert.deepEqual(bare.linkedObjectIds, []);
  });
});
