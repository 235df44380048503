/**
 * What the employee sees of a running sync on Preferences → Email → Edit:
 * a real syncer against Dovecot, held in the middle of a first sync, and the
 * real console page read meanwhile and afterwards.
 */
import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import request from 'supertest';
import { createApiToken } from '../../gateway/accounts';
import { silentLogger } from '../../gateway/core/log';
import { startSyncer, type PassReport } from '../../gateway/sync/schedule';
import { buildApp, makeUser, signIn, type TestApp } from '../admin/fixtures';
import type { DovecotServer } from '../support/dovecot';
import { createImapAccount, fillInbox, gatedAssociator, waitForInboxCursor, makeMessage, testConfig, testSecrets, uniqueEmail, useSyncWorld, type SyncWorld } from './helpers';

const TOTAL = 60;
const BATCH = 5;

describe('console: progress of an IMAP sync', function () {
  this.timeout(120_000);
  const world = useSyncWorld('sync_console_progress');
  let store: SyncWorld['store'];
  let dovecot: DovecotServer;
  let testApp: TestApp;
  const { syncers } = world;
  before(() => {
    ({ store, dovecot } = world);
    testApp = buildApp(store);
  });

  it('shows "syncing now", the first sync as n of N and each folder while the pass runs, then that it completed', async () => {
    const bob = await makeUser(store, 'bob-progress@acme.test');
    const account = await createImapAccount(store, dovecot);
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { ownerId: new mongoose.Types.ObjectId(bob.id.toString()) } });
    await fillInbox(dovecot, account, TOTAL);
    const { agent } = await signIn(testApp.app, 'bob-progress@acme.test');
    const page = async () => (await agent.get(`/preferences/email/${account.id}`).expect(200)).text;

    const held = gatedAssociator(2 * BATCH);
    const syncer = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: held, schedule: false, options: { batchSize: BATCH } });
    syncers.push(syncer);
    let pass: Promise<PassReport> | undefined;
    try {
      pass = syncer.runPassNow();
      await waitForInboxCursor(store, account, 2 * BATCH); // the first two batches stored, their cursor saved

      const during = await page();
      assert.match(during, /Syncing now/);
      assert.match(during, /First sync: <strong>10 of 60<\/strong> messages from the last 30 days \(16%\)/);
      assert.match(during, /<progress max="60" value="10">/);
      const row = /<tr>\s*<td>INBOX<\/td>\s*<td>([^<]*)<\/td>\s*<td>([^<]*)<\/td>/.exec(during);
      assert.ok(row, 'a row for INBOX');
      assert.equal(row[1], '60', 'messages on the server, known from the start of the pass');
      assert.equal(row[2], '50', 'still to read');
      assert.equal(during.match(/id="imap-folders"/g)?.length, 1, 'the folder table and the folders field do not share an id (the label must point at the field)');

      // The same for monitoring, through the API; another employee's token does not see it.
      const token = (await createApiToken(store, 'bob-progress@acme.test', { name: 'monitor' }, {})).token;
      const api = await request(testApp.app).get(`/api/v1/accounts/${account.id}/imap/sync`).set('Authorization', `Bearer ${token}`).expect(200);
      assert.equal(api.body.syncing, true);
      assert.deepEqual(api.body.backfill, { total: 60, done: 10, completed: false, percent: 16 });
      assert.equal(api.body.folders[0].folder, 'INBOX');
      assert.equal(api.body.folders[0].messagesOnServer, 60);
      await makeUser(store, 'eve-progress@acme.test');
      const eve = (await createApiToken(store, 'eve-progress@acme.test', { name: 'monitor' }, {})).token;
      await request(testApp.app).get(`/api/v1/accounts/${account.id}/imap/sync`).set('Authorization', `Bearer ${eve}`).expect(404);
    } finally {
      held.release();
    }
    const report = await pass;
    assert.equal(report.accounts[0]?.outcome, 'synced');

    const after = await page();
    assert.doesNotMatch(after, /Syncing now/);
    assert.match(after, /First sync complete: 60 messages from the last 30 days read\./);
    assert.doesNotMatch(after, /<progress/);
  });

  it('says when the next attempt is due after the server could not be reached', async () => {
    const carol = await makeUser(store, 'carol-progress@acme.test');
    const account = await createImapAccount(store, dovecot);
    await dovecot.append(account.email, 'INBOX', makeMessage({ to: account.email }).raw);
    const syncer = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false });
    syncers.push(syncer);
    await syncer.runPassNow();
    // The server moves away (port 1 refuses): the next pass backs off.
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { ownerId: new mongoose.Types.ObjectId(carol.id.toString()), 'imap.port': 1 } });
    const report = await syncer.runPassNow();
    assert.equal(report.accounts.find((a) => a.accountId === account.id)?.outcome, 'backoff');

    const { agent } = await signIn(testApp.app, 'carol-progress@acme.test');
    const text = (await agent.get(`/preferences/email/${account.id}`).expect(200)).text;
    assert.match(text, /CONNECTION_REFUSED/);
    assert.match(text, /The last attempt failed \(see the error above\); the next one is due \d{4}-\d\d-\d\d \d\d:\d\d UTC\./);
    assert.match(text, /First sync complete: 1 message from the last 30 days read\./);
  });

  it('says that sync has stopped when the password stops working, and that it is paused while the account is disabled', async () => {
    const dave = await makeUser(store, 'dave-progress@acme.test');
    const account = await createImapAccount(store, dovecot);
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { ownerId: new mongoose.Types.ObjectId(dave.id.toString()) } });
    const { agent } = await signIn(testApp.app, 'dave-progress@acme.test');
    const page = async () => (await agent.get(`/preferences/email/${account.id}`).expect(200)).text;
    assert.doesNotMatch(await page(), /id="imap-sync-waits"/, 'authenticated and enabled: nothing waits');

    // The provider revokes the app password before the first pass.
    await dovecot.setPassword(account.email, 'revoked-elsewhere');
    const syncer = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false });
    syncers.push(syncer);
    assert.equal((await syncer.runPassNow()).accounts.find((a) => a.accountId === account.id)?.outcome, 'auth_failed');
    let text = await page();
    assert.match(text, /AUTH_FAILED/);
    assert.match(text, /id="imap-sync-waits">· Sync has stopped: correct the problem below \(a changed password: type the new one\) and click Authenticate\.</);
    assert.match(text, /· Last synced never</, 'a failed attempt is not a sync');
    const list = (await agent.get('/preferences/email').expect(200)).text;
    assert.match(list, /Last synced: never/);

    // Disabled: paused, whatever the IMAP status.
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { 'imap.status': 'authenticated', 'imap.lastError': '', enabled: false } });
    text = await page();
    assert.match(text, /id="imap-sync-waits">· Sync is paused while this account is disabled \(Enable above resumes it\)\.</);

    // Its owner disabled by an admin (who is the one to look at it then).
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { enabled: true } });
    await makeUser(store, 'admin-progress@acme.test', 'admin');
    await store.models.User.updateOne({ _id: dave.id }, { $set: { disabled: true } });
    const admin = await signIn(testApp.app, 'admin-progress@acme.test');
    text = (await admin.agent.get(`/preferences/email/${account.id}`).expect(200)).text;
    assert.match(text, /id="imap-sync-waits">· Sync is paused: the user this account belongs to is disabled \(Users\)\.</);
  });

  it('says on the page of a message over the size limit that it was cut off, and that the whole one is still in the mailbox', async () => {
    const erin = await makeUser(store, 'erin-progress@acme.test');
    const account = await createImapAccount(store, dovecot);
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { ownerId: new mongoose.Types.ObjectId(erin.id.toString()) } });
    const huge = makeMessage({ to: account.email, subject: 'Scans attached', body: `${'0123456789abcdef'.repeat(64)}\r\n`.repeat(300) }); // ~300 KB
    await dovecot.append(account.email, 'INBOX', huge.raw);
    const syncer = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false, options: { maxMessageBytes: 100 * 1024 } });
    syncers.push(syncer);
    assert.equal((await syncer.runPassNow()).accounts.find((a) => a.accountId === account.id)?.truncated, 1);

    const stored = (await store.models.Message.findOne({ messageId: huge.messageId }).lean())!;
    const { agent } = await signIn(testApp.app, 'erin-progress@acme.test');
    const text = (await agent.get(`/messages/${stored._id}`).expect(200)).text;
    assert.match(text, /id="parse-error">Not everything of this message could be read: This message is 0\.3 MB \(\d+ bytes\), over the 102400-byte limit \(SMTP_MAX_MESSAGE_SIZE\): only its first 0\.1 MB were stored, so its end, often the last attachments, is cut off\. The whole message is still in the mailbox on the server\.</);
  });

  it('names the message the server would not hand over, once it is skipped', async () => {
    const fay = await makeUser(store, 'fay-progress@acme.test');
    const account = await createImapAccount(store, dovecot);
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { ownerId: new mongoose.Types.ObjectId(fay.id.toString()) } });
    for (let i = 0; i < 2; i++) await dovecot.append(account.email, 'INBOX', makeMessage({ to: account.email }).raw);
    await dovecot.setMessageReadable(account.email, 'INBOX', 2, false);
    const syncer = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false, options: { backoffBaseMs: 0 } });
    syncers.push(syncer);
    try {
      for (let pass = 0; pass < 4; pass++) await syncer.runPassNow();
    } finally {
      await dovecot.setMessageReadable(account.email, 'INBOX', 2, true);
    }
    const { agent } = await signIn(testApp.app, 'fay-progress@acme.test');
    const text = (await agent.get(`/preferences/email/${account.id}`).expect(200)).text;
    assert.match(text, /Skipped a message the server would not hand over after several tries \(UID 2\): still in your mailbox, not in Postroom\. The server's log says why\./);
    assert.match(text, /First sync complete: 1 message from the last 30 days read\./);
  });

  it('says after a good Authenticate that nothing is synced while the IMAP Support box is not ticked', async () => {
    await makeUser(store, 'gus-progress@acme.test');
    const mailbox = uniqueEmail('gus');
    await dovecot.addUser(mailbox, 'app-password-1');
    const { agent, csrf } = await signIn(testApp.app, 'gus-progress@acme.test');
    const added = await agent.post('/preferences/email').type('form').send({ _csrf: csrf, email: mailbox }).expect(303);
    const form = { _csrf: csrf, service: 'custom', host: dovecot.host, port: String(dovecot.tlsPort), tls: 'implicit', username: mailbox, password: 'app-password-1', folders: '', action: 'authenticate' };
    await agent.post(added.headers.location).type('form').send(form).expect(303); // "enabled" left unticked
    let text = (await agent.get(added.headers.location).expect(200)).text;
    assert.match(text, /Authenticated: signed in to 127\.0\.0\.1 as gus-[0-9a-f]+@acme\.test\. IMAP Support is off, so this mailbox is not synced: tick &#34;Turn on IMAP Support&#34; and click Save\./);
    assert.match(text, /id="imap-sync-waits">· Not synced: IMAP Support is off \(tick it below and click Save\)\.</);

    await agent.post(added.headers.location).type('form').send({ ...form, enabled: 'on', password: '' }).expect(303);
    text = (await agent.get(added.headers.location).expect(200)).text;
    assert.match(text, /Authenticated: signed in to 127\.0\.0\.1 as gus-[0-9a-f]+@acme\.test\.</);
    assert.doesNotMatch(text, /id="imap-sync-waits"/);
  });
});
