/**
 * Replying to (or forwarding) a message that is deleted before Send is
 * pressed: by its owner in another tab, by an admin, or by mail retention.
 * The reply the user wrote must not be stuck behind a refusal they cannot
 * see: they are told, and can send it as a new message.
 */
import { strict as assert } from 'node:assert';
import { buildApp, signIn, storeMessage, type SignedIn, type TestApp } from '../admin/fixtures';
import { openTestStore } from '../support/store';
import { sendableAccount, sharedDovecot, startRecordingSmtp, type RecordingSmtp, type SendFixture, type TestStore } from '../send/support';
import { formFields } from './forms';

describe('Send pressed on a reply whose original was deleted meanwhile', function () {
  this.timeout(60_000);
  let store: TestStore;
  let smtp: RecordingSmtp;
  let testApp: TestApp;
  let bob: SendFixture;
  let tab: SignedIn;
  let otherTab: SignedIn;

  before(async () => {
    store = await openTestStore('race_reply_deleted');
    smtp = await startRecordingSmtp({ tls: 'starttls' });
    testApp = buildApp(store, { imapTimeoutMs: 5000 });
    bob = await sendableAccount(store, testApp.secretBox, { dovecot: await sharedDovecot(), smtp, smtpTls: 'starttls' });
    tab = await signIn(testApp.app, bob.user.email);
    otherTab = await signIn(testApp.app, bob.user.email);
  });
  after(async () => {
    await smtp?.stop();
    await store?.drop();
  });

  const send = (fields: Record<string, string>) => {
    let post = tab.agent.post('/compose');
    for (const [name, value] of Object.entries(fields)) post = post.field(name, value);
    return post;
  };

  it('says the original is gone and sends the reply as a new message when Send is pressed again', async () => {
    const original = await storeMessage(store, { subject: 'Contract draft', to: bob.email, text: 'Please review.' }, { ownerId: bob.user.id, accountId: bob.accountId });
    const page = await tab.agent.get(`/compose?original=${original.id}&action=reply`).expect(200);
    const form: Record<string, string> = { ...formFields(page.text, 'compose-form'), text: 'Looks good to me.\r\nBob' };
    assert.equal(form.original, original.id);

    await otherTab.agent.post(`/messages/${original.id}/delete`).type('form').send({ _csrf: otherTab.csrf }).expect(303);

    const before = smtp.received.length;
    const refused = await send(form);
    assert.equal(refused.status, 400);
    assert.match(refused.text, /The message you are replying to was deleted/, 'the user is told why nothing was sent');
    assert.equal(smtp.received.length, before, 'nothing sent yet');

    const again = formFields(refused.text, 'compose-form');
    assert.equal(again.text, 'Looks good to me.\r\nBob', 'what the user wrote is kept');
    assert.equal(again.subject, 'Re: Contract draft');
    const sent = await send(again);
    assert.equal(sent.status, 303, sent.text.slice(0, 300));
    await smtp.waitFor(before + 1);
    assert.equal(smtp.received[before].parsed.subject, 'Re: Contract draft');
  });
});
