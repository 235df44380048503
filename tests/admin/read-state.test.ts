import { strict as assert } from 'node:assert';
import { Types } from 'mongoose';
import { cachedUnreadCount, createMailAccount, forgetUnreadCounts, listMessages, setReadState, unreadCount, type PublicUser } from '../../gateway/accounts';
import { createLogger } from '../../gateway/core/log';
import { ingest } from '../../gateway/mail/ingest';
import { openTestStore } from '../support/store';
import { buildApp, buildRaw, GATEWAY_DOMAIN, makeAccount, makeUser, signIn, storeMessage, type TestApp, type TestStore } from './fixtures';

/**
 * Read state, as a user of a mail program expects it: new mail is unread (bold, "Unread:" for screen
 * readers, counted) until its owner opens it; an admin looking does not read it for them; "Mark as unread"
 * brings it back; a mail in two of the owner's mailboxes is one entry with one state; mail stored before
 * read state existed is read.
 */
describe('admin: read and unread mail', () => {
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;
  let eve: PublicUser;
  let bobAccount: { id: string };
  const docOf = (id: string) => store.models.Message.findById(id).lean();
  /** The inbox rows of a page: id → whether it is shown unread (bold class and the screen-reader marker together). */
  function rows(html: string): Map<string, boolean> {
    const shown = new Map<string, boolean>();
    for (const match of html.matchAll(/<a class="msg-row([^"]*)" href="\/messages\/([0-9a-f]{24})">([\s\S]*?)<\/a>/g)) {
      const bold = /\bunread\b/.test(match[1]);
      assert.equal(/<span class="sr-only">Unread: <\/span>/.test(match[3]), bold, 'the text marker goes with the bold row');
      shown.set(match[2], bold);
    }
    return shown;
  }
  const countOf = (html: string) => Number(/id="unread-count">(\d+) unread</.exec(html)?.[1] ?? NaN);

  before(async () => {
    store = await openTestStore('admin_read_state');
    testApp = buildApp(store);
    bob = await makeUser(store, 'bob@acme.test');
    eve = await makeUser(store, 'eve@acme.test');
    await makeUser(store, 'admin@acme.test', 'admin');
    bobAccount = await makeAccount(store, bob, 'bob@acme.test');
  });
  after(async () => store?.drop());
  // Each test starts with no mail; the counts the console reuses (cachedUnreadCount) go with it.
  afterEach(async () => {
    const owners = await store.models.Message.distinct('ownerId');
    await store.models.Message.deleteMany({});
    forgetUnreadCounts(store, owners as Types.ObjectId[]);
  });

  it('new mail is unread until its owner opens it; an admin opening it changes nothing; Mark as unread brings it back', async () => {
    const { id } = await storeMessage(store, { subject: 'Renewal quote' }, { ownerId: bob.id, accountId: bobAccount.id });
    const bobSession = await signIn(testApp.app, 'bob@acme.test');
    const adminSession = await signIn(testApp.app, 'admin@acme.test');

    let inbox = await bobSession.agent.get('/').expect(200);
    assert.equal(rows(inbox.text).get(id), true, 'shown unread');
    assert.equal(countOf(inbox.text), 1);

    // The admin reads Bob's mail: still unread for Bob, and the page says whose state it is.
    const adminView = await adminSession.agent.get(`/messages/${id}`).expect(200);
    assert.match(adminView.text, /id="owner-read-state">unread by its owner</);
    assert.equal((await docOf(id))?.unread, true);
    const adminInbox = await adminSession.agent.get('/').expect(200);
    assert.equal(rows(adminInbox.text).get(id), false, 'not bold for the admin: it is not the admin\'s unread mail');
    assert.match(adminInbox.text, /unread by its owner/);
    assert.equal(countOf(adminInbox.text), 0, 'the admin\'s count is of their own mail');

    // Bob opens it: read, and the inbox says so.
    const opened = await bobSession.agent.get(`/messages/${id}`).expect(200);
    assert.match(opened.text, /id="mark-unread">Mark as unread</);
    assert.equal((await docOf(id))?.unread, false);
    inbox = await bobSession.agent.get('/').expect(200);
    assert.equal(rows(inbox.text).get(id), false);
    assert.equal(countOf(inbox.text), 0);

    // Mark as unread: back to the list (opening it again would read it), bold again.
    const marked = await bobSession.agent.post(`/messages/${id}/unread`).type('form').send({ _csrf: bobSession.csrf, back: '/?q=Renewal' }).expect(303);
    assert.equal(marked.headers.location, '/?q=Renewal');
    inbox = await bobSession.agent.get('/').expect(200);
    assert.equal(rows(inbox.text).get(id), true);
    assert.equal(countOf(inbox.text), 1);
    // Without the CSRF token the form does nothing.
    await bobSession.agent.post(`/messages/${id}/read`).type('form').send({}).expect(403);
    assert.equal((await docOf(id))?.unread, true);
    // Eve cannot touch Bob's mail.
    const eveSession = await signIn(testApp.app, 'eve@acme.test');
    await eveSession.agent.post(`/messages/${id}/read`).type('form').send({ _csrf: eveSession.csrf }).expect(404);
    assert.equal((await docOf(id))?.unread, true);
  });

  it('"Unread only", the count and "Mark … shown as read" in the console', async () => {
    const session = await signIn(testApp.app, 'bob@acme.test');
    const base = Date.parse('2026-04-01T08:00:00Z');
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await storeMessage(store, { subject: `Order ${i}` }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base + i * 60_000) })).id);
    await session.agent.get(`/messages/${ids[1]}`).expect(200);
    const unreadOnly = await session.agent.get('/?unread=true').expect(200);
    assert.deepEqual([...rows(unreadOnly.text).keys()], [ids[2], ids[0]]);
    assert.match(unreadOnly.text, /id="unread" name="unread" value="true" checked/);
    assert.equal(countOf(unreadOnly.text), 2);
    assert.equal((await session.agent.get('/?unread=maybe').expect(400)).text.includes('Unread only must be true or false'), true);

    // The button marks exactly the entries the page showed: mail arriving meanwhile stays unread.
    const form = /<form class="inset mark-read" id="mark-shown-read"[\s\S]*?<\/form>/.exec(unreadOnly.text)?.[0] ?? '';
    assert.match(form, /Mark the 2 unread messages shown as read/);
    const formIds = [...form.matchAll(/name="id" value="([0-9a-f]{24})"/g)].map((m) => m[1]);
    const late = (await storeMessage(store, { subject: 'Late' }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base + 10 * 60_000) })).id;
    const res = await session.agent.post('/messages/mark-read').type('form')
      .send(`_csrf=${encodeURIComponent(session.csrf)}&back=${encodeURIComponent('/?unread=true')}&${formIds.map((id) => `id=${id}`).join('&')}`).expect(303);
    assert.equal(res.headers.location, '/?unread=true');
    const after = await session.agent.get('/?unread=true').expect(200);
    assert.match(after.text, /Marked 2 messages as read/);
    assert.deepEqual([...rows(after.text).keys()], [late]);
    assert.equal(countOf(after.text), 1);
  });

  it('counts again only when the count can have changed: not on every reload (FerretDB reads the collection for it)', async () => {
    const session = await signIn(testApp.app, 'bob@acme.test');
    await storeMessage(store, { subject: 'First' }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(Date.now() - 60_000) });
    const counts: string[] = [];
    store.conn.set('debug', (collection: string, method: string, pipeline: unknown) => {
      if (collection === 'messages' && method === 'aggregate' && JSON.stringify(pipeline).includes('"unread":true')) counts.push(method);
    });
    try {
      assert.equal(countOf((await session.agent.get('/').expect(200)).text), 1);
      assert.equal(countOf((await session.agent.get('/').expect(200)).text), 1);
      assert.equal(counts.length, 1, 'a reload reuses the count');
      // New mail on the page: counted again at once.
      const second = (await storeMessage(store, { subject: 'Second' }, { ownerId: bob.id, accountId: bobAccount.id })).id;
      assert.equal(countOf((await session.agent.get('/').expect(200)).text), 2);
      assert.equal(counts.length, 2);
      // Opened: counted again.
      await session.agent.get(`/messages/${second}`).expect(200);
      assert.equal(countOf((await session.agent.get('/').expect(200)).text), 1);
      assert.equal(counts.length, 3);
    } finally {
      store.conn.set('debug', false);
    }
  });

  it('a count taken while the owner marks mail read is not kept: the next page counts again', async () => {
    const viewer = { id: new Types.ObjectId(bob.id), role: 'employee' };
    const { id } = await storeMessage(store, { subject: 'Marked during the count' }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(Date.now() - 60_000) });
    // Fault injection to widen the window: the store has answered the count (1 unread), and the answer is held
    // until the mail has been marked read in another tab.
    const Message = store.models.Message;
    const aggregate = Message.aggregate.bind(Message);
    let answered!: () => void;
    let letThrough!: () => void;
    const storeAnswered = new Promise<void>((resolve) => (answered = resolve));
    const held = new Promise<void>((resolve) => (letThrough = resolve));
    (Message as unknown as { aggregate: unknown }).aggregate = async (pipeline: never) => {
      const result: unknown = await aggregate(pipeline).exec();
      answered();
      await held;
      return result;
    };
    try {
      const counting = cachedUnreadCount(store, viewer, 'inbox');
      await storeAnswered;
      assert.equal(await setReadState(store, viewer, [id], true), 1);
      letThrough();
      assert.equal(await counting, 1, 'the count taken before the mark');
    } finally {
      (Message as unknown as { aggregate: unknown }).aggregate = aggregate;
    }
    assert.equal(await cachedUnreadCount(store, viewer, 'inbox'), 0, 'the next page counts again instead of showing the old count for a minute');
    // With nothing changing, a count is reused: a change the console did not make waits for the minute.
    await Message.updateOne({ _id: id }, { $set: { unread: true } });
    assert.equal(await cachedUnreadCount(store, viewer, 'inbox'), 0);
    assert.equal(await cachedUnreadCount(store, viewer, 'inbox', { now: Date.now() + 61_000 }), 1);
  });

  it('a mail in two of the owner\'s mailboxes is one entry with one state: opening it reads both copies, Mark as unread un-reads both', async () => {
    const sales = await makeAccount(store, bob, 'sales@acme.test');
    const raw = await buildRaw({ subject: 'To both of you', to: 'bob@acme.test, sales@acme.test' });
    const log = createLogger({ level: 'silent' });
    const copies = [];
    for (const account of [bobAccount.id, sales.id]) {
      const result = await ingest({ store, log }, { raw, mailboxKey: account, accountId: new Types.ObjectId(account), ownerId: new Types.ObjectId(bob.id), source: { kind: 'forward' } });
      copies.push(result.id!.toString());
    }
    const session = await signIn(testApp.app, 'bob@acme.test');
    let inbox = await session.agent.get('/').expect(200);
    assert.equal(rows(inbox.text).size, 1, 'one entry');
    assert.equal(countOf(inbox.text), 1, 'counted once');
    const [listed] = [...rows(inbox.text).keys()];
    await session.agent.get(`/messages/${listed}`).expect(200);
    assert.deepEqual(await Promise.all(copies.map(async (id) => (await docOf(id))?.unread)), [false, false]);
    inbox = await session.agent.get('/').expect(200);
    assert.equal(rows(inbox.text).get(listed), false);

    await session.agent.post(`/messages/${listed}/unread`).type('form').send({ _csrf: session.csrf }).expect(303);
    assert.deepEqual(await Promise.all(copies.map(async (id) => (await docOf(id))?.unread)), [true, true]);
    assert.equal(await unreadCount(store, { id: new Types.ObjectId(bob.id), role: 'employee' }), 1);
    // One copy alone read (it arrived read, say): the entry is still unread while the other is.
    await store.models.Message.updateOne({ _id: copies[0] }, { $set: { unread: false } });
    const viewer = { id: new Types.ObjectId(bob.id), role: 'employee' };
    assert.deepEqual((await listMessages(store, viewer, {})).messages.map((m) => [m.copies, m.read]), [[2, false]]);
    assert.equal((await listMessages(store, viewer, { unread: 'true' })).messages.length, 1);
    assert.equal((await listMessages(store, viewer, { unread: 'false' })).messages.length, 0);
  });

  it('mail stored before read state existed is read; mail sent from Postroom arrives read', async () => {
    const old = (await storeMessage(store, { subject: 'From last year' }, { ownerId: bob.id, accountId: bobAccount.id })).id;
    // As an earlier version wrote it: no `unread` field at all.
    await store.models.Message.collection.updateOne({ _id: new Types.ObjectId(old) }, { $unset: { unread: '' } });
    const sent = (await storeMessage(store, { subject: 'Sent by Bob', from: 'bob@acme.test', to: 'alice@customer.test' }, { ownerId: bob.id, accountId: bobAccount.id, source: 'sent' })).id;
    const viewer = { id: new Types.ObjectId(bob.id), role: 'employee' };
    const listed = (await listMessages(store, viewer, {})).messages;
    assert.deepEqual(listed.map((m) => [m.id, m.read]).sort(), [[old, true], [sent, true]].sort());
    assert.equal((await listMessages(store, viewer, { unread: 'true' })).messages.length, 0);
    assert.equal(await unreadCount(store, viewer), 0);

  });

  it('quarantined mail: unread and counted in Quarantine, read when its owner opens it, and still read once released', async () => {
    const failing = { verdict: 'fail' as const, reason: 'spf fail', results: 'gw.test; spf=fail' };
    const held = (await storeMessage(store, { subject: 'Held one' }, { ownerId: bob.id, accountId: bobAccount.id, status: 'quarantine', quarantineReason: 'authentication failed', auth: failing })).id;
    const session = await signIn(testApp.app, 'bob@acme.test');
    let quarantine = await session.agent.get('/?status=quarantine').expect(200);
    assert.equal(rows(quarantine.text).get(held), true);
    assert.equal(countOf(quarantine.text), 1);
    assert.equal(countOf((await session.agent.get('/').expect(200)).text), 0, 'the inbox count is the inbox\'s');
    await session.agent.get(`/messages/${held}`).expect(200);
    quarantine = await session.agent.get('/?status=quarantine').expect(200);
    assert.equal(rows(quarantine.text).get(held), false);
    assert.equal(countOf(quarantine.text), 0);
    await session.agent.post(`/messages/${held}/release`).type('form').send({ _csrf: session.csrf }).expect(303);
    const inbox = await session.agent.get('/').expect(200);
    assert.equal(rows(inbox.text).get(held), false, 'released as read');
    // Unread again, then released: the inbox counts it.
    const other = (await storeMessage(store, { subject: 'Held two' }, { ownerId: bob.id, accountId: bobAccount.id, status: 'quarantine', quarantineReason: 'authentication failed', auth: failing })).id;
    await session.agent.post(`/messages/${other}/release`).type('form').send({ _csrf: session.csrf }).expect(303);
    assert.equal(countOf((await session.agent.get('/').expect(200)).text), 1);
  });

  it('a new mail account\'s first message is unread for its owner only', async () => {
    const carol = await makeUser(store, 'carol@acme.test');
    const account = await createMailAccount(store, carol.id, 'carol@acme.test', { gatewayDomain: GATEWAY_DOMAIN });
    await storeMessage(store, { subject: 'Welcome' }, { ownerId: carol.id, accountId: account.id });
    assert.equal(await unreadCount(store, { id: new Types.ObjectId(carol.id), role: 'employee' }), 1);
    assert.equal(await unreadCount(store, { id: new Types.ObjectId(bob.id), role: 'employee' }), 0);
    assert.equal(await unreadCount(store, { id: new Types.ObjectId(eve.id), role: 'admin' }), 0);
  });
});
