/**
 * A message page lists the conversation it belongs to (References and
 * In-Reply-To, RFC 5322 §3.6.4), as mail programs thread: the quote, the
 * employee's answer, the customer's reply to that and a colleague's reply to
 * the quote, oldest first, without another customer's unrelated "Re:" of the
 * same subject, and without anything of another employee's mailbox. All of
 * the owner's mailboxes are one: the answer Bcc'd to their dropbox is in it.
 */
import { strict as assert } from 'node:assert';
import request from 'supertest';
import { createApiToken, type PublicUser } from '../../gateway/accounts';
import { CONVERSATION_LIMIT } from '../../gateway/accounts/conversation';
import { buildApp, buildRaw, makeAccount, makeUser, signIn, storeMessage, type TestApp, type TestStore } from './fixtures';
import { openTestStore } from '../support/store';

/** The conversation panel's lines as "from|subject|current", in page order; null without the panel. */
function conversationLines(html: string): string[] | null {
  const panel = /<section class="panel" id="conversation"[\s\S]*?<\/section>/.exec(html)?.[0];
  if (!panel) return null;
  return [...panel.matchAll(/<li( class="current")?>([\s\S]*?)<\/li>/g)].map((m) => {
    const subject = />([^<]*)<\/(?:a|span)>/.exec(m[2])![1];
    const from = /from <span dir="auto">([^<]*)<\/span>/.exec(m[2])![1];
    return `${from}|${subject}${m[1] ? '|current' : ''}`;
  });
}

describe('admin: a message\'s conversation', function () {
  this.timeout(60_000);
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;
  let eve: PublicUser;
  const at = (minutes: number) => new Date(Date.UTC(2026, 10, 2, 9, minutes));

  before(async () => {
    store = await openTestStore('admin_conversation');
    testApp = buildApp(store);
    bob = await makeUser(store, 'bob@acme.test');
    eve = await makeUser(store, 'eve@acme.test');
  });
  after(async () => store.drop());

  it('lists the messages that reference each other, oldest first, and marks the one open', async () => {
    const account = await makeAccount(store, bob, 'bob@thread.test');
    const own = { ownerId: bob.id, accountId: account.id };
    const quote = '<quote-1@customer.test>';
    const answer = '<answer-2@acme.test>';
    await storeMessage(store, { from: 'Alice Customer <alice@customer.test>', subject: 'Quote for 40 chairs', messageId: quote, date: at(0) }, { ...own, receivedAt: at(0) });
    const opened = await storeMessage(store, {
      from: 'Bob <bob@thread.test>', subject: 'Re: Quote for 40 chairs', messageId: answer, date: at(10),
      headers: { 'In-Reply-To': quote, References: quote },
    }, { ...own, receivedAt: at(10) });
    await storeMessage(store, {
      from: 'Alice Customer <alice@customer.test>', subject: 'Re: Re: Quote for 40 chairs', messageId: '<reply-3@customer.test>', date: at(20),
      headers: { 'In-Reply-To': answer, References: `${quote} ${answer}` },
    }, { ...own, receivedAt: at(20) });
    // A colleague answered the quote too (a sibling of Bob's answer), and it was held in Quarantine.
    await storeMessage(store, {
      from: 'Carol <carol@acme.test>', subject: 'Re: Quote for 40 chairs', messageId: '<sibling-4@acme.test>', date: at(30),
      headers: { 'In-Reply-To': quote, References: quote },
    }, { ...own, receivedAt: at(30), status: 'quarantine', quarantineReason: 'test' });
    // Same subject, another customer, no References: another conversation.
    const unrelated = await storeMessage(store, { from: 'Dave Other <dave@other.test>', subject: 'Re: Quote for 40 chairs', date: at(40) }, { ...own, receivedAt: at(40) });
    // The same thread in Eve's own mailbox is hers.
    const evesAccount = await makeAccount(store, eve, 'eve@thread.test');
    await storeMessage(store, {
      from: 'Alice Customer <alice@customer.test>', subject: 'Re: Quote for 40 chairs (to Eve)', messageId: '<eve-5@customer.test>', date: at(50),
      headers: { 'In-Reply-To': quote, References: quote },
    }, { ownerId: eve.id, accountId: evesAccount.id, receivedAt: at(50) });

    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const page = await agent.get(`/messages/${opened.id}`).expect(200);
    assert.deepEqual(conversationLines(page.text), [
      'Alice Customer|Quote for 40 chairs',
      'Bob|Re: Quote for 40 chairs|current',
      'Alice Customer|Re: Re: Quote for 40 chairs',
      'Carol|Re: Quote for 40 chairs',
    ]);
    assert.match(page.text, /Conversation \(4 messages\)/);
    assert.match(page.text, /aria-current="page"/);
    assert.match(page.text, /from <span dir="auto">Carol<\/span>, [^<]* · in Quarantine/);

    // A message outside any conversation has no panel.
    assert.equal(conversationLines((await agent.get(`/messages/${unrelated.id}`).expect(200)).text), null);

    // The API lists the same conversation for an integration; a message on its own is a conversation of one.
    const api = (id: string, user = 'bob@acme.test') => createApiToken(store, user, { name: `conversation ${id}` }, {})
      .then(({ token }) => request(testApp.app).get(`/api/v1/messages/${id}/conversation`).set('Authorization', `Bearer ${token}`));
    const listed = await api(opened.id);
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.messages.map((m: { from: { name: string }; subject: string; current: boolean; status: string }) =>
      `${m.from.name}|${m.subject}${m.current ? '|current' : ''}|${m.status}`), [
      'Alice Customer|Quote for 40 chairs|inbox',
      'Bob|Re: Quote for 40 chairs|current|inbox',
      'Alice Customer|Re: Re: Quote for 40 chairs|inbox',
      'Carol|Re: Quote for 40 chairs|quarantine',
    ]);
    assert.equal(listed.body.messages[0].messageId, 'quote-1@customer.test');
    assert.equal(listed.body.more, false);
    const alone = await api(unrelated.id);
    assert.deepEqual(alone.body.messages.map((m: { id: string; current: boolean }) => [m.id, m.current]), [[unrelated.id, true]]);
    assert.equal((await api(opened.id, 'eve@acme.test')).status, 404, 'another employee\'s mail is not found');
  });

  it('is the owner\'s conversation: the answer Bcc\'d to the dropbox is in it, and a mail in two mailboxes is listed once', async () => {
    const sales = await makeAccount(store, bob, 'sales@owner-thread.test');
    const personal = await makeAccount(store, bob, 'bob@owner-thread.test');
    const question = '<question-1@customer.test>';
    // The customer wrote to sales@ with Bob in Cc: one mail, forwarded from both mailboxes.
    const raw = await buildRaw({
      from: 'Alice Customer <alice@customer.test>', to: 'sales@owner-thread.test', subject: 'Delivery date', messageId: question, date: at(0),
      headers: { Cc: 'bob@owner-thread.test' },
    });
    const inSales = await storeMessage(store, { raw }, { ownerId: bob.id, accountId: sales.id, receivedAt: at(0) });
    const inPersonal = await storeMessage(store, { raw }, { ownerId: bob.id, accountId: personal.id, receivedAt: at(1) });
    // Bob answered from his own mail program; Postroom has the answer from the Bcc to his dropbox.
    const answer = await storeMessage(store, {
      from: 'Bob <bob@owner-thread.test>', to: 'alice@customer.test', subject: 'Re: Delivery date', messageId: '<delivery-answer-2@acme.test>', date: at(5),
      headers: { 'In-Reply-To': question, References: question },
    }, { ownerId: bob.id, receivedAt: at(5) });

    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const fromSales = await agent.get(`/messages/${inSales.id}`).expect(200);
    assert.deepEqual(conversationLines(fromSales.text), ['Alice Customer|Delivery date|current', 'Bob|Re: Delivery date']);
    // Opened from the other mailbox, that copy is the one marked.
    const fromPersonal = await agent.get(`/messages/${inPersonal.id}`).expect(200);
    assert.match(fromPersonal.text, new RegExp(`<li class="current">[\\s\\S]*?Delivery date`));
    assert.deepEqual(conversationLines(fromPersonal.text), ['Alice Customer|Delivery date|current', 'Bob|Re: Delivery date']);
    // The answer shows what it replies to, from the other mailbox.
    const fromDropbox = await agent.get(`/messages/${answer.id}`).expect(200);
    assert.deepEqual(conversationLines(fromDropbox.text), ['Alice Customer|Delivery date', 'Bob|Re: Delivery date|current']);
    assert.match(fromDropbox.text, /In reply to/);
    // Eve's mail is never Bob's conversation, whatever it names.
    const evesAccount = await makeAccount(store, eve, 'eve@owner-thread.test');
    await storeMessage(store, { from: 'Eve <eve@owner-thread.test>', subject: 'Re: Delivery date', messageId: '<eve-3@acme.test>', date: at(6), headers: { 'In-Reply-To': question, References: question } },
      { ownerId: eve.id, accountId: evesAccount.id, receivedAt: at(6) });
    assert.deepEqual(conversationLines((await agent.get(`/messages/${inSales.id}`).expect(200)).text), ['Alice Customer|Delivery date|current', 'Bob|Re: Delivery date']);
  });

  it('says when a conversation is longer than the list', async () => {
    const account = await makeAccount(store, bob, 'bob@long-thread.test');
    const own = { ownerId: bob.id, accountId: account.id };
    const root = '<long-root@customer.test>';
    const first = await storeMessage(store, { subject: 'Weekly report', messageId: root, date: at(0) }, { ...own, receivedAt: at(0) });
    for (let i = 1; i <= CONVERSATION_LIMIT + 2; i += 1) {
      await storeMessage(store, { subject: `Re: Weekly report ${i}`, messageId: `<long-${i}@customer.test>`, date: at(i), headers: { 'In-Reply-To': root, References: root } }, { ...own, receivedAt: at(i) });
    }
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const page = await agent.get(`/messages/${first.id}`).expect(200);
    assert.equal(conversationLines(page.text)!.length, CONVERSATION_LIMIT);
    assert.match(page.text, new RegExp(`Conversation \\(${CONVERSATION_LIMIT}\\+ messages\\)`));
    assert.match(page.text, new RegExp(`Only the first ${CONVERSATION_LIMIT} messages of this conversation are listed`));
    const { token } = await createApiToken(store, 'bob@acme.test', { name: 'long conversation' }, {});
    const answer = await request(testApp.app).get(`/api/v1/messages/${first.id}/conversation`).set('Authorization', `Bearer ${token}`).expect(200);
    assert.equal(answer.body.messages.length, CONVERSATION_LIMIT);
    assert.equal(answer.body.more, true);
  });
});
