/**
 * Two people edit the same CRM record at once (two admins, or an employee
 * and an admin): each opened the edit form, each saves. A Save writes what
 * its user changed, not the stale rest of the form: one adding an address
 * while the other fixes the name keeps both changes; both changing the same
 * field is said, not silently decided by who saved last.
 */
import { strict as assert } from 'node:assert';
import request from 'supertest';
import { createApiToken } from '../../gateway/accounts';
import { buildApp, makeUser, signIn, type SignedIn, type TestApp, type TestStore } from '../admin/fixtures';
import { openTestStore } from '../support/store';
import { formFields } from './forms';

describe('two people editing one CRM record at once', function () {
  this.timeout(60_000);
  let store: TestStore;
  let testApp: TestApp;
  let ann: SignedIn;
  let ben: SignedIn;

  before(async () => {
    store = await openTestStore('race_crm_edit');
    testApp = buildApp(store);
    await makeUser(store, 'ann@acme.test', 'admin');
    await makeUser(store, 'ben@acme.test', 'admin');
    ann = await signIn(testApp.app, 'ann@acme.test');
    ben = await signIn(testApp.app, 'ben@acme.test');
  });
  after(async () => store.drop());

  async function newContact(name: string, email: string): Promise<string> {
    const created = await ann.agent.post('/objects').type('form').send({ _csrf: ann.csrf, type: 'contact', name, emails: email }).expect(303);
    return created.headers.location.split('/').pop()!;
  }
  const openForm = async (who: SignedIn, id: string) => formFields((await who.agent.get(`/objects/${id}/edit`).expect(200)).text, 'object-form');
  const stored = (id: string) => store.models.CrmObject.findById(id).lean();

  it('keeps an address one added while the other fixed the name', async () => {
    const id = await newContact('Jane Roe', 'jane@roe-customer.test');
    const annForm = await openForm(ann, id);
    const benForm = await openForm(ben, id);

    await ann.agent.post(`/objects/${id}`).type('form').send({ ...annForm, emails: `${annForm.emails}\r\njane.roe@roe-customer.test` }).expect(303);
    await ben.agent.post(`/objects/${id}`).type('form').send({ ...benForm, name: 'Jane Doe-Roe' }).expect(303);

    const row = await stored(id);
    assert.equal(row?.name, 'Jane Doe-Roe');
    assert.deepEqual(row?.emails, ['jane@roe-customer.test', 'jane.roe@roe-customer.test'], 'Ann\'s address is still there');
    const search = await ann.agent.get('/objects?q=doe').expect(200);
    assert.match(search.text, /Jane Doe-Roe/, 'found by the new name');
  });

  it('says so when both changed the same field, keeps the first, and saves the second when sent again', async () => {
    const id = await newContact('Max Muster', 'max@muster-customer.test');
    const annForm = await openForm(ann, id);
    const benForm = await openForm(ben, id);

    await ann.agent.post(`/objects/${id}`).type('form').send({ ...annForm, name: 'Max Mustermann' }).expect(303);
    const clash = await ben.agent.post(`/objects/${id}`).type('form').send({ ...benForm, name: 'Maximilian Muster' }).expect(409);
    assert.match(clash.text, /Someone else saved this record after you opened this form/);
    assert.match(clash.text, /was changed by someone else after you opened this form, to: Max Mustermann/);
    assert.equal((await stored(id))?.name, 'Max Mustermann', 'the first save stands');

    const again = formFields(clash.text, 'object-form');
    assert.equal(again.name, 'Maximilian Muster', 'the form keeps what Ben typed');
    await ben.agent.post(`/objects/${id}`).type('form').send(again).expect(303);
    assert.equal((await stored(id))?.name, 'Maximilian Muster');
  });

  it('API: a new name and a new address sent at the same moment are both saved, and the record is found by both', async () => {
    const id = await newContact('Olga Old', 'olga@old-customer.test');
    const token = (await createApiToken(store, 'ann@acme.test', { name: 'crm sync' }, {})).token;
    const patch = (body: object) => request(testApp.app).patch(`/api/v1/objects/${id}`).set('Authorization', `Bearer ${token}`).send(body);

    // Fault injection: the first change's write waits a moment, so the second arrives while it is under way.
    const collection = store.models.CrmObject.collection;
    const findOneAndUpdate = collection.findOneAndUpdate.bind(collection);
    let writes = 0;
    collection.findOneAndUpdate = (async (...args: Parameters<typeof findOneAndUpdate>) => {
      if (++writes === 1) await new Promise((resolve) => setTimeout(resolve, 300));
      return findOneAndUpdate(...args);
    }) as typeof collection.findOneAndUpdate;
    try {
      const rename = patch({ name: 'Olga Newname' });
      await new Promise((resolve) => setTimeout(resolve, 50));
      const [renamed, readdressed] = await Promise.all([rename, patch({ emails: ['olga@old-customer.test', 'olga@new-customer.test'] })]);
      assert.equal(renamed.status, 200, renamed.text);
      assert.equal(readdressed.status, 200, readdressed.text);
    } finally {
      collection.findOneAndUpdate = findOneAndUpdate;
    }
    const row = await stored(id);
    assert.equal(row?.name, 'Olga Newname');
    assert.deepEqual(row?.emails, ['olga@old-customer.test', 'olga@new-customer.test']);
    for (const q of ['newname', 'olga@new-customer.test']) {
      const found = await request(testApp.app).get(`/api/v1/objects?q=${encodeURIComponent(q)}`).set('Authorization', `Bearer ${token}`).expect(200);
      assert.deepEqual(found.body.objects.map((o: { id: string }) => o.id), [id], `found by ${q}`);
    }
  });
});
