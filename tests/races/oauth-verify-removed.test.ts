/**
 * "Sign in with …" ends with a real IMAP login over XOAUTH2 (verifyOAuthImap),
 * which may take up to its timeout. The mailbox removed meanwhile (in another
 * tab, by an admin) is a 404, not a 500, and stays removed.
 */
import { strict as assert } from 'node:assert';
import { AppError } from '../../gateway/core/errors';
import { verifyOAuthImap } from '../../gateway/oauth';
import { startHeldGate } from '../admin/fixtures';
import { startOidcServer, type OidcServer } from '../support/oidc';
import { openTestStore } from '../support/store';
import { CALLBACK_URL, createAccount, oauthConfig, oauthDeps, signIn } from '../oauth/helpers';

describe('OAuth IMAP check of a mailbox removed meanwhile', function () {
  this.timeout(60_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let oidc: OidcServer;

  before(async () => {
    store = await openTestStore('race_oauth_verify');
    oidc = await startOidcServer({ redirectUris: [CALLBACK_URL] });
  });
  after(async () => {
    await oidc?.stop();
    await store?.drop();
  });

  it('answers 404 and leaves it removed', async () => {
    const deps = oauthDeps(store, oauthConfig(oidc));
    const account = await createAccount(store);
    oidc.addUser(account.email, 'provider-password');
    await signIn(deps, oidc, account, 'provider-password');
    // The IMAP server answers only when the test says so (then hangs up: the login fails).
    const gate = await startHeldGate({ host: '127.0.0.1', port: 9 });
    try {
      await store.models.MailAccount.updateOne({ _id: account.accountId }, { $set: { 'imap.host': '127.0.0.1', 'imap.port': gate.port } });
      const checking = verifyOAuthImap({ ...deps, timeoutMs: 20_000 }, account.accountId).then((r) => r, (err: unknown) => err);
      await gate.connected;
      await store.models.MailAccount.deleteOne({ _id: account.accountId });
      gate.close();
      const outcome = await checking;
      assert.ok(outcome instanceof AppError && outcome.status === 404, `a 404, not ${String(outcome instanceof Error ? outcome.stack : JSON.stringify(outcome))}`);
      assert.equal(await store.models.MailAccount.countDocuments({ _id: account.accountId }), 0);
    } finally {
      gate.close();
    }
  });
});
