/**
 * IMAP Support's Authenticate is a real login that may take a while (a slow
 * or unreachable server: up to the timeout). Meanwhile the same person, in
 * another tab, or an admin helping them, fixes the settings and
 * authenticates, or removes the mailbox. The slow attempt's outcome is about
 * settings that are no longer saved: it must not overwrite what the newer
 * attempt recorded (the syncer only takes authenticated accounts), nor fail
 * with a 500 because the account is gone.
 */
import { strict as assert } from 'node:assert';
import { startDovecot } from '../support/dovecot';
import { shared } from '../support/shared';
import { openTestStore } from '../support/store';
import { buildApp, holdAuthenticate, makeUser, signIn, type TestApp, type TestStore } from '../admin/fixtures';

describe('IMAP Authenticate from two tabs at once', function () {
  this.timeout(60_000);
  let store: TestStore;
  let testApp: TestApp;

  before(async () => {
    store = await openTestStore('race_imap_auth');
    testApp = buildApp(store);
  });
  after(async () => store.drop());

  it('a slow failed attempt with a mistyped password does not mark failing the account a newer attempt authenticated', async () => {
    const dovecot = await shared('dovecot', () => startDovecot());
    const owner = await makeUser(store, 'tabs@acme.test');
    const slowTab = await signIn(testApp.app, 'tabs@acme.test');
    const fastTab = await signIn(testApp.app, 'tabs@acme.test');
    const mailbox = 'tabs-imap@acme.test';
    const slow = await holdAuthenticate(store, owner, slowTab, mailbox, { typedPassword: 'mistyped' });
    try {
      await fastTab.agent.post(`/preferences/email/${slow.accountId}`).type('form').send({
        _csrf: fastTab.csrf, enabled: 'on', service: 'custom', host: dovecot.host, port: String(dovecot.tlsPort), tls: 'implicit',
        username: mailbox, password: 'tabs-imap-password', action: 'authenticate',
      }).expect(303);
      assert.equal((await store.models.MailAccount.findById(slow.accountId).lean())!.imap!.status, 'authenticated');

      await slow.finish();
      const imap = (await store.models.MailAccount.findById(slow.accountId).lean())!.imap!;
      assert.equal(imap.status, 'authenticated', 'the newer login stands: the account is still synced');
      assert.equal(imap.lastError, '');
      assert.equal(imap.host, dovecot.host);
    } finally {
      slow.close();
    }
  });

  it('a slow attempt on a mailbox removed meanwhile answers that it is gone, not a server error', async () => {
    const owner = await makeUser(store, 'gone@acme.test');
    const slowTab = await signIn(testApp.app, 'gone@acme.test');
    const otherTab = await signIn(testApp.app, 'gone@acme.test');
    const slow = await holdAuthenticate(store, owner, slowTab, 'gone-imap@acme.test');
    try {
      await otherTab.agent.post(`/preferences/email/${slow.accountId}/delete`).type('form')
        .send({ _csrf: otherTab.csrf, confirm: 'gone-imap@acme.test' }).expect(303);
      const res = await slow.finish();
      assert.equal(res.status, 404, res.text.slice(0, 500));
      assert.equal(await store.models.MailAccount.countDocuments({ email: 'gone-imap@acme.test' }), 0, 'the removed mailbox stays removed');
    } finally {
      slow.close();
    }
  });
});
