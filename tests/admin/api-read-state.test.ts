import { strict as assert } from 'node:assert';
import request from 'supertest';
import { createApiToken, type PublicUser } from '../../gateway/accounts';
import { openTestStore } from '../support/store';
import { buildApp, makeAccount, makeUser, storeMessage, type TestApp, type TestStore } from './fixtures';

/**
 * Read state in the JSON API: messages carry `read`, a GET never changes it (a script exporting mail must
 * not read it for its owner), POST /messages/{id}/read and /unread set it, and a read-only token is refused
 * with the API's usual 403 TOKEN_READ_ONLY. (Every answer is checked against admin/openapi.json in
 * openapi-responses.test.ts.)
 */
describe('admin: read state in /api/v1', () => {
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;
  let bobAccount: { id: string };
  const api = (token: string) => ({
    get: (path: string) => request(testApp.app).get(`/api/v1${path}`).set('Authorization', `Bearer ${token}`),
    post: (path: string) => request(testApp.app).post(`/api/v1${path}`).set('Authorization', `Bearer ${token}`),
  });
  const docOf = (id: string) => store.models.Message.findById(id).lean();

  before(async () => {
    store = await openTestStore('admin_api_read_state');
    testApp = buildApp(store);
    bob = await makeUser(store, 'bob@acme.test');
    await makeUser(store, 'eve@acme.test');
    await makeUser(store, 'admin@acme.test', 'admin');
    bobAccount = await makeAccount(store, bob, 'bob@acme.test');
  });
  after(async () => store?.drop());

  it('GET never marks read; POST /read and /unread do; read-only tokens get TOKEN_READ_ONLY; an admin token may set it', async () => {
    const { id } = await storeMessage(store, { subject: 'Invoice' }, { ownerId: bob.id, accountId: bobAccount.id });
    const full = (await createApiToken(store, 'bob@acme.test', { name: 'full' }, {})).token;
    const readOnly = (await createApiToken(store, 'bob@acme.test', { name: 'export', access: 'read' }, {})).token;
    const adminToken = (await createApiToken(store, 'admin@acme.test', { name: 'admin' }, {})).token;
    assert.equal((await api(full).get(`/messages/${id}`).expect(200)).body.read, false);
    assert.equal((await api(readOnly).get(`/messages/${id}`).expect(200)).body.read, false);
    assert.equal((await docOf(id))?.unread, true, 'reading through the API is not opening it');
    for (const action of ['read', 'unread']) {
      const refused = await api(readOnly).post(`/messages/${id}/${action}`).expect(403);
      assert.equal(refused.body.error.code, 'TOKEN_READ_ONLY');
    }
    assert.deepEqual((await api(full).post(`/messages/${id}/read`).expect(200)).body, { id, read: true });
    assert.deepEqual((await api(full).post(`/messages/${id}/read`).expect(200)).body, { id, read: true }, 'twice is harmless');
    assert.equal((await api(full).get('/messages').expect(200)).body.messages[0].read, true);
    assert.deepEqual((await api(adminToken).post(`/messages/${id}/unread`).expect(200)).body, { id, read: false });
    assert.equal((await docOf(id))?.unread, true);
    await api(full).post('/messages/0123456789abcdef01234567/read').expect(404);
    const eveToken = (await createApiToken(store, 'eve@acme.test', { name: 'eve' }, {})).token;
    await api(eveToken).post(`/messages/${id}/read`).expect(404);
    assert.equal((await docOf(id))?.unread, true);
    await store.models.Message.deleteMany({});
  });

  it('lists with unread=true|false, and mail stored before read state as read', async () => {
    const fresh = (await storeMessage(store, { subject: 'Fresh' }, { ownerId: bob.id, accountId: bobAccount.id })).id;
    const old = (await storeMessage(store, { subject: 'Old' }, { ownerId: bob.id, accountId: bobAccount.id })).id;
    await store.models.Message.collection.updateOne({ _id: (await docOf(old))!._id }, { $unset: { unread: '' } });
    const token = (await createApiToken(store, 'bob@acme.test', { name: 'list' }, {})).token;
    const ids = async (query: string) => (await api(token).get(`/messages${query}`).expect(200)).body.messages.map((m: { id: string; read: boolean }) => [m.id, m.read]);
    assert.deepEqual(await ids('?unread=true'), [[fresh, false]]);
    assert.deepEqual(await ids('?unread=false'), [[old, true]]);
    assert.equal((await api(token).get(`/messages/${old}`).expect(200)).body.read, true);
    assert.deepEqual((await api(token).get('/messages?unread=1').expect(400)).body.error.fields, { unread: 'must be true or false' });
  });
});
