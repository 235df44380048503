import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mongoose from 'mongoose';
import { assertSecretKeyMatchesStore, createMailAccount, createUser, rotateSecretKey, SecretKeyMismatchError, SYSTEM_ACTOR } from '../../gateway/accounts';
import { runCli } from '../../gateway/bin/cli';
import { secretContext, urlContext } from '../../gateway/crm/webhooks';
import { clientSecretContext } from '../../gateway/oauth/providers';
import { SecretBox } from '../../gateway/core/crypto';
import { describeStartFailure } from '../../gateway/bin/lifecycle';
import { captureLog } from '../support/log';
import { openTestStore } from '../support/store';

type TestStore = Awaited<ReturnType<typeof openTestStore>>;

/**
 * A restore with the wrong key (another SECRET_KEY, or DATA_DIR copied
 * without secret.key) must stop the process before the syncer marks every
 * IMAP account "password cannot be decrypted": that status stays after the
 * right key is back, and every employee would have to type it again.
 */
describe('the secret key is checked against the store at start', () => {
  let store: TestStore;
  let dataDir: string;
  const keyA = crypto.randomBytes(32);
  const keyB = crypto.randomBytes(32);

  beforeEach(async () => {
    store = await openTestStore('secret_key_check');
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-keycheck-'));
  });
  afterEach(async () => {
    await store.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function accountWithPasswordSealedBy(key: Buffer): Promise<string> {
    const owner = await createUser(store, { email: `owner${crypto.randomInt(1e6)}@acme.test`, password: 'correct-horse-battery' });
    const account = await createMailAccount(store, owner.id, 'bob@acme.test', { gatewayDomain: 'in.acme.test' });
    const sealed = new SecretBox(key, 'secrets').seal('imap-password', account.id);
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { 'imap.passwordEnc': sealed, 'imap.enabled': true, 'imap.status': 'authenticated' } });
    return account.id;
  }

  it('records the key on the first start and accepts it on the next', async () => {
    const { log } = captureLog();
    await assertSecretKeyMatchesStore(store, { secretKey: keyA, dataDir }, log);
    assert.ok(await store.models.KeyCheck.exists({ _id: 'secrets' }), 'the first start records the key');
    await assertSecretKeyMatchesStore(store, { secretKey: keyA, dataDir }, log);
  });

  it('refuses another SECRET_KEY, naming it, and exits 78 through the start-failure path', async () => {
    const { log } = captureLog();
    await assertSecretKeyMatchesStore(store, { secretKey: keyA, dataDir }, log);
    const err = await assertSecretKeyMatchesStore(store, { secretKey: keyB, dataDir }, log).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof SecretKeyMismatchError, `refused: ${String(err)}`);
    assert.match(err.message, /^the secret key does not decrypt the secrets .* in this store: start with the key this data was stored with .*SECRET_KEY is another key\. To change the key on purpose, .* run: npm run cli -- rotate-secret-key --new-key <new key>\. If the old key is lost for good, run: npm run cli -- adopt-secret-key\. Nothing was changed$/);
    assert.deepEqual(describeStartFailure(err, dataDir), { status: 78, line: err.message });
  });

  it('checks a store from before key checks against the IMAP passwords it holds', async () => {
    const { log } = captureLog();
    const accountId = await accountWithPasswordSealedBy(keyA);
    await assert.rejects(assertSecretKeyMatchesStore(store, { secretKey: keyB, dataDir }, log), (err: Error) => {
      assert.ok(err instanceof SecretKeyMismatchError);
      assert.match(err.message, /does not decrypt any of the 1 stored IMAP\/SMTP passwords it tried/);
      return true;
    });
    assert.equal(await store.models.KeyCheck.exists({ _id: 'secrets' }), null, 'the wrong key is not recorded');
    const account = await store.models.MailAccount.findById(accountId).lean();
    assert.equal(account?.imap?.status, 'authenticated', 'the account is left as it was');
    await assertSecretKeyMatchesStore(store, { secretKey: keyA, dataDir }, log);
    assert.ok(await store.models.KeyCheck.exists({ _id: 'secrets' }), 'the right key is recorded');
  });

  it('does not keep a key generated into a DATA_DIR restored without its secret.key', async () => {
    const { log } = captureLog();
    fs.writeFileSync(path.join(dataDir, 'secret.key'), `${keyA.toString('hex')}\n`, { mode: 0o600 });
    await accountWithPasswordSealedBy(keyA);
    await assertSecretKeyMatchesStore(store, { dataDir }, log);
    // The restore drill's mistake: the store is copied back, secret.key is not.
    fs.rmSync(path.join(dataDir, 'secret.key'));
    await assert.rejects(assertSecretKeyMatchesStore(store, { dataDir }, log), (err: Error) => {
      assert.ok(err instanceof SecretKeyMismatchError);
      assert.match(err.message, new RegExp(`${path.join(dataDir, 'secret.key')} was missing, .* copy the secret.key that was backed up with this data to `));
      return true;
    });
    assert.equal(fs.existsSync(path.join(dataDir, 'secret.key')), false, 'the generated key is removed, so the backed-up one can go in its place');
  });

  it('says when it generates the key of a new store, so it is backed up', async () => {
    const capture = captureLog();
    await assertSecretKeyMatchesStore(store, { dataDir }, capture.log);
    assert.ok(fs.existsSync(path.join(dataDir, 'secret.key')));
    assert.ok(capture.lines.some((line) => line.level === 40 && /generated the secret key .*back it up with DATA_DIR/.test(String(line.msg))), capture.text());
  });
  it('rotate-secret-key re-seals every stored secret with a new key, which the next start then requires', async () => {
    const { log } = captureLog();
    fs.writeFileSync(path.join(dataDir, 'secret.key'), `${keyA.toString('hex')}\n`, { mode: 0o600 });
    const accountId = await accountWithPasswordSealedBy(keyA);
    const boxA = new SecretBox(keyA, 'secrets');
    const hookId = new mongoose.Types.ObjectId();
    await store.models.Webhook.collection.insertOne({
      _id: hookId, url: 'https://crm.acme.test/hook/…', urlEnc: boxA.seal('https://crm.acme.test/hook/T0k3n', urlContext(hookId)),
      secretEnc: boxA.seal('whsec', secretContext(hookId)), enabled: true,
    });
    await store.models.BusinessSettings.updateOne({ _id: 'business' }, { $set: { 'oauth.google.clientSecretEnc': boxA.seal('gsecret', clientSecretContext('google')) } }, { upsert: true });
    await assertSecretKeyMatchesStore(store, { dataDir }, log);

    const out: string[] = [];
    const err: string[] = [];
    const cli = (argv: string[], applianceRunning = false) => runCli(argv, store, { out: (l) => out.push(l), err: (l) => err.push(l) }, { config: { dataDir, secretKey: undefined }, applianceRunning });
    assert.equal(await cli(['rotate-secret-key', '--new-key', 'not-a-key']), 64);
    assert.equal(await cli(['rotate-secret-key', '--new-key', keyB.toString('hex')], true), 1, 'refused beside a running appliance');
    assert.match(err.join('\n'), /Postroom is running with DATA_DIR .*: stop it first/);
    assert.equal(await cli(['rotate-secret-key', '--new-key', keyA.toString('hex')]), 65, 'the key in use is no new key');
    assert.equal(await cli(['rotate-secret-key', '--new-key', keyB.toString('hex')]), 0, err.join('\n'));
    assert.match(out.join('\n'), /re-sealed 4 secrets with the new key \(0 already were, 0 unreadable/);
    assert.equal(fs.readFileSync(path.join(dataDir, 'secret.key'), 'utf8').trim(), keyB.toString('hex'), 'secret.key holds the new key');

    const boxB = new SecretBox(keyB, 'secrets');
    const account = await store.models.MailAccount.findById(accountId).lean();
    assert.equal(boxB.open(account!.imap!.passwordEnc!, accountId), 'imap-password');
    const hook = (await store.models.Webhook.findById(hookId).lean())!;
    assert.equal(boxB.open(hook.secretEnc, secretContext(hookId)), 'whsec');
    assert.equal(boxB.open(hook.urlEnc, urlContext(hookId)), 'https://crm.acme.test/hook/T0k3n', 'the webhook URL too');
    assert.equal(boxB.open((await store.models.BusinessSettings.findById('business').lean())!.oauth!.google!.clientSecretEnc!, clientSecretContext('google')), 'gsecret');
    await assertSecretKeyMatchesStore(store, { dataDir }, log);
    await assert.rejects(assertSecretKeyMatchesStore(store, { secretKey: keyA, dataDir }, log), SecretKeyMismatchError, 'the old key no longer starts it');
    assert.ok(await store.models.AuditEvent.exists({ action: 'secret_key.rotate', actorEmail: 'cli' }));

    // Cut short and run again (here: again from the old key's point of view): nothing is sealed twice.
    const again = await rotateSecretKey(store, keyA, keyB, SYSTEM_ACTOR);
    assert.deepEqual(again, { resealed: 0, alreadyNew: 4, unreadable: 0, oauthStatesDropped: 0 });
  });

  it('adopt-secret-key lets a store whose key is lost for good start with a new one, keeping everything else', async () => {
    const { log } = captureLog();
    const accountId = await accountWithPasswordSealedBy(keyA);
    await assertSecretKeyMatchesStore(store, { secretKey: keyA, dataDir }, log);
    const err = await assertSecretKeyMatchesStore(store, { secretKey: keyB, dataDir }, log).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof SecretKeyMismatchError);
    assert.match(err.message, /If the old key is lost for good, run: npm run cli -- adopt-secret-key\. Nothing was changed$/);

    const out: string[] = [];
    const errs: string[] = [];
    const cli = (argv: string[], applianceRunning = false) => runCli(argv, store, { out: (l) => out.push(l), err: (l) => errs.push(l) }, { config: { dataDir, secretKey: keyB }, applianceRunning });
    assert.equal(await cli(['adopt-secret-key'], true), 1, 'refused beside a running appliance');
    assert.equal(await cli(['adopt-secret-key']), 0, errs.join('\n'));
    assert.match(out.join('\n'), /the configured key is now this store's key; .*each IMAP\/SMTP account asks its owner for the password again/);
    await assertSecretKeyMatchesStore(store, { secretKey: keyB, dataDir }, log);
    await assert.rejects(assertSecretKeyMatchesStore(store, { secretKey: keyA, dataDir }, log), SecretKeyMismatchError, 'the lost key is no longer the store\'s');
    const account = await store.models.MailAccount.findById(accountId).lean();
    assert.equal(new SecretBox(keyA, 'secrets').open(account!.imap!.passwordEnc!, accountId), 'imap-password', 'the sealed password is left as it was');
    assert.ok(await store.models.AuditEvent.exists({ action: 'secret_key.adopt', actorEmail: 'cli' }));
    assert.equal(await cli(['adopt-secret-key']), 0);
    assert.match(out.at(-1)!, /already this store's key: nothing to do/);
  });
});
