/**
 * Authenticate SMTP is a real login too, and may take up to its timeout.
 * Meanwhile the sender fixes the sending settings in another tab and
 * authenticates them: the slow attempt's outcome is about settings no
 * longer saved, and must neither mark the account unable to send nor put
 * the old server back.
 */
import { strict as assert } from 'node:assert';
import { SYSTEM_ACTOR } from '../../gateway/accounts';
import { updateMailAccount } from '../../gateway/accounts/mail-accounts';
import { authenticateMailAccountSmtp } from '../../gateway/send/authenticate';
import { startHeldGate } from '../admin/fixtures';
import { newSecretBox, sendableAccount, sharedDovecot, startRecordingSmtp, type RecordingSmtp, type TestStore } from '../send/support';
import { openTestStore } from '../support/store';

describe('SMTP Authenticate from two tabs at once', function () {
  this.timeout(60_000);
  let store: TestStore;
  let smtp: RecordingSmtp;
  const secretBox = newSecretBox();

  before(async () => {
    store = await openTestStore('race_smtp_auth');
    smtp = await startRecordingSmtp({ tls: 'implicit' });
  });
  after(async () => {
    await smtp.stop();
    await store.drop();
  });

  it('a slow failed attempt with a mistyped password leaves the newer, authenticated settings in place', async () => {
    const sender = await sendableAccount(store, secretBox, { dovecot: await sharedDovecot(), smtp, smtpTls: 'implicit' });
    const change = { store, secretBox, actor: SYSTEM_ACTOR };
    const gate = await startHeldGate({ host: smtp.host, port: smtp.port });
    try {
      // Tab 1: its own user name and a mistyped password, through a server that answers slowly.
      await updateMailAccount(change, sender.viewer, sender.accountId, {
        smtp: { enabled: true, service: 'custom', host: '127.0.0.1', port: gate.port, tls: 'implicit', sameCredentials: false, username: sender.email, password: 'mistyped' },
      });
      const slow = authenticateMailAccountSmtp({ ...change, timeoutMs: 20_000 }, sender.viewer, sender.accountId);
      await gate.connected;
      // Tab 2: back to the mailbox's own credentials on the real port, authenticated.
      await updateMailAccount(change, sender.viewer, sender.accountId, {
        smtp: { enabled: true, service: 'custom', host: smtp.host, port: smtp.port, tls: 'implicit', sameCredentials: true },
      });
      const fast = await authenticateMailAccountSmtp({ ...change, timeoutMs: 10_000 }, sender.viewer, sender.accountId);
      assert.equal(fast.error, null);

      gate.release();
      const stale = await slow;
      assert.ok(stale.error, 'the mistyped password was refused');
      const saved = (await store.models.MailAccount.findById(sender.accountId).lean())!.smtp!;
      assert.equal(saved.status, 'authenticated', 'the account can still send');
      assert.equal(saved.port, smtp.port, 'the server of the newer settings stays');
      assert.equal(saved.sameCredentials, true);
    } finally {
      gate.close();
    }
  });
});
