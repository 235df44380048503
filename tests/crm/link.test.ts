import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { crmAfterRelease, crmAssociator, linkMessage, unlinkAsViewer, unlinkMessage, type CrmDeps } from '../../gateway/crm/link';
import { releaseMessage } from '../../gateway/accounts';
import { createObject } from '../../gateway/crm/objects';
import { runPendingJobs, sweep } from '../../gateway/crm/backfill';
import { objectTimeline, messageLinks } from '../../gateway/crm/timeline';
import { ingest } from '../../gateway/mail/ingest';
import { openTestStore } from '../support/store';
import { insertMessage, linkedIds, linksOf, makeAccount, makeUser, testLog } from './support';

describe('crm/link: linking stored messages (real store)', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let deps: CrmDeps;
  let bob: Awaited<ReturnType<typeof makeUser>>;
  let alice: Awaited<ReturnType<typeof makeUser>>;
  let admin: Awaited<ReturnType<typeof makeUser>>;
  const ids: Record<string, mongoose.Types.ObjectId> = {};

  before(async () => {
    store = await openTestStore('crm_link');
    deps = { store, log: testLog };
    await store.models.BusinessSettings.create({ _id: 'business', domains: ['acme.test'] });
    bob = await makeUser(store, 'bob@acme.test');
    alice = await makeUser(store, 'alice@acme.test');
    admin = await makeUser(store, 'it@acme.test', 'admin');
    await makeAccount(store, bob._id, 'bob@acme.test');
    await makeAccount(store, bob._id, 'bob.private@gmail.com');
    const make = async (key: string, input: Parameters<typeof createObject>[1]) => {
      ids[key] = new mongoose.Types.ObjectId((await createObject(deps, input)).object.id);
    };
    await make('jane', { type: 'contact', name: 'Jane Roe', emails: ['Jane@Globex.test'] });
    await make('globex', { type: 'customer', name: 'Globex', domains: ['globex.test'] });
    await make('sam', { type: 'lead', name: 'Sam', emails: ['sam@gmail.com'] });
    await make('anna', { type: 'contact', name: 'Anna Bücher', emails: ['anna@Bücher.test'] });
    await make('bobPrivate', { type: 'lead', name: 'Bob as a lead', emails: ['bob.private@gmail.com'] });
    await make('alice', { type: 'contact', name: 'Alice (colleague)', emails: ['alice@acme.test'] });
    await make('newsco', { type: 'customer', name: 'News Co', domains: ['news.test'], rules: { linkBulk: true } });
    // Objects were created before any mail: their backfill jobs find nothing.
    await runPendingJobs(deps);
    // Legacy/imported data may hold a free-mail domain on a customer: it still must not link.
    await store.models.CrmObject.create({ type: 'customer', name: 'Gmail Inc', nameLower: 'gmail inc', domains: ['gmail.com'], externalId: 'legacy-gmail' });
  });
  after(async () => store.drop());

  it('links by exact address and by domain, records why, and denormalises Message.linkedObjectIds', async () => {
    const message = await insertMessage(store, { ownerId: bob._id, from: 'Jane Roe <JANE@globex.test>', to: ['bob@acme.test'] });
    const result = await linkMessage(deps, message);
    assert.equal(result.links, 2);
    assert.equal(result.created, 2);
    assert.deepEqual(await linkedIds(store, message._id), [ids.jane.toString(), ids.globex.toString()].sort());
    const links = await linksOf(store, message._id);
    const jane = links.find((l) => l.objectId.equals(ids.jane))!;
    assert.equal(jane.rule, 'address');
    assert.equal(jane.address, 'jane@globex.test');
    assert.deepEqual(jane.reasons.map((r) => [r.rule, r.role, r.matched]), [['address', 'from', 'jane@globex.test']]);
    const globex = links.find((l) => l.objectId.equals(ids.globex))!;
    assert.equal(globex.rule, 'domain');
    assert.equal(globex.reasons[0].matched, 'globex.test');
    assert.ok(globex.ownerId.equals(bob._id));
    const stored = await store.models.Message.findById(message._id).lean();
    assert.ok(stored!.linkedAt instanceof Date, 'linkedAt marks that association ran');
  });

  it('is idempotent: linking again keeps one link per object', async () => {
    const message = await insertMessage(store, { ownerId: bob._id, from: 'jane@globex.test', to: ['bob@acme.test'] });
    await linkMessage(deps, message);
    const again = await linkMessage(deps, message);
    assert.equal(again.created, 0);
    assert.equal(again.links, 2);
    assert.equal(await store.models.Link.countDocuments({ messageId: message._id }), 2);
    assert.equal((await linkedIds(store, message._id)).length, 2);
  });

  it('never links a customer by a free-mail domain, but links the exact address', async () => {
    const message = await insertMessage(store, { ownerId: alice._id, from: 'sam@gmail.com', to: ['alice@acme.test'] });
    await linkMessage(deps, message);
    assert.deepEqual(await linkedIds(store, message._id), [ids.sam.toString()]);
  });

  it("never links the account owner's own addresses (but does for another employee's mail)", async () => {
    const own = await insertMessage(store, { ownerId: bob._id, from: 'bob.private@gmail.com', to: ['someone@elsewhere.test'] });
    await linkMessage(deps, own);
    assert.deepEqual(await linkedIds(store, own._id), []);
    const other = await insertMessage(store, { ownerId: alice._id, from: 'bob.private@gmail.com', to: ['alice@acme.test'] });
    await linkMessage(deps, other);
    assert.deepEqual(await linkedIds(store, other._id), [ids.bobPrivate.toString()]);
  });

  it('stores but does not link internal-only mail', async () => {
    const message = await insertMessage(store, { ownerId: bob._id, from: 'alice@acme.test', to: ['bob@acme.test'], cc: ['ops@eu.acme.test'] });
    const result = await linkMessage(deps, message);
    assert.equal(result.internal, true);
    assert.deepEqual(await linkedIds(store, message._id), []);
    // The same colleague on mail with an outsider does link (she is set up as a contact).
    const mixed = await insertMessage(store, { ownerId: bob._id, from: 'alice@acme.test', to: ['jane@globex.test'] });
    await linkMessage(deps, mixed);
    assert.deepEqual(await linkedIds(store, mixed._id), [ids.jane.toString(), ids.globex.toString(), ids.alice.toString()].sort());
  });

  it('strips sub-addresses: jane+billing@ reaches the contact jane@', async () => {
    const message = await insertMessage(store, { ownerId: bob._id, from: 'bob@acme.test', to: ['jane+billing@globex.test'] });
    await linkMessage(deps, message);
    const links = await linksOf(store, message._id);
    const jane = links.find((l) => l.objectId.equals(ids.jane))!;
    assert.ok(jane, 'linked to Jane');
    assert.equal(jane.address, 'jane+billing@globex.test', 'the reason shows the address as it appeared');
    assert.equal(jane.reasons[0].role, 'to');
  });

  it('matches IDN domains whatever form the message uses', async () => {
    const stored = await store.models.CrmObject.findById(ids.anna).lean();
    assert.deepEqual(stored!.emails, ['anna@xn--bcher-kva.test']);
    const unicode = await insertMessage(store, { ownerId: bob._id, from: 'anna@BÜCHER.test', to: ['bob@acme.test'] });
    const ascii = await insertMessage(store, { ownerId: bob._id, from: 'anna@xn--bcher-kva.test', to: ['bob@acme.test'] });
    await linkMessage(deps, unicode);
    await linkMessage(deps, ascii);
    assert.deepEqual(await linkedIds(store, unicode._id), [ids.anna.toString()]);
    assert.deepEqual(await linkedIds(store, ascii._id), [ids.anna.toString()]);
  });

  it('does not link bulk mail unless the object asks for it', async () => {
    const newsletter = await insertMessage(store, {
      ownerId: bob._id, from: 'letters@news.test', to: ['jane@globex.test', 'bob@acme.test'], headers: { 'List-Id': '<weekly.news.test>' },
    });
    await linkMessage(deps, newsletter);
    assert.deepEqual(await linkedIds(store, newsletter._id), [ids.newsco.toString()], 'only News Co (linkBulk) is linked');
    const autoReply = await insertMessage(store, { ownerId: bob._id, from: 'jane@globex.test', to: ['bob@acme.test'], headers: { 'Auto-Submitted': 'auto-replied' } });
    await linkMessage(deps, autoReply);
    assert.deepEqual(await linkedIds(store, autoReply._id), []);
    const flagged = await insertMessage(store, { ownerId: bob._id, from: 'jane@globex.test', to: ['bob@acme.test'], bulk: true });
    await linkMessage(deps, flagged);
    assert.deepEqual(await linkedIds(store, flagged._id), [], 'Message.bulk set by ingest counts too');
  });

  it('does not link quarantined mail until it is released', async () => {
    const held = await insertMessage(store, { ownerId: bob._id, from: 'jane@globex.test', to: ['bob@acme.test'], status: 'quarantine' });
    assert.equal((await linkMessage(deps, held)).links, 0);
    assert.equal(await store.models.Link.countDocuments({ messageId: held._id }), 0);
    // Release through the console's function with the CRM hook it is given.
    await releaseMessage({ store, actor: { id: admin._id }, afterRelease: crmAfterRelease(deps) }, { id: admin._id, role: 'admin' }, held._id.toString());
    assert.deepEqual(await linkedIds(store, held._id), [ids.jane.toString(), ids.globex.toString()].sort());
  });

  it('releases a message clicked Release twice at once (or by two admins) once: one audit entry, one hand-over to the CRM, a 409 for the other', async () => {
    // FerretDB applies the status-conditional write as a read, then a write: both releases went through.
    for (let round = 0; round < 8; round++) {
      const held = await insertMessage(store, { ownerId: bob._id, from: 'jane@globex.test', to: ['bob@acme.test'], status: 'quarantine' });
      let handedOver = 0;
      const release = () => releaseMessage({ store, actor: { id: admin._id }, afterRelease: async () => void handedOver++ }, { id: admin._id, role: 'admin' }, held._id.toString());
      const outcomes = await Promise.allSettled([release(), release(), release()]);
      assert.equal(outcomes.filter((outcome) => outcome.status === 'fulfilled').length, 1, `round ${round}: released more than once`);
      for (const outcome of outcomes) if (outcome.status === 'rejected') assert.equal((outcome.reason as { code?: string }).code, 'NOT_QUARANTINED');
      assert.equal(await store.models.AuditEvent.countDocuments({ action: 'message.release', targetId: held._id.toString() }), 1);
      assert.equal(handedOver, 1);
      assert.equal((await store.models.Message.findById(held._id).lean())!.status, 'inbox');
    }
  });

  it('unlinking keeps the pair unlinked; "never link this address" removes its other links too', async () => {
    const first = await insertMessage(store, { ownerId: bob._id, from: 'peter@globex.test', to: ['bob@acme.test'] });
    const second = await insertMessage(store, { ownerId: bob._id, from: 'peter@globex.test', to: ['bob@acme.test'] });
    const third = await insertMessage(store, { ownerId: bob._id, from: 'mary@globex.test', to: ['bob@acme.test'] });
    const fourth = await insertMessage(store, { ownerId: alice._id, from: 'Peter+news@globex.test', to: ['alice@acme.test'] });
    for (const m of [first, second, third, fourth]) await linkMessage(deps, m);
    assert.deepEqual(await linkedIds(store, fourth._id), [ids.globex.toString()]);
    assert.deepEqual(await linkedIds(store, first._id), [ids.globex.toString()]);

    await unlinkMessage(deps, { messageId: first._id, objectId: ids.globex }, { actorId: bob._id });
    assert.deepEqual(await linkedIds(store, first._id), []);
    await linkMessage(deps, first);
    assert.deepEqual(await linkedIds(store, first._id), [], 'an unlinked pair is not revived by association');

    const { neverLink, pruneJobId } = await unlinkMessage(deps, { messageId: second._id, objectId: ids.globex }, { neverLink: true, actorId: bob._id });
    assert.deepEqual(neverLink, ['peter@globex.test']);
    assert.ok(pruneJobId);
    assert.equal(await runPendingJobs(deps), 1);
    assert.deepEqual(await linkedIds(store, fourth._id), [], "the rule removed the address's existing links (sub-address included)");
    assert.equal(await store.models.Link.countDocuments({ messageId: fourth._id }), 0);
    const job = await store.models.BackfillJob.findById(pruneJobId).lean();
    assert.equal(job!.status, 'done');
    assert.equal(job!.removed, 1);
    const peterLater = await insertMessage(store, { ownerId: alice._id, from: 'peter@globex.test', to: ['alice@acme.test'] });
    await linkMessage(deps, peterLater);
    assert.deepEqual(await linkedIds(store, peterLater._id), [], 'the never-link rule applies to new mail');
    assert.deepEqual(await linkedIds(store, third._id), [ids.globex.toString()], 'other addresses of the domain still link');
    await assert.rejects(unlinkMessage(deps, { messageId: new mongoose.Types.ObjectId(), objectId: ids.globex }), /link not found/);
  });

  it('links through the ingest pipeline (associate) for inbox mail only', async () => {
    const raw = (to: string) =>
      Buffer.from(`From: Anna <anna@xn--bcher-kva.test>\r\nTo: ${to}\r\nSubject: Offer\r\nMessage-ID: <${new mongoose.Types.ObjectId()}@buecher.test>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\nHello Bob\r\n`);
    const ingestDeps = { store, log: testLog, associate: crmAssociator(deps) };
    const stored = await ingest(ingestDeps, { raw: raw('bob@acme.test'), mailboxKey: 'ingest-test', ownerId: bob._id, source: { kind: 'forward' } });
    assert.equal(stored.outcome, 'stored');
    assert.deepEqual(await linkedIds(store, stored.id!), [ids.anna.toString()]);
    const held = await ingest(ingestDeps, { raw: raw('bob@acme.test'), mailboxKey: 'ingest-test-2', ownerId: bob._id, source: { kind: 'forward' }, status: 'quarantine' });
    assert.equal(held.status, 'quarantine');
    assert.deepEqual(await linkedIds(store, held.id!), []);
  });

  it('ingest stores the message already carrying its links; links cut short by a crash are repaired when it comes again', async () => {
    const raw = Buffer.from(
      `From: Jane Roe <jane@globex.test>\r\nTo: bob@acme.test\r\nSubject: Renewal\r\nMessage-ID: <${new mongoose.Types.ObjectId()}@globex.test>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\nHello Bob\r\n`,
    );
    const associator = crmAssociator(deps);
    // Fault injection: the process "dies" after the message write, before the link records.
    const dying = { ...associator, commit: async () => { throw new Error('killed after the message write'); } };
    const first = await ingest({ store, log: testLog, associate: dying }, { raw, mailboxKey: 'repair-test', ownerId: bob._id, source: { kind: 'forward' } });
    assert.equal(first.outcome, 'stored');
    const stored = await store.models.Message.findById(first.id).lean();
    assert.deepEqual(stored!.linkedObjectIds.map(String).sort(), [ids.jane.toString(), ids.globex.toString()].sort(), 'the document lists its links from its first write');
    assert.ok(stored!.linkedAt instanceof Date);
    assert.equal((await messageLinks(store, first.id!)).length, 0, 'no link records yet: the message page cannot say why');

    // Not acknowledged, so the sender retries: the duplicate repairs the link records, with their reasons.
    const again = await ingest({ store, log: testLog, associate: associator }, { raw, mailboxKey: 'repair-test', ownerId: bob._id, source: { kind: 'forward' } });
    assert.equal(again.outcome, 'duplicate');
    assert.ok(again.id!.equals(first.id!));
    const views = await messageLinks(store, first.id!);
    assert.deepEqual(views.map((v) => [v.object.name, v.rule, v.address]).sort(), [['Globex', 'domain', 'jane@globex.test'], ['Jane Roe', 'address', 'jane@globex.test']]);

    // A pair the user unlinked stays unlinked however often the message comes again.
    await unlinkMessage(deps, { messageId: first.id!, objectId: ids.jane });
    await ingest({ store, log: testLog, associate: associator }, { raw, mailboxKey: 'repair-test', ownerId: bob._id, source: { kind: 'imap', folder: 'INBOX', uidValidity: '1', uid: 7 } });
    assert.deepEqual(await linkedIds(store, first.id!), [ids.globex.toString()]);
    assert.deepEqual((await messageLinks(store, first.id!)).map((v) => v.object.name), ['Globex']);
    assert.equal(await store.models.Link.countDocuments({ messageId: first.id }), 2, 'one record per pair, the unlinked one kept as a tombstone');
  });

  it('messages ingested at the same time share the candidate query, and each links only its own objects', async () => {
    const senders = ['Jane Roe <jane@globex.test>', 'Sam <sam@gmail.com>', 'Anna <anna@xn--bcher-kva.test>', 'Max <max@globex.test>', 'Nobody <nobody@elsewhere.test>'];
    const expected = [[ids.jane, ids.globex], [ids.sam], [ids.anna], [ids.globex], []].map((list) => list.map(String).sort());
    const raw = (from: string) =>
      Buffer.from(`From: ${from}\r\nTo: bob@acme.test\r\nSubject: Hello\r\nMessage-ID: <${new mongoose.Types.ObjectId()}@x.test>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\nHello Bob\r\n`);
    const ingestDeps = { store, log: testLog, associate: crmAssociator(deps) };
    const collection = store.models.CrmObject.collection;
    const find = collection.find;
    let queries = 0;
    collection.find = ((...args: Parameters<typeof find>) => {
      queries += 1;
      return find.apply(collection, args);
    }) as typeof find;
    let results;
    try {
      results = await Promise.all(senders.map((from) => ingest(ingestDeps, { raw: raw(from), mailboxKey: 'concurrent-link-test', ownerId: bob._id, source: { kind: 'forward' } })));
    } finally {
      collection.find = find;
    }
    for (const [i, result] of results.entries()) {
      assert.deepEqual(await linkedIds(store, result.id!), expected[i], senders[i]);
      assert.deepEqual((await linksOf(store, result.id!)).map((l) => String(l.objectId)).sort(), expected[i], `${senders[i]}: link records`);
    }
    assert.ok(queries < senders.length, `${senders.length} concurrent messages shared candidate queries (${queries})`);
  });

  it('ingest stores mail unlinked when association cannot be planned, and the sweep links it later', async () => {
    const raw = Buffer.from(`From: sam@gmail.com\r\nTo: bob@acme.test\r\nSubject: Hi\r\nMessage-ID: <${new mongoose.Types.ObjectId()}@gmail.com>\r\n\r\nHi\r\n`);
    const broken = { ...crmAssociator(deps), plan: async () => { throw new Error('rules crashed'); } };
    const result = await ingest({ store, log: testLog, associate: broken }, { raw, mailboxKey: 'plan-fails', ownerId: bob._id, source: { kind: 'forward' } });
    assert.equal(result.outcome, 'stored', 'a planning failure never refuses mail');
    assert.equal((await store.models.Message.findById(result.id).lean())!.linkedAt, null);
    await sweep(deps, { olderThanMs: 0 });
    assert.deepEqual(await linkedIds(store, result.id!), [ids.sam.toString()]);
  });

  it('shows an object timeline newest first, paged, with the privacy rule', async () => {
    const { Message } = store.models;
    const contact = new mongoose.Types.ObjectId((await createObject(deps, { type: 'contact', name: 'Timeline Tess', emails: ['tess@initech.test'] })).object.id);
    const base = Date.parse('2026-01-01T00:00:00Z');
    const bobs = [];
    for (let i = 0; i < 5; i++) {
      const m = await insertMessage(store, { ownerId: bob._id, from: 'tess@initech.test', to: ['bob@acme.test'], receivedAt: new Date(base + i * 60_000), subject: `bob ${i}` });
      await linkMessage(deps, m);
      bobs.push(m);
    }
    const alices = await insertMessage(store, { ownerId: alice._id, from: 'tess@initech.test', to: ['alice@acme.test'], receivedAt: new Date(base + 10 * 60_000), subject: 'alice' });
    await linkMessage(deps, alices);

    const asAdmin = await objectTimeline(deps, contact, { id: admin._id, role: 'admin' }, { limit: 4 });
    assert.deepEqual(asAdmin.entries.map((e) => e.subject), ['alice', 'bob 4', 'bob 3', 'bob 2']);
    assert.equal(asAdmin.entries[0].link?.rule, 'address');
    const page2 = await objectTimeline(deps, contact, { id: admin._id, role: 'admin' }, { limit: 4, before: asAdmin.next! });
    assert.deepEqual(page2.entries.map((e) => e.subject), ['bob 1', 'bob 0']);
    assert.equal(page2.next, null);

    const asAlice = await objectTimeline(deps, contact, { id: alice._id, role: 'employee' });
    assert.deepEqual(asAlice.entries.map((e) => e.subject), ['alice'], "Bob's mail is private to Bob and admins");
    await Message.updateOne({ _id: bobs[2]._id }, { $set: { shared: true } });
    assert.deepEqual((await objectTimeline(deps, contact, { id: alice._id, role: 'employee' })).entries.map((e) => e.subject), ['alice', 'bob 2']);
    await store.models.BusinessSettings.updateOne({ _id: 'business' }, { $set: { shareLinkedMail: true } });
    assert.equal((await objectTimeline(deps, contact, { id: alice._id, role: 'employee' })).entries.length, 6);
    await store.models.BusinessSettings.updateOne({ _id: 'business' }, { $set: { shareLinkedMail: false } });

    const views = await messageLinks(store, bobs[0]._id);
    assert.deepEqual(views.map((v) => [v.object.name, v.rule, v.address]), [['Timeline Tess', 'address', 'tess@initech.test']]);
  });

  it("shows a mail that reached several employees' mailboxes once on the timeline, and unlinks its copies together", async () => {
    const { Message } = store.models;
    const contact = new mongoose.Types.ObjectId((await createObject(deps, { type: 'contact', name: 'Copied Cora', emails: ['cora@copied.test'] })).object.id);
    const at = new Date('2026-02-01T10:00:00Z');
    // Cora writes to Bob and Alice: each mailbox stores its copy (same Message-ID and content).
    const spec = { from: 'cora@copied.test', to: ['bob@acme.test', 'alice@acme.test'], subject: 'To you both' };
    const bobsCopy = await insertMessage(store, { ...spec, ownerId: bob._id, receivedAt: at });
    const alicesCopy = await insertMessage(store, { ...spec, ownerId: alice._id, receivedAt: new Date(at.getTime() + 90_000) });
    await Message.updateOne({ _id: alicesCopy._id }, { $set: { messageId: bobsCopy.messageId, contentHash: bobsCopy.contentHash } });
    const other = await insertMessage(store, { ownerId: bob._id, from: 'cora@copied.test', to: ['bob@acme.test'], subject: 'Just Bob', receivedAt: new Date(at.getTime() + 60_000) });
    for (const m of [bobsCopy, alicesCopy, other]) await linkMessage(deps, (await Message.findById(m._id).lean())!);

    const entries = async (viewer: { id: mongoose.Types.ObjectId; role: string }) =>
      (await objectTimeline(deps, contact, viewer)).entries.map((e) => `${e.subject}|${e.copies}|${e.ownerId === alice._id.toString() ? 'alice' : 'bob'}`);
    assert.deepEqual(await entries({ id: admin._id, role: 'admin' }), ['To you both|2|alice', 'Just Bob|1|bob']);
    assert.deepEqual(await entries({ id: bob._id, role: 'employee' }), ['Just Bob|1|bob', 'To you both|1|bob'], 'an employee sees their own copy');
    await store.models.BusinessSettings.updateOne({ _id: 'business' }, { $set: { shareLinkedMail: true } });
    // Bob's copy (10:00) is older than 'Just Bob' (10:01), Alice's (10:01:30) newer: the entry takes its place by Bob's copy.
    assert.deepEqual(await entries({ id: bob._id, role: 'employee' }), ['Just Bob|1|bob', 'To you both|2|bob'], 'with shared mail: once, as their own copy, in order');
    await store.models.BusinessSettings.updateOne({ _id: 'business' }, { $set: { shareLinkedMail: false } });

    // Bob unlinks his copy: Alice's stays (it is hers); an admin unlinking removes every copy.
    await unlinkAsViewer(deps, { id: bob._id, role: 'employee' }, { messageId: bobsCopy._id, objectId: contact });
    assert.ok(!(await linkedIds(store, bobsCopy._id)).includes(contact.toString()));
    assert.ok((await linkedIds(store, alicesCopy._id)).includes(contact.toString()));
    await unlinkAsViewer(deps, { id: admin._id, role: 'admin' }, { messageId: alicesCopy._id, objectId: contact });
    assert.deepEqual(await entries({ id: admin._id, role: 'admin' }), ['Just Bob|1|bob']);
  });
});
