import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { createJob, listJobs, runPendingJobs, sweep } from '../../gateway/crm/backfill';
import { linkMessage, unlinkMessage, type CrmDeps } from '../../gateway/crm/link';
import { createObject, deleteObject, updateObject } from '../../gateway/crm/objects';
import { startCrmWorker } from '../../gateway/crm/worker';
import { openTestStore } from '../support/store';
import { insertMessage, linkedIds, linksOf, makeUser, testLog } from './support';

describe('crm/backfill: existing mail follows object changes (real store)', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let deps: CrmDeps;
  let bob: Awaited<ReturnType<typeof makeUser>>;

  before(async () => {
    store = await openTestStore('crm_backfill');
    deps = { store, log: testLog };
    await store.models.BusinessSettings.create({ _id: 'business', domains: ['acme.test'] });
    bob = await makeUser(store, 'bob@acme.test');
  });
  after(async () => store.drop());

  it('links existing mail when an object is created, with progress on the job document', async () => {
    const matching = [];
    for (let i = 0; i < 7; i++) matching.push(await insertMessage(store, { ownerId: bob._id, from: i % 2 ? 'carl+x@hooli.test' : 'carl@hooli.test', to: ['bob@acme.test'] }));
    const unicode = await insertMessage(store, { ownerId: bob._id, from: 'carl@hooli.test', to: ['zoë@bücher.test'] });
    const other = await insertMessage(store, { ownerId: bob._id, from: 'dora@hooli.test', to: ['bob@acme.test'] });
    const held = await insertMessage(store, { ownerId: bob._id, from: 'carl@hooli.test', to: ['bob@acme.test'], status: 'quarantine' });
    const { object, jobIds } = await createObject(deps, { type: 'contact', name: 'Carl', emails: ['carl@hooli.test'] });
    assert.equal(jobIds.length, 1);
    let job = await store.models.BackfillJob.findById(jobIds[0]).lean();
    assert.equal(job!.status, 'pending');
    assert.equal(await runPendingJobs(deps), 1);
    job = await store.models.BackfillJob.findById(jobIds[0]).lean();
    assert.equal(job!.status, 'done');
    assert.equal(job!.total, 8);
    assert.equal(job!.processed, 8);
    assert.equal(job!.linked, 8);
    for (const m of [...matching, unicode]) assert.deepEqual(await linkedIds(store, m._id), [object.id]);
    assert.deepEqual(await linkedIds(store, other._id), []);
    assert.deepEqual(await linkedIds(store, held._id), [], 'quarantined mail is not linked by backfill either');
    const [listed] = await listJobs(store, { objectId: new mongoose.Types.ObjectId(object.id) });
    assert.equal(listed.status, 'done');
  });

  it("each object's job counts the mail now linked to that object, not links made to others", async () => {
    // Both objects exist before either job runs: the customer's job links Jane's mail to both.
    const mails = [];
    for (let i = 0; i < 2; i++) mails.push(await insertMessage(store, { ownerId: bob._id, from: 'jane@globex.test', to: ['bob@acme.test'] }));
    const customer = await createObject(deps, { type: 'customer', name: 'Globex', domains: ['globex.test'] });
    const contact = await createObject(deps, { type: 'contact', name: 'Jane Roe', emails: ['jane@globex.test'] });
    assert.equal(await runPendingJobs(deps), 2);
    const customerJob = (await store.models.BackfillJob.findById(customer.jobIds[0]).lean())!;
    const contactJob = (await store.models.BackfillJob.findById(contact.jobIds[0]).lean())!;
    for (const m of mails) assert.deepEqual(await linkedIds(store, m._id), [customer.object.id, contact.object.id].sort());
    assert.deepEqual([customerJob.processed, customerJob.total, customerJob.linked], [2, 2, 2]);
    assert.deepEqual([contactJob.processed, contactJob.total, contactJob.linked], [2, 2, 2], 'links the customer job made first still count for the contact');

    // Resuming an interrupted job from its cursor does not count a message twice.
    await store.models.BackfillJob.updateOne({ _id: contactJob._id }, {
      $set: { status: 'running', processed: 1, linked: 1, cursor: mails[0]._id, lockedUntil: new Date(0), finishedAt: null },
    });
    assert.equal(await runPendingJobs(deps), 1);
    const resumed = (await store.models.BackfillJob.findById(contactJob._id).lean())!;
    assert.deepEqual([resumed.processed, resumed.linked], [2, 2]);

    // A message the user unlinked from the contact is not counted for it.
    await unlinkMessage(deps, { messageId: mails[1]._id, objectId: contactJob.objectId! });
    const again = await createJob(store, { kind: 'backfill', objectId: contactJob.objectId, emails: ['jane@globex.test'] });
    await runPendingJobs(deps);
    assert.equal((await store.models.BackfillJob.findById(again).lean())!.linked, 1);
  });

  it('links a customer by a domain it gains, including IDN and subdomains', async () => {
    const idn = await insertMessage(store, { ownerId: bob._id, from: 'info@straße.test', to: ['bob@acme.test'] });
    const sub = await insertMessage(store, { ownerId: bob._id, from: 'x@eu.xn--strae-oqa.test', to: ['bob@acme.test'] });
    const lookalike = await insertMessage(store, { ownerId: bob._id, from: 'x@notstraße.test', to: ['bob@acme.test'] });
    const { object } = await createObject(deps, { type: 'customer', name: 'Straße GmbH' });
    const { jobIds } = await updateObject(deps, object.id, { domains: 'Straße.test' });
    assert.equal(jobIds.length, 1);
    await runPendingJobs(deps);
    assert.deepEqual(await linkedIds(store, idn._id), [object.id]);
    assert.deepEqual(await linkedIds(store, sub._id), [object.id]);
    assert.deepEqual(await linkedIds(store, lookalike._id), []);
  });

  it('links mail whose Unicode address was written decomposed (NFD) to a contact typed composed, and the other way round', async () => {
    const decomposed = await insertMessage(store, { ownerId: bob._id, from: 'Zoe\u0308@hooli-nfd.test', to: ['bob@acme.test'] });
    const composed = await insertMessage(store, { ownerId: bob._id, from: 'bob@acme.test', to: ['zo\u00eb@hooli-nfd.test'] });
    const { object } = await createObject(deps, { type: 'contact', name: 'Zoë', emails: ['zo\u00eb@hooli-nfd.test'] });
    await runPendingJobs(deps);
    assert.deepEqual(await linkedIds(store, decomposed._id), [object.id], 'backfill finds the decomposed spelling');
    assert.deepEqual(await linkedIds(store, composed._id), [object.id]);
    const typedOnAMac = await createObject(deps, { type: 'lead', name: 'Zoë (lead)', emails: ['ZOE\u0308@hooli-nfd.test'] });
    assert.deepEqual(typedOnAMac.object.emails, ['zo\u00eb@hooli-nfd.test']);
    const later = await insertMessage(store, { ownerId: bob._id, from: 'zoe\u0308+x@hooli-nfd.test', to: ['bob@acme.test'] });
    await linkMessage(deps, later);
    assert.deepEqual(await linkedIds(store, later._id), [object.id, typedOnAMac.object.id].sort());
  });

  it('removes only the links made through a removed address', async () => {
    const { object } = await createObject(deps, { type: 'contact', name: 'Erin', emails: ['erin@old.test', 'erin@new.test'] });
    await runPendingJobs(deps);
    const viaOld = await insertMessage(store, { ownerId: bob._id, from: 'erin@old.test', to: ['bob@acme.test'] });
    const viaNew = await insertMessage(store, { ownerId: bob._id, from: 'erin@new.test', to: ['bob@acme.test'] });
    const viaBoth = await insertMessage(store, { ownerId: bob._id, from: 'erin@old.test', to: ['bob@acme.test'], cc: ['erin@new.test'] });
    for (const m of [viaOld, viaNew, viaBoth]) await linkMessage(deps, m);
    assert.equal((await linksOf(store, viaBoth._id))[0].reasons.length, 2);

    const { jobIds } = await updateObject(deps, object.id, { emails: ['erin@new.test'] });
    assert.equal(jobIds.length, 1);
    await runPendingJobs(deps);
    const job = await store.models.BackfillJob.findById(jobIds[0]).lean();
    assert.equal(job!.kind, 'prune');
    assert.equal(job!.removed, 1);
    assert.deepEqual(await linkedIds(store, viaOld._id), []);
    assert.equal(await store.models.Link.countDocuments({ messageId: viaOld._id }), 0);
    assert.deepEqual(await linkedIds(store, viaNew._id), [object.id]);
    assert.deepEqual(await linkedIds(store, viaBoth._id), [object.id], 'still supported by the other address');
    const [kept] = await linksOf(store, viaBoth._id);
    assert.deepEqual(kept.reasons.map((r) => r.address), ['erin@new.test'], 'reasons no longer mention the removed address');

    // Removing a customer domain works the same way.
    const { object: customer } = await createObject(deps, { type: 'customer', name: 'Two Domains', domains: ['one.test', 'two.test'] });
    const one = await insertMessage(store, { ownerId: bob._id, from: 'a@one.test', to: ['bob@acme.test'] });
    const two = await insertMessage(store, { ownerId: bob._id, from: 'a@two.test', to: ['bob@acme.test'] });
    await runPendingJobs(deps);
    assert.deepEqual(await linkedIds(store, one._id), [customer.id]);
    await updateObject(deps, customer.id, { domains: 'two.test' });
    await runPendingJobs(deps);
    assert.deepEqual(await linkedIds(store, one._id), []);
    assert.deepEqual(await linkedIds(store, two._id), [customer.id]);
  });

  it('a never-link rule for a subdomain of the customer domain removes the links already made through it', async () => {
    const { object } = await createObject(deps, { type: 'customer', name: 'Umbrella', domains: ['umbrella-prune.test'] });
    const fromEu = await insertMessage(store, { ownerId: bob._id, from: 'x@eu.umbrella-prune.test', to: ['bob@acme.test'] });
    const fromHq = await insertMessage(store, { ownerId: bob._id, from: 'y@umbrella-prune.test', to: ['bob@acme.test'] });
    await runPendingJobs(deps);
    assert.deepEqual(await linkedIds(store, fromEu._id), [object.id]);
    const { jobIds } = await updateObject(deps, object.id, { rules: { neverLink: ['eu.umbrella-prune.test'] } });
    assert.equal(jobIds.length, 1);
    await runPendingJobs(deps);
    assert.deepEqual(await linkedIds(store, fromEu._id), [], 'the subdomain is blocked now');
    assert.deepEqual(await linkedIds(store, fromHq._id), [object.id]);
  });

  it('turning linkBulk on links existing newsletters; turning it off removes them again', async () => {
    const letter = await insertMessage(store, { ownerId: bob._id, from: 'news@paper.test', to: ['bob@acme.test'], headers: { 'List-Id': '<x.paper.test>' } });
    const personal = await insertMessage(store, { ownerId: bob._id, from: 'editor@paper.test', to: ['bob@acme.test'] });
    const { object } = await createObject(deps, { type: 'customer', name: 'Paper', domains: ['paper.test'] });
    await runPendingJobs(deps);
    assert.deepEqual(await linkedIds(store, letter._id), []);
    assert.deepEqual(await linkedIds(store, personal._id), [object.id]);
    await updateObject(deps, object.id, { rules: { linkBulk: true } });
    await runPendingJobs(deps);
    assert.deepEqual(await linkedIds(store, letter._id), [object.id]);
    await updateObject(deps, object.id, { rules: { linkBulk: false } });
    await runPendingJobs(deps);
    assert.deepEqual(await linkedIds(store, letter._id), []);
    assert.deepEqual(await linkedIds(store, personal._id), [object.id]);
  });

  it('deleting an object removes its links and its id from messages', async () => {
    const { object } = await createObject(deps, { type: 'lead', name: 'Gone', emails: ['gone@away.test'] });
    const message = await insertMessage(store, { ownerId: bob._id, from: 'gone@away.test', to: ['bob@acme.test'] });
    await linkMessage(deps, message);
    assert.deepEqual(await linkedIds(store, message._id), [object.id]);
    await deleteObject(deps, object.id);
    assert.deepEqual(await linkedIds(store, message._id), []);
    assert.equal(await store.models.Link.countDocuments({ objectId: new mongoose.Types.ObjectId(object.id) }), 0);
  });

  it('a deletion cut short by a store failure leaves the object in place, and deleting again finishes it', async () => {
    const { object } = await createObject(deps, { type: 'lead', name: 'Half Gone', emails: ['half@away.test'] });
    const message = await insertMessage(store, { ownerId: bob._id, from: 'half@away.test', to: ['bob@acme.test'] });
    await linkMessage(deps, message);
    // Fault injection: the store fails while the messages are being updated.
    const { Message } = store.models;
    const updateMany = Message.updateMany;
    Message.updateMany = (() => { throw new Error('store unavailable'); }) as never;
    try {
      await assert.rejects(deleteObject(deps, object.id), /store unavailable/);
    } finally {
      Message.updateMany = updateMany;
    }
    assert.ok(await store.models.CrmObject.exists({ _id: object.id }), 'still there, so the admin can delete it again');
    await deleteObject(deps, object.id);
    assert.equal(await store.models.CrmObject.exists({ _id: object.id }), null);
    assert.deepEqual(await linkedIds(store, message._id), []);
    assert.equal(await store.models.Link.countDocuments({ objectId: new mongoose.Types.ObjectId(object.id) }), 0);
  });

  it('a job interrupted mid-way resumes from its cursor after the lease expires', async () => {
    const { object } = await createObject(deps, { type: 'contact', name: 'Fay', emails: ['fay@resume.test'] });
    await runPendingJobs(deps); // nothing to link yet
    const messages = [];
    for (let i = 0; i < 5; i++) messages.push(await insertMessage(store, { ownerId: bob._id, from: 'fay@resume.test', to: ['bob@acme.test'] }));
    messages.sort((a, b) => a._id.toString().localeCompare(b._id.toString()));
    // A worker died after handling the first two messages: running, cursor set, lease expired.
    const job = await store.models.BackfillJob.create({
      kind: 'backfill', objectId: new mongoose.Types.ObjectId(object.id), emails: ['fay@resume.test'], status: 'running',
      total: 5, processed: 2, cursor: messages[1]._id, lockedUntil: new Date(Date.now() - 1000), createdAt: new Date(),
    });
    assert.equal(await runPendingJobs(deps), 1);
    const done = await store.models.BackfillJob.findById(job._id).lean();
    assert.equal(done!.status, 'done');
    assert.equal(done!.processed, 5);
    assert.equal(done!.linked, 3);
    assert.deepEqual(await linkedIds(store, messages[0]._id), [], 'before the cursor: left alone');
    assert.deepEqual(await linkedIds(store, messages[4]._id), [object.id]);
  });

  it('a job that hits a store failure is retried later from its cursor, and given up after 5 attempts', async () => {
    // Fault injection: the store refuses to count messages.
    const failing = new Proxy(store.models.Message, {
      get(target, property, receiver) {
        if (property === 'countDocuments') return () => Promise.reject(new Error('store unavailable'));
        return Reflect.get(target, property, receiver);
      },
    });
    const broken = { store: { ...store, models: { ...store.models, Message: failing } }, log: testLog } as CrmDeps;
    const expireLease = (id: mongoose.Types.ObjectId) => store.models.BackfillJob.updateOne({ _id: id }, { $set: { lockedUntil: new Date(0) } });

    const retried = await createJob(store, { kind: 'relink' });
    assert.equal(await runPendingJobs(broken), 1);
    let job = (await store.models.BackfillJob.findById(retried).lean())!;
    assert.equal(job.status, 'pending');
    assert.equal(job.attempts, 1);
    assert.equal(job.error, 'store unavailable');
    assert.ok(job.lockedUntil > new Date(), 'not retried at once');
    assert.equal(await runPendingJobs(deps), 0);
    await expireLease(retried);
    assert.equal(await runPendingJobs(deps), 1);
    assert.equal((await store.models.BackfillJob.findById(retried).lean())!.status, 'done');

    const doomed = await createJob(store, { kind: 'relink' });
    for (let i = 0; i < 5; i++) {
      await expireLease(doomed);
      await runPendingJobs(broken);
    }
    job = (await store.models.BackfillJob.findById(doomed).lean())!;
    assert.equal(job.status, 'failed');
    assert.equal(job.attempts, 5);
  });

  it('runs a queued job once when several workers look at once (FerretDB runs findAndModify as a read, then a write)', async () => {
    // Two admin processes on one embedded store each run a CRM worker.
    for (let round = 0; round < 10; round++) {
      await createJob(store, { kind: 'backfill', emails: [`race${round}@race.test`] });
      const ran = await Promise.all([1, 2, 3, 4].map(() => runPendingJobs(deps)));
      assert.equal(ran.reduce((a, b) => a + b, 0), 1, `round ${round}: the job ran ${ran.join('+')} times`);
    }
  });

  it('a relink job (after a CSV import) does not rewrite the mail it links nothing new to', async () => {
    const unrelated = await insertMessage(store, { ownerId: bob._id, from: 'nobody@quiet.test', to: ['bob@acme.test'] });
    const known = await insertMessage(store, { ownerId: bob._id, from: 'kim@quiet-known.test', to: ['bob@acme.test'] });
    const { object } = await createObject(deps, { type: 'contact', name: 'Kim', emails: ['kim@quiet-known.test'] });
    await runPendingJobs(deps);
    await linkMessage(deps, unrelated);
    const marks = async () => (await store.models.Message.find({ _id: { $in: [unrelated._id, known._id] } }, { linkedAt: 1 }).sort({ _id: 1 }).lean()).map((m) => m.linkedAt?.getTime());
    const before = await marks();
    assert.ok(before.every(Boolean));
    await new Promise((resolve) => setTimeout(resolve, 5));
    await createJob(store, { kind: 'relink' });
    await runPendingJobs(deps);
    assert.deepEqual(await marks(), before, 'nothing changed, nothing written');
    assert.deepEqual(await linkedIds(store, known._id), [object.id]);
    // A message that gains a link is still written.
    const lee = await createObject(deps, { type: 'lead', name: 'Lee', emails: ['nobody@quiet.test'] });
    await store.models.BackfillJob.updateMany({ status: 'pending' }, { $set: { status: 'done' } });
    await createJob(store, { kind: 'relink' });
    await runPendingJobs(deps);
    assert.deepEqual(await linkedIds(store, unrelated._id), [lee.object.id]);
  });

  it('the sweep links inbox mail whose association never ran (crash after storing)', async () => {
    const { object } = await createObject(deps, { type: 'contact', name: 'Gil', emails: ['gil@sweep.test'] });
    await runPendingJobs(deps);
    const old = await insertMessage(store, { ownerId: bob._id, from: 'gil@sweep.test', to: ['bob@acme.test'], createdAt: new Date(Date.now() - 5 * 60_000) });
    const fresh = await insertMessage(store, { ownerId: bob._id, from: 'gil@sweep.test', to: ['bob@acme.test'] });
    const result = await sweep(deps, { olderThanMs: 60_000 });
    assert.ok(result.messages >= 1);
    assert.deepEqual(await linkedIds(store, old._id), [object.id]);
    assert.deepEqual(await linkedIds(store, fresh._id), [], 'fresh mail is left to ingest');
  });

  it('the worker sweeps at start and then every sweepIntervalMs, not at every job pass (a scan on FerretDB)', async () => {
    const { object } = await createObject(deps, { type: 'contact', name: 'Ivy', emails: ['ivy@sweep.test'] });
    await runPendingJobs(deps);
    const fiveMinutesAgo = new Date(Date.now() - 5 * 60_000);
    const seldom = startCrmWorker(deps, { intervalMs: 50, sweepAfterMs: 60_000, sweepIntervalMs: 60_000 });
    try {
      await new Promise((r) => setTimeout(r, 200));
      await seldom.idle(); // the first pass, with its sweep, is over
      const missed = await insertMessage(store, { ownerId: bob._id, from: 'ivy@sweep.test', to: ['bob@acme.test'], createdAt: fiveMinutesAgo });
      await new Promise((r) => setTimeout(r, 600)); // a dozen job passes
      assert.deepEqual(await linkedIds(store, missed._id), [], 'no sweep before the interval is up');
    } finally {
      await seldom.stop();
    }
    const often = startCrmWorker(deps, { intervalMs: 50, sweepAfterMs: 60_000, sweepIntervalMs: 200 });
    try {
      const message = await insertMessage(store, { ownerId: bob._id, from: 'ivy@sweep.test', to: ['bob@acme.test'], createdAt: fiveMinutesAgo });
      const deadline = Date.now() + 10_000;
      while ((await linkedIds(store, message._id)).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(await linkedIds(store, message._id), [object.id], 'swept once the interval is up');
    } finally {
      await often.stop();
    }
  });

  it('the worker loop runs queued jobs by itself', async () => {
    const worker = startCrmWorker(deps, { intervalMs: 50 });
    try {
      const message = await insertMessage(store, { ownerId: bob._id, from: 'hal@loop.test', to: ['bob@acme.test'] });
      const { object, jobIds } = await createObject({ ...deps, onJobsQueued: () => worker.kick() }, { type: 'contact', name: 'Hal', emails: ['hal@loop.test'] });
      const deadline = Date.now() + 10_000;
      while ((await store.models.BackfillJob.findById(jobIds[0]).lean())!.status !== 'done' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(await linkedIds(store, message._id), [object.id]);
    } finally {
      await worker.stop();
    }
  });
});
