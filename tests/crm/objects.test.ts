import { strict as assert } from 'node:assert';
import type { CrmDeps } from '../../gateway/crm/link';
import { createObject, getObject, searchObjects, updateObject, upsertObjectByExternalId } from '../../gateway/crm/objects';
import { AppError } from '../../gateway/core/errors';
import { openTestStore } from '../support/store';
import { makeUser, testLog } from './support';

describe('crm/objects: the object service (real store)', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let deps: CrmDeps;

  before(async () => {
    store = await openTestStore('crm_objects');
    deps = { store, log: testLog };
    await store.models.BusinessSettings.create({ _id: 'business', domains: ['acme.test'], freemailDomains: ['isp-mail.test'] });
    await makeUser(store, 'bob@acme.test');
  });
  after(async () => store.drop());

  const rejectsWith = async (promise: Promise<unknown>, code: string, fields: string[]) => {
    await assert.rejects(promise, (err: unknown) => {
      assert.ok(err instanceof AppError, String(err));
      assert.equal(err.code, code);
      assert.deepEqual(Object.keys(err.fields ?? {}).sort(), fields.sort());
      return true;
    });
  };

  it('normalises addresses and domains on create', async () => {
    const { object } = await createObject(deps, { type: 'customer', name: '  Müller   AG ', emails: 'Sales@Müller.test; billing+inv@müller.test', domains: ['MÜLLER.test', 'mueller.test'] });
    assert.equal(object.name, 'Müller AG');
    assert.deepEqual(object.emails, ['sales@xn--mller-kva.test', 'billing@xn--mller-kva.test']);
    assert.deepEqual(object.domains, ['xn--mller-kva.test', 'mueller.test']);
    assert.match(object.externalId, /^local:[0-9a-f]{24}$/);
  });

  it('names the other records that hold an address a change adds', async () => {
    const first = await createObject(deps, { type: 'contact', name: 'Shared Box', emails: ['info@shared.test'] });
    assert.deepEqual(first.sharedAddresses, []);
    const second = await createObject(deps, { type: 'customer', name: 'Shared Inc', emails: ['INFO@shared.test', 'sales@shared.test'] });
    assert.deepEqual(second.sharedAddresses, [{ id: first.object.id, type: 'contact', name: 'Shared Box', emails: ['info@shared.test'] }]);
    assert.deepEqual((await updateObject(deps, first.object.id, { name: 'Shared Mailbox' })).sharedAddresses, [], 'only added addresses are checked');
    assert.deepEqual((await updateObject(deps, first.object.id, { emails: ['info@shared.test', 'sales@shared.test'] })).sharedAddresses.map((o) => [o.name, o.emails]), [['Shared Inc', ['sales@shared.test']]]);
  });

  it('reads addresses pasted from a mail client ("Name <address>"), and names what is not an address', async () => {
    const { object } = await createObject(deps, { type: 'contact', name: 'Pasted', emails: 'Jane Roe <Jane@Pasted.test>, "Roe, Bob" <bob@pasted.test>\nann@pasted.test other@pasted.test' });
    assert.deepEqual(object.emails, ['jane@pasted.test', 'bob@pasted.test', 'ann@pasted.test', 'other@pasted.test']);
    assert.deepEqual((await createObject(deps, { type: 'lead', name: 'Listed', emails: ['Ann <ann@listed.test>', 'b@listed.test'] })).object.emails, ['ann@listed.test', 'b@listed.test']);
    await assert.rejects(createObject(deps, { type: 'contact', name: 'X', emails: 'Jane <jane@pasted.test> bob@pasted.test' }), (err: AppError) =>
      err.code === 'VALIDATION_FAILED' && err.fields?.emails === '"Jane bob@pasted.test" is not an email address (example: jane@customer.com)');
  });

  it('answers bad input with field errors', async () => {
    await rejectsWith(createObject(deps, { type: 'vendor', name: '' }), 'VALIDATION_FAILED', ['type', 'name']);
    await rejectsWith(createObject(deps, { type: 'contact', name: 'X', emails: ['ok@x.test', 'not-an-address'] }), 'VALIDATION_FAILED', ['emails']);
    await rejectsWith(createObject(deps, { type: 'contact', name: 'X', domains: ['x.test'] }), 'VALIDATION_FAILED', ['domains']);
    await rejectsWith(createObject(deps, { type: 'customer', name: 'X', domains: ['gmail.com'] }), 'VALIDATION_FAILED', ['domains']);
    await rejectsWith(createObject(deps, { type: 'customer', name: 'X', domains: ['isp-mail.test'] }), 'VALIDATION_FAILED', ['domains']);
    await rejectsWith(createObject(deps, { type: 'customer', name: 'X', domains: ['acme.test'] }), 'VALIDATION_FAILED', ['domains']);
    // A subdomain of a business domain is never matched by domain either: refused rather than saved to do nothing.
    await assert.rejects(createObject(deps, { type: 'customer', name: 'X', domains: ['eu.acme.test'] }), (err: AppError) => /business domains \(or under one\)/.test(err.fields?.domains ?? ''));
    // A public suffix would link every company registered under it.
    for (const suffix of ['co.uk', 'COM.AU', 'github.io']) {
      await assert.rejects(createObject(deps, { type: 'customer', name: 'X', domains: ['x.test', suffix] }), (err: AppError) =>
        err.code === 'VALIDATION_FAILED' && /is a public suffix/.test(err.fields?.domains ?? '') && err.fields!.domains.includes(suffix.toLowerCase()));
    }
    assert.deepEqual((await createObject(deps, { type: 'customer', name: 'Initrode UK', domains: ['initrode.co.uk'] })).object.domains, ['initrode.co.uk']);
    await rejectsWith(createObject(deps, { type: 'contact', name: 'X', customerId: '0123456789abcdef01234567' }), 'VALIDATION_FAILED', ['customerId']);
    await rejectsWith(createObject(deps, { type: 'lead', name: 'X', externalId: 'local:abc' }), 'VALIDATION_FAILED', ['externalId']);
    await createObject(deps, { type: 'lead', name: 'Dup', externalId: 'crm-1' });
    await rejectsWith(createObject(deps, { type: 'lead', name: 'Dup 2', externalId: 'crm-1' }), 'EXTERNAL_ID_TAKEN', ['externalId']);
    await rejectsWith(updateObject(deps, '0123456789abcdef01234567', { name: 'x' }), 'NOT_FOUND', []);
  });

  it('links contacts to customers and drops fields a type change does not allow', async () => {
    const { object: customer } = await createObject(deps, { type: 'customer', name: 'Parent Co', domains: ['parent.test'] });
    const { object: contact } = await createObject(deps, { type: 'contact', name: 'Child', customerId: customer.id });
    assert.equal(contact.customerId, customer.id);
    const { object: lead } = await updateObject(deps, contact.id, { type: 'lead', company: 'Parent Co' });
    assert.equal(lead.customerId, null);
    const { object: sibling } = await createObject(deps, { type: 'contact', name: 'Sibling', customerId: customer.id });
    const { object: demoted } = await updateObject(deps, customer.id, { type: 'lead' });
    assert.deepEqual(demoted.domains, []);
    assert.equal((await getObject(store, sibling.id)).customerId, null, 'a contact does not stay "at" a lead');
  });

  it('searches by name words, email and domain (prefixes, any case, IDN) without $text', async () => {
    await createObject(deps, { type: 'customer', name: 'The Initech Corporation', domains: ['initech.test'] });
    await createObject(deps, { type: 'contact', name: 'Peter Gibbons', emails: ['peter.gibbons@initech.test'] });
    await createObject(deps, { type: 'contact', name: 'Zoë Bücher', emails: ['zoe@bücher.test'] });
    const names = async (q: string, type?: string) => (await searchObjects(store, { q, type })).objects.map((o) => o.name).sort();
    assert.deepEqual(await names('initech'), ['Peter Gibbons', 'The Initech Corporation']);
    assert.deepEqual(await names('initech', 'customer'), ['The Initech Corporation']);
    assert.deepEqual(await names('CORP'), ['The Initech Corporation']);
    assert.deepEqual(await names('gibb'), ['Peter Gibbons']);
    assert.deepEqual(await names('Peter.Gibbons@Initech.test'), ['Peter Gibbons']);
    assert.deepEqual(await names('peter initech'), ['Peter Gibbons']);
    assert.deepEqual(await names('zoe@bücher.test'), ['Zoë Bücher']);
    assert.deepEqual(await names('bücher'), ['Zoë Bücher']);
    assert.deepEqual(await names('@initech.test'), ['Peter Gibbons', 'The Initech Corporation'], 'everyone at a domain');
    assert.deepEqual(await names('@Bücher.test'), ['Zoë Bücher']);
    assert.deepEqual(await names('a.b(c'), [], 'regex characters are escaped');
    const all = await searchObjects(store, { limit: 2 });
    assert.equal(all.objects.length, 2);
    assert.equal(all.more, true);
  });

  it('upserts by external id idempotently', async () => {
    const first = await upsertObjectByExternalId(deps, 'contact', 'hubspot-42', { name: 'Quinn', emails: ['quinn@q.test'] });
    assert.equal(first.created, true);
    assert.equal(first.jobIds.length, 1, 'a new address queues a backfill');
    const second = await upsertObjectByExternalId(deps, 'contact', 'hubspot-42', { name: 'Quinn', emails: ['quinn@q.test'] });
    assert.equal(second.created, false);
    assert.equal(second.object.id, first.object.id);
    assert.deepEqual(second.jobIds, [], 'nothing changed: no job');
    const third = await upsertObjectByExternalId(deps, 'contact', 'hubspot-42', { name: 'Quinn Q', emails: ['quinn@q.test', 'qq@q.test'] });
    assert.equal(third.object.name, 'Quinn Q');
    assert.equal(third.jobIds.length, 1);
    assert.equal(await store.models.CrmObject.countDocuments({ externalId: 'hubspot-42' }), 1);
    // Concurrent upserts of the same record converge on one document.
    const results = await Promise.all([1, 2, 3].map(() => upsertObjectByExternalId(deps, 'lead', 'race-1', { name: 'Racer' })));
    assert.equal(new Set(results.map((r) => r.object.id)).size, 1);
    assert.equal(await store.models.CrmObject.countDocuments({ externalId: 'race-1' }), 1);
    assert.equal((await getObject(store, first.object.id)).emails.length, 2);
  });
});
