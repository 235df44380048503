import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { authenticateUser, resolveApiToken } from '../../gateway/accounts';
import { fromRoot } from '../../gateway/core/paths';
import { runCli } from '../../gateway/bin/cli';
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
    assert.match(missing.err.join('\n'), /no user with the email ghost@acme\.test/);
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
});
