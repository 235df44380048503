import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import mongoose from 'mongoose';
import { authenticateUser, resolveApiToken } from '../../gateway/accounts';
import { fromRoot } from '../../gateway/core/paths';
import { runCli } from '../../gateway/bin/cli';
import { freePort } from '../../gateway/store/embedded-ferretdb';
import { buildApp, signIn } from '../admin/fixtures';
import { openTestStore, testMongoUri } from '../support/store';

const run = promisify(execFile);

describe('accounts: the CLI (npm run cli)', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { out: (line: string) => out.push(line), err: (line: string) => err.push(line) } };
  };
  before(async () => {
    store = await openTestStore('accounts_cli');
  });
  after(async () => store.drop());

  it('create-user makes a user who can sign in; --role admin makes an admin', async () => {
    const { out, io: sink } = io();
    assert.equal(await runCli(['create-user', '--email', 'Ops@acme.test', '--password', 'a-long-cli-password', '--role', 'admin'], store, sink), 0);
    assert.match(out.join('\n'), /created admin ops@acme\.test/);
    assert.equal((await authenticateUser(store, 'ops@acme.test', 'a-long-cli-password'))?.role, 'admin');
  });

  it('reset-password sets a given password, or prints a generated one', async () => {
    const first = io();
    assert.equal(await runCli(['reset-password', '--email', 'ops@acme.test', '--password', 'another-cli-password'], store, first.io), 0);
    assert.ok(await authenticateUser(store, 'ops@acme.test', 'another-cli-password'));
    const second = io();
    assert.equal(await runCli(['reset-password', '--email', 'ops@acme.test'], store, second.io), 0);
    const generated = /new password: (\S+)/.exec(second.out.join('\n'))?.[1];
    assert.ok(generated && generated.length >= 20);
    assert.ok(await authenticateUser(store, 'ops@acme.test', generated));
    const missing = io();
    assert.equal(await runCli(['reset-password', '--email', 'ghost@acme.test'], store, missing.io), 65);
    assert.match(missing.err.join('\n'), /^postroom cli: no user with the email ghost@acme\.test$/);
  });

  it('reset-password signs the user out of the console everywhere (the reason to reset is often a stolen session)', async () => {
    assert.equal(await runCli(['create-user', '--email', 'lost-laptop@acme.test', '--password', 'the-old-cli-password'], store, io().io), 0);
    const { app } = buildApp(store);
    const { agent } = await signIn(app, 'lost-laptop@acme.test', 'the-old-cli-password');
    await agent.get('/preferences/profile').expect(200);
    assert.equal(await runCli(['reset-password', '--email', 'lost-laptop@acme.test', '--password', 'the-new-cli-password'], store, io().io), 0);
    await agent.get('/preferences/profile').expect(303).expect('Location', '/login?next=%2Fpreferences%2Fprofile');
  });

  it('lists users, sets roles and disables someone who left (signed out, tokens revoked) without the console', async () => {
    const run1 = async (...argv: string[]) => {
      const sink = io();
      const status = await runCli(argv, store, sink.io);
      return { status, out: sink.out.join('\n'), err: sink.err.join('\n') };
    };
    assert.equal((await run1('create-user', '--email', 'leaver@acme.test', '--password', 'a-long-leaver-password')).status, 0);
    const { app } = buildApp(store);
    const leaver = await signIn(app, 'leaver@acme.test', 'a-long-leaver-password');
    const token = (await run1('create-token', '--user', 'leaver@acme.test', '--name', 'leaver-token')).out.split('\n').pop()!;
    assert.ok(await resolveApiToken(store, token));
    const reporting = await run1('create-token', '--user', 'leaver@acme.test', '--name', 'leaver-reports', '--access', 'read');
    assert.match(reporting.out, /^created read-only API token pr_\S+… for leaver@acme\.test/);
    assert.equal((await store.models.ApiToken.findOne({ name: 'leaver-reports' }).lean())!.access, 'read');

    const listed = await run1('list-users');
    assert.equal(listed.status, 0);
    assert.match(listed.out, /^leaver@acme\.test \| employee \| active \| last sign-in \d{4}-\d\d-\d\d \d\d:\d\d UTC$/m);

    assert.deepEqual(await run1('set-role', '--email', 'Leaver@acme.test', '--role', 'admin'), { status: 0, out: 'leaver@acme.test is now an admin', err: '' });
    assert.equal((await run1('set-role', '--email', 'leaver@acme.test', '--role', 'boss')).status, 65);
    assert.equal((await run1('set-role', '--email', 'leaver@acme.test')).status, 64, 'set-role needs --role');

    const disabled = await run1('disable-user', '--email', 'leaver@acme.test');
    assert.equal(disabled.status, 0, disabled.err);
    assert.match(disabled.out, /^leaver@acme\.test is disabled: 1 console session\(s\) ended, API tokens revoked/);
    await leaver.agent.get('/').expect(303);
    assert.equal(await resolveApiToken(store, token), null);
    assert.equal(await authenticateUser(store, 'leaver@acme.test', 'a-long-leaver-password'), null);
    assert.match((await run1('list-users')).out, /^leaver@acme\.test \| admin \| disabled \|/m);
    assert.ok(await store.models.AuditEvent.exists({ action: 'user.disable', actorEmail: 'cli' }));

    // sync-status says the leaver's mailbox is not synced, instead of showing a status that looks stuck.
    const leaverId = (await store.models.User.findOne({ email: 'leaver@acme.test' }).lean())!._id;
    const mailbox = await store.models.MailAccount.create({
      ownerId: leaverId, email: 'leaver@acme.test', domain: 'acme.test', forwardingToken: 'leavertoken12345', forwardingAddress: 'leaver-acme-test.leavertoken12345@in.acme.test',
      imap: { enabled: true, status: 'authenticated', host: '127.0.0.1', port: 993, username: 'leaver', passwordEnc: 'v1.x.y.z' },
    });
    assert.match((await run1('sync-status')).out, /^leaver@acme\.test \| owner disabled, not synced \| /m);

    assert.equal((await run1('enable-user', '--email', 'leaver@acme.test')).out, 'leaver@acme.test is enabled again');
    assert.match((await run1('sync-status')).out, /^leaver@acme\.test \| authenticated \| /m);
    await store.models.MailAccount.deleteOne({ _id: mailbox._id });
    assert.ok(await authenticateUser(store, 'leaver@acme.test', 'a-long-leaver-password'));
    assert.deepEqual(await run1('disable-user', '--email', 'nobody@acme.test'), { status: 65, out: '', err: 'postroom cli: no user with the email nobody@acme.test' });
  });

  it('answers usage errors with 64 and bad input with 65', async () => {
    const unknown = io();
    assert.equal(await runCli(['frobnicate'], store, unknown.io), 64);
    assert.match(unknown.err.join('\n'), /unknown command "frobnicate"/);
    const flag = io();
    assert.equal(await runCli(['create-user', '--emial', 'x@acme.test'], store, flag.io), 64);
    const short = io();
    assert.equal(await runCli(['create-user', '--email', 'x@acme.test', '--password', 'short'], store, short.io), 65);
    assert.match(short.err.join('\n'), /password must be at least 12 characters/);
    const dup = io();
    assert.equal(await runCli(['create-user', '--email', 'ops@acme.test', '--password', 'a-long-cli-password'], store, dup.io), 65);
  });

  it('sweep-blobs removes orphan GridFS files past the age given, reports what it did, and refuses an age under an hour', async () => {
    const owner = () => ({ collection: 'messages' as const, id: new mongoose.Types.ObjectId() });
    const old = await store.blobs.put(Buffer.alloc(3 * 2 ** 20), { kind: 'raw', owner: owner() });
    const fresh = await store.blobs.put(Buffer.from('an ingest still in flight'), { kind: 'raw', owner: owner() });
    await store.conn.db!.collection('raw.files').updateOne({ _id: old }, { $set: { uploadDate: new Date(Date.now() - 3 * 3_600_000) } });

    const tooYoung = io();
    assert.equal(await runCli(['sweep-blobs', '--older-than-hours', '0'], store, tooYoung.io), 64);
    assert.match(tooYoung.err.join('\n'), /--older-than-hours must be a number of at least 1/);

    const swept = io();
    assert.equal(await runCli(['sweep-blobs', '--older-than-hours', '2'], store, swept.io), 0);
    assert.match(swept.out.join('\n'), /examined 1 files older than 2 h; removed 1 orphan files \(3\.0 MB\)/);
    await assert.rejects(store.blobs.get(old), /FileNotFound|not found/i);
    assert.equal((await store.blobs.get(fresh)).toString(), 'an ingest still in flight', 'a young orphan is left alone');
  });

  it('run with no command, says so on stderr before the usage, and exits 64', async function () {
    this.timeout(60_000);
    const failed = await run(process.execPath, ['--import', 'tsx', fromRoot('gateway', 'bin', 'cli.ts')], { cwd: fromRoot() }).then(
      () => assert.fail('expected exit 64'),
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    assert.equal(failed.code, 64);
    assert.equal(failed.stdout, '');
    assert.match(failed.stderr, /^postroom cli: no command given\n\nusage:/i);
  });

  it('create-token, run as a real process, prints the working token alone on the last line of stdout', async function () {
    this.timeout(60_000);
    const uri = new URL(testMongoUri());
    uri.pathname = `/${store.dbName}`;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', fromRoot('gateway', 'bin', 'cli.ts'), 'create-token', '--user', 'ops@acme.test', '--name', 'ci'], {
      env: { ...process.env, MONGODB_URI: uri.toString(), LOG_LEVEL: 'warn', NODE_ENV: 'test' },
      cwd: fromRoot(),
    });
    const lines = stdout.trimEnd().split('\n');
    const token = lines[lines.length - 1];
    assert.match(token, /^pr_[A-Za-z0-9_-]{43}$/);
    assert.equal((await resolveApiToken(store, token))?.email, 'ops@acme.test');
  });

  it('says which DATA_DIR it used when no Postroom runs there, so a user is not created unseen in the wrong store', async function () {
    this.timeout(60_000);
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-cli-data-'));
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, LOG_LEVEL: 'info', NODE_ENV: 'test' };
      delete env.MONGODB_URI;
      const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', fromRoot('gateway', 'bin', 'cli.ts'), 'create-user', '--email', 'first@acme.test', '--password', 'a-long-cli-password', '--role', 'admin'], { env, cwd: fromRoot(), timeout: 50_000 });
      assert.match(stdout, /^created admin first@acme\.test \(id [0-9a-f]{24}\)\n$/);
      assert.ok(stderr.includes(`postroom cli: no Postroom is running with DATA_DIR ${dataDir}; this command used the embedded store in that directory`), stderr);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('answers --help and usage errors without the store or the configuration (both may be what is broken)', async function () {
    this.timeout(60_000);
    const port = await freePort(); // nothing listens there
    // No SECRET_KEY in production: a command that needed the configuration would exit 78 here.
    const env = { ...process.env, MONGODB_URI: `mongodb://127.0.0.1:${port}/postroom`, NODE_ENV: 'production', SECRET_KEY: '' };
    const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', fromRoot('gateway', 'bin', 'cli.ts'), ...args], { env, cwd: fromRoot(), timeout: 50_000 }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    const help = await cli('--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: npm run cli -- <command> \[options\]/);
    const one = await cli('create-token', '--help');
    assert.equal(one.code, 0);
    assert.match(one.stdout, /^Usage: npm run cli -- create-token --user <email> \[--name <name>\] \[--access full\|read\]\n.*last line of stdout/);
    const access = await cli('create-token', '--user', 'ops@acme.test', '--access', 'write');
    assert.equal(access.code, 64);
    assert.match(access.stderr, /^postroom cli: --access must be full or read\n/);
    const typo = await cli('sync-stauts');
    assert.equal(typo.code, 64);
    assert.match(typo.stderr, /^postroom cli: unknown command "sync-stauts"\n/);
    const missing = await cli('create-user', '--email', 'x@acme.test');
    assert.equal(missing.code, 64);
    assert.match(missing.stderr, /^postroom cli: create-user needs --password\n/);
    const bad = await cli('sweep-blobs', '--older-than-hours', 'soon');
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /^postroom cli: --older-than-hours must be a number of at least 1\n/);
  });

  it('refuses an option the command does not take instead of ignoring it', async () => {
    const foreign = io();
    assert.equal(await runCli(['create-token', '--user', 'ops@acme.test', '--password', 'not-for-tokens'], store, foreign.io), 64);
    assert.match(foreign.err.join('\n'), /^postroom cli: create-token: Unknown option '--password'/);
    assert.equal(await store.models.ApiToken.countDocuments({ name: 'cli' }), 0, 'no token was made');
  });

  it('gives up on a store that does not answer, saying where and why, instead of waiting forever', async function () {
    this.timeout(60_000);
    const port = await freePort(); // nothing listens there
    const failed = await run(process.execPath, ['--import', 'tsx', fromRoot('gateway', 'bin', 'cli.ts'), 'sync-status'], {
      env: { ...process.env, MONGODB_URI: `mongodb://127.0.0.1:${port}/postroom`, LOG_LEVEL: 'info', NODE_ENV: 'test' },
      cwd: fromRoot(),
      timeout: 50_000,
    }).then(
      () => assert.fail('expected a failure'),
      (err: { code: number | null; signal: string | null; stdout: string; stderr: string }) => err,
    );
    assert.equal(failed.signal, null, 'it ended by itself, not by the timeout');
    assert.equal(failed.code, 1);
    assert.equal(failed.stdout, '');
    assert.match(failed.stderr, new RegExp(`postroom cli: cannot connect to the store at mongodb://127\\.0\\.0\\.1:${port}/postroom after \\d+ attempts: connect ECONNREFUSED`));
    assert.doesNotMatch(failed.stderr, /\n\s+at /, 'no stack trace');
  });
});
