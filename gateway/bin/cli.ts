/**
 * `npm run cli -- <command>`: user and token administration, and store upkeep, from a shell.
 *
 *   create-user    --email <email> --password <password> [--role admin|employee] [--name <name>]
 *   reset-password --email <email> [--password <password>]   (without --password a random one is printed)
 *   create-token   --user <email> [--name <name>] [--access full|read]  (the token alone on the last line)
 *   sweep-blobs    [--older-than-hours <n>]                   (the admin process also runs it hourly)
 *   sync-status                                               (one line per account with IMAP Support on)
 *   list-users                                                (one line per user: role, status, last sign-in)
 *   set-role       --email <email> --role admin|employee
 *   disable-user   --email <email>                            (signs them out, revokes their API tokens)
 *   enable-user    --email <email>
 *   rotate-secret-key --new-key <key>                         (Postroom stopped; re-seals every stored secret)
 *   adopt-secret-key                                          (Postroom stopped; the old key is lost for good)
 *   copy-store --to <mongodb uri>                             (Postroom stopped; e.g. embedded store → MongoDB 7)
 *
 * `<command> --help` describes one command. Help and usage errors are answered
 * before the configuration is read or the store opened.
 *
 * Exit status: 0 done, 64 usage error (EX_USAGE), 65 bad input (EX_DATAERR),
 * 1 anything else.
 */
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import {
  adoptSecretKey, assertSecretKeyMatchesStore, createApiToken, createUser, findUserByEmail, listUsers, rotateSecretKey, SecretKeyMismatchError, setPassword, setUserDisabled, setUserRole,
  SYSTEM_ACTOR, type Actor, type PublicUser,
} from '../accounts';
import { decodeKey, loadConfigOrExit, type Config } from '../core/config';
import { randomToken, resolveMasterKey } from '../core/crypto';
import { isAppError } from '../core/errors';
import { createLogger, silentLogger } from '../core/log';
import { copyStore, DEFAULT_ORPHAN_AGE_MS, openConfiguredStore, sweepOrphanBlobs, type Store } from '../store';
import { getSyncLedger, type SyncLedger } from '../sync/ledger';


const when = (date: Date | null) => (date ? date.toISOString().replace('T', ' ').slice(0, 16) + ' UTC' : 'never');

/** One grep-friendly line of an account's IMAP sync state (what the console's IMAP panel shows). */
function syncStatusLine(ledger: SyncLedger, ownerDisabled = false): string {
  // The syncer skips the accounts of a disabled user (someone who left): their last status would look stuck.
  const parts = [ledger.email, !ledger.enabled ? 'account disabled' : ownerDisabled ? 'owner disabled, not synced' : ledger.status];
  if (ledger.syncing) parts.push('syncing now');
  const { backfill } = ledger;
  if (backfill.completed) parts.push('first sync complete');
  else if (backfill.total > 0) parts.push(`first sync ${backfill.done}/${backfill.total} (${backfill.percent}%)`);
  else parts.push('first sync not started');
  parts.push(`last success ${when(ledger.lastSuccessAt)}`);
  if (ledger.failures > 0) parts.push(`${ledger.failures} failed attempt${ledger.failures === 1 ? '' : 's'}, next ${when(ledger.nextAttemptAt)}`);
  if (ledger.stalled) parts.push('stalled');
  // Messages the server would not hand over (sync-folder.ts): skipped, so the operator should look at the server's log.
  for (const folder of ledger.folders) if (folder.skippedUids.length > 0) parts.push(`skipped unreadable UID ${folder.skippedUids.join(',')} in ${folder.folder}`);
  // A first sync that reappears on a long-synced account: the server recreated or restored the folder.
  for (const folder of ledger.folders) if (folder.resync && !folder.backfill.completed) parts.push(`re-reading ${folder.folder} (${folder.resync.reason} ${when(folder.resync.at)})`);
  if (ledger.lastError) parts.push(`error ${ledger.lastErrorCode}: ${ledger.lastError}`);
  return parts.join(' | ');
}

class UsageError extends Error {}

type OptionName = 'email' | 'password' | 'role' | 'name' | 'user' | 'access' | 'older-than-hours' | 'new-key' | 'to';

/** Each command's options and its help; a misspelt or foreign option is a usage error, not silently ignored. */
const COMMANDS: Record<string, { options: OptionName[]; help: string }> = {
  'create-user': { options: ['email', 'password', 'role', 'name'], help: 'create-user --email <email> --password <password> [--role admin|employee] [--name <name>]\n  Create a console user (role employee unless --role admin).' },
  'reset-password': { options: ['email', 'password'], help: 'reset-password --email <email> [--password <password>]\n  Set a user\'s password and sign them out everywhere; without --password a random one is printed.' },
  'create-token': { options: ['user', 'name', 'access'], help: 'create-token --user <email> [--name <name>] [--access full|read]\n  Create an API token for a user; the token alone is the last line of stdout, shown only once.\n  --access read: it can only list and read (GET); anything else it asks gets 403. Default full.' },
  'sweep-blobs': { options: ['older-than-hours'], help: 'sweep-blobs [--older-than-hours <n>]\n  Remove GridFS files whose message or outbox entry is gone, older than n hours (default 24, at least 1).' },
  'sync-status': { options: [], help: 'sync-status\n  One line per account with IMAP Support on: status, syncing now, first sync done/total, last success,\n  backoff, last error.' },
  'list-users': { options: [], help: 'list-users\n  One line per console user: email, role, status (active, disabled, invited, invite expired), last sign-in.' },
  'set-role': { options: ['email', 'role'], help: 'set-role --email <email> --role admin|employee\n  Make a user an admin or an employee (the last enabled admin cannot be made an employee).' },
  'disable-user': { options: ['email'], help: 'disable-user --email <email>\n  Someone who left: sign them out everywhere and revoke their API tokens; their mailboxes are no longer\n  synced and their forwarding addresses refuse mail. Their stored mail is kept.' },
  'enable-user': { options: ['email'], help: 'enable-user --email <email>\n  Let a disabled user sign in again (API tokens revoked when disabling stay revoked).' },
  'rotate-secret-key': {
    options: ['new-key'],
    help: 'rotate-secret-key --new-key <key>\n  With Postroom stopped and the current key configured: re-seal every stored secret (IMAP/SMTP passwords,\n  OAuth tokens and client secrets, webhook secrets) with a new key (openssl rand -hex 32). Writes it to\n  DATA_DIR/secret.key when that is where the key is kept; otherwise set SECRET_KEY to it before starting.\n  Console sessions end. Run it again if it was cut short.',
  },
  'copy-store': {
    options: ['to'],
    help: 'copy-store --to <mongodb://host:27017/postroom>\n  With Postroom stopped: copy everything in its store (mail, accounts, users, settings, sealed secrets) into\n  another, e.g. from the embedded store of npm start to the MongoDB 7 a business outgrows it into. Documents\n  already there are kept, so running it again finishes a copy cut short. Then start Postroom with\n  MONGODB_URI set to that store and the same secret key.',
  },
  'adopt-secret-key': {
    options: [],
    help: 'adopt-secret-key\n  With Postroom stopped, when the key the store was sealed with is lost for good: make the configured key\n  the store\'s, so Postroom starts. Nothing is deleted; what the old key sealed stays unreadable, so every\n  IMAP/SMTP password must be entered again, OAuth accounts reconnected, OAuth client and webhook secrets set again.',
  },
};

/** One grep-friendly line of a user, as the console's Users page shows them. */
function userLine(user: PublicUser, now: Date): string {
  const expired = user.invitePending && !user.hasPassword && (user.inviteExpiresAt?.getTime() ?? 0) <= now.getTime();
  const status = user.disabled ? 'disabled' : expired ? 'invite expired' : user.invitePending && !user.hasPassword ? `invited until ${when(user.inviteExpiresAt)}` : 'active';
  return [user.email, user.role, status, `last sign-in ${when(user.lastLoginAt)}`].join(' | ');
}

/** Every command's synopsis and what it does, from COMMANDS: one description of each command. */
const USAGE = `Usage: npm run cli -- <command> [options]

Commands:
${Object.values(COMMANDS).map(({ help }) => help.replace(/^/gm, '  ')).join('\n')}

\`npm run cli -- <command> --help\` describes one command.
`;

/** What the command line asks for: help to print, or a command with its options (not yet run). */
export type CliRequest = { help: string } | { command: string; values: Partial<Record<OptionName, string>> };

/**
 * Read and check the command line without touching the store, so help, a
 * typo or a bad value is answered at once even when the store or the
 * configuration is not there. Throws UsageError.
 */
export function parseCommand(argv: string[]): CliRequest {
  const [command, ...rest] = argv;
  if (command === undefined) throw new UsageError('no command given');
  if (command === '--help' || command === '-h' || command === 'help') {
    const about = rest[0] === undefined ? undefined : COMMANDS[rest[0]];
    if (rest[0] !== undefined && !about) throw new UsageError(`unknown command "${rest[0]}"`);
    return { help: about ? `Usage: npm run cli -- ${about.help}\n` : USAGE };
  }
  const spec = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!spec) throw new UsageError(`unknown command "${command}"`);
  if (rest.includes('--help') || rest.includes('-h')) return { help: `Usage: npm run cli -- ${spec.help}\n` };
  let values: Partial<Record<OptionName, string>>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: Object.fromEntries(spec.options.map((name) => [name, { type: 'string' as const }])),
      strict: true,
      allowPositionals: false,
    }) as { values: Partial<Record<OptionName, string>> });
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message}`);
  }
  const need = (name: OptionName) => {
    if (!values[name]) throw new UsageError(`${command} needs --${name}`);
  };
  if (command === 'create-user') ['email', 'password'].forEach((name) => need(name as OptionName));
  if (command === 'reset-password') need('email');
  if (command === 'create-token') {
    need('user');
    if (values.access !== undefined && !['full', 'read'].includes(values.access)) throw new UsageError('--access must be full or read');
  }
  if (['set-role', 'disable-user', 'enable-user'].includes(command)) need('email');
  if (command === 'set-role') need('role');
  if (command === 'rotate-secret-key') {
    need('new-key');
    if (!decodeKey(values['new-key']!.trim())) throw new UsageError('--new-key must be 32 random bytes as 64 hex characters or base64 (generate one with: openssl rand -hex 32)');
  }
  if (command === 'copy-store') {
    need('to');
    if (!/^mongodb(\+srv)?:\/\/[^/]+\/[^/?]+/.test(values.to!)) throw new UsageError('--to must be a MongoDB connection string with a database, such as mongodb://mongo:27017/postroom');
  }
  if (command === 'sweep-blobs' && values['older-than-hours'] !== undefined) {
    const hours = Number(values['older-than-hours']);
    // A younger blob may belong to a message being stored right now: removing it would lose that message's bytes.
    if (values['older-than-hours'].trim() === '' || !Number.isFinite(hours) || hours < 1) throw new UsageError('--older-than-hours must be a number of at least 1');
  }
  return { command, values };
}

/** How long a command waits for an unreachable store before it says so and exits 1. */
const CLI_STORE_WAIT_MS = 20_000;

const CLI_ACTOR: Actor = { ...SYSTEM_ACTOR, email: 'cli' };

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

function usageFailed(err: UsageError, io: CliIo): number {
  io.err(`postroom cli: ${err.message}\n\n${USAGE}`);
  return 64;
}

/** What some commands need besides the store: the configured key, and whether a running appliance shares the store. */
export interface CliContext {
  config: Pick<Config, 'secretKey' | 'dataDir'>;
  /** The embedded store of a running `npm start` (its processes hold the current key). */
  applianceRunning: boolean;
}

/** Run one command against an open store; returns the exit status. Exported for tests. */
export async function runCli(argv: string[], store: Store, io: CliIo, context?: CliContext): Promise<number> {
  try {
    const request = parseCommand(argv);
    if ('help' in request) {
      io.out(request.help.trimEnd());
      return 0;
    }
    const { command, values } = request;
    /** The user of --email, or null after saying there is none. */
    const userNamed = async (email: string) => {
      const user = await findUserByEmail(store, email);
      if (!user) io.err(`postroom cli: no user with the email ${email}`);
      return user;
    };
    switch (command) {
      case 'create-user': {
        const user = await createUser(store, { email: values.email!, password: values.password!, role: values.role ?? 'employee', name: values.name }, CLI_ACTOR);
        io.out(`created ${user.role} ${user.email} (id ${user.id})`);
        return 0;
      }
      case 'reset-password': {
        const user = await userNamed(values.email!);
        if (!user) return 65;
        const password = values.password ?? randomToken(18);
        await setPassword(store, user.id, password, CLI_ACTOR);
        io.out(`password reset for ${user.email}`);
        if (!values.password) io.out(`new password: ${password}`);
        return 0;
      }
      case 'create-token': {
        const { token, view } = await createApiToken(store, values.user!, { name: values.name ?? 'cli', access: values.access }, CLI_ACTOR);
        io.out(`created ${view.access === 'read' ? 'read-only ' : ''}API token ${view.prefix}… for ${view.userEmail} (id ${view.id}); it is shown only once:`);
        io.out(token);
        return 0;
      }
      case 'sweep-blobs': {
        const hours = values['older-than-hours'] === undefined ? DEFAULT_ORPHAN_AGE_MS / 3_600_000 : Number(values['older-than-hours']);
        const result = await sweepOrphanBlobs(store, { olderThanMs: hours * 3_600_000 });
        io.out(`examined ${result.examined} files older than ${hours} h; removed ${result.removed} orphan files (${(result.bytesRemoved / 2 ** 20).toFixed(1)} MB)`);
        return 0;
      }
      case 'sync-status': {
        const accounts = await store.models.MailAccount.find({ 'imap.enabled': true }, { _id: 1, ownerId: 1 }).sort({ email: 1 }).lean();
        if (accounts.length === 0) io.out('no mail account has IMAP Support on');
        const disabledOwners = new Set((await store.models.User.find({ disabled: true }, { _id: 1 }).lean()).map((user) => user._id.toString()));
        for (const { _id, ownerId } of accounts) {
          const ledger = await getSyncLedger(store, _id);
          if (ledger) io.out(syncStatusLine(ledger, disabledOwners.has(ownerId.toString())));
        }
        return 0;
      }
      case 'list-users': {
        const users = await listUsers(store);
        if (users.length === 0) io.out('no users yet');
        for (const user of users) io.out(userLine(user, new Date()));
        return 0;
      }
      case 'set-role':
      case 'disable-user':
      case 'enable-user': {
        const user = await userNamed(values.email!);
        if (!user) return 65;
        if (command === 'set-role') {
          const changed = await setUserRole(store, user.id, values.role!, CLI_ACTOR);
          io.out(`${changed.email} is now ${changed.role === 'admin' ? 'an admin' : 'an employee'}`);
          return 0;
        }
        const disabled = command === 'disable-user';
        await setUserDisabled(store, user.id, disabled, CLI_ACTOR);
        if (disabled) {
          const sessions = await store.models.Session.deleteMany({ userId: user.id });
          io.out(`${user.email} is disabled: ${sessions.deletedCount ?? 0} console session(s) ended, API tokens revoked; their mailboxes are no longer synced and their forwarding addresses refuse mail (stored mail is kept)`);
        } else {
          io.out(`${user.email} is enabled again`);
        }
        return 0;
      }
      case 'rotate-secret-key':
        return await rotateKeyCommand(store, io, context, decodeKey(values['new-key']!.trim())!);
      case 'adopt-secret-key':
        return await adoptKeyCommand(store, io, context);
      case 'copy-store':
        return await copyStoreCommand(store, io, context, values.to!);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) return usageFailed(err, io);
    if (isAppError(err) && err.status < 500) {
      io.err(`postroom cli: ${err.message}`);
      return 65;
    }
    throw err;
  }
}

/**
 * The context of a command that changes what a running appliance's processes hold, or must see the store
 * still: null (after saying so) beside a running `npm start`.
 */
function stoppedAppliance(command: string, io: CliIo, context: CliContext | undefined, why?: string): CliContext | null {
  if (!context) throw new Error(`${command} needs the configuration`);
  if (!context.applianceRunning) return context;
  io.err(`postroom cli: Postroom is running with DATA_DIR ${context.config.dataDir}: stop it first${why ? ` (${why})` : ''}`);
  return null;
}

async function copyStoreCommand(store: Store, io: CliIo, given: CliContext | undefined, to: string): Promise<number> {
  const context = stoppedAppliance('copy-store', io, given, 'mail it stored during the copy could be missed');
  if (!context) return 1;
  const copies = await copyStore(store, to, silentLogger, (line) => io.out(line));
  const documents = copies.reduce((sum, c) => sum + c.source, 0);
  const copied = copies.reduce((sum, c) => sum + c.copied, 0);
  io.out(`copied ${copied} of ${documents} documents in ${copies.length} collections (the rest were there already)`);
  const key = context.config.secretKey ? 'the same SECRET_KEY' : `SECRET_KEY set to the key in ${resolveMasterKey(undefined, context.config.dataDir).file} (it seals the stored passwords)`;
  io.out(`start Postroom with MONGODB_URI set to that store and ${key}`);
  return 0;
}

async function adoptKeyCommand(store: Store, io: CliIo, given: CliContext | undefined): Promise<number> {
  const context = stoppedAppliance('adopt-secret-key', io, given);
  if (!context) return 1;
  const { changed } = await adoptSecretKey(store, context.config, CLI_ACTOR);
  if (!changed) {
    io.out('the configured key is already this store\'s key: nothing to do');
    return 0;
  }
  io.out('the configured key is now this store\'s key; start Postroom as before. Secrets sealed with the lost key stay unreadable: each IMAP/SMTP account asks its owner for the password again, OAuth accounts must be reconnected, and an admin sets OAuth client secrets (Preferences → Business) and webhook secrets again');
  return 0;
}

async function rotateKeyCommand(store: Store, io: CliIo, given: CliContext | undefined, newKey: Buffer): Promise<number> {
  const context = stoppedAppliance('rotate-secret-key', io, given, 'its processes would read the re-sealed secrets with the old key');
  if (!context) return 1;
  try {
    await assertSecretKeyMatchesStore(store, context.config, silentLogger);
  } catch (err) {
    if (!(err instanceof SecretKeyMismatchError)) throw err;
    io.err(`postroom cli: ${err.message}`);
    return 78;
  }
  const current = resolveMasterKey(context.config.secretKey, context.config.dataDir);
  if (current.key.equals(newKey)) {
    io.err('postroom cli: --new-key is the key in use now; generate a new one with: openssl rand -hex 32');
    return 65;
  }
  const result = await rotateSecretKey(store, current.key, newKey, CLI_ACTOR);
  io.out(`re-sealed ${result.resealed} secrets with the new key (${result.alreadyNew} already were, ${result.unreadable} unreadable with either key, ${result.oauthStatesDropped} OAuth sign-ins in progress dropped)`);
  if (!context.config.secretKey && current.file) {
    // Replace the file in one step: a crash leaves the old file or the new one, never half a key.
    fs.writeFileSync(`${current.file}.new`, `${newKey.toString('hex')}\n`, { mode: 0o600 });
    fs.renameSync(`${current.file}.new`, current.file);
    io.out(`${current.file} now holds the new key; start Postroom as before`);
  } else {
    io.out('now set SECRET_KEY to the new key (in .env) before starting Postroom: with the old one it refuses to start');
  }
  return 0;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  // Help and usage errors need neither the configuration nor the store (which may be what is broken).
  let request: CliRequest;
  try {
    request = parseCommand(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    // A usage error: the reason first, on stderr.
    process.stderr.write(`postroom cli: ${err.message}\n\n${USAGE}`);
    process.exit(64);
  }
  if ('help' in request) {
    process.stdout.write(request.help);
    process.exit(0);
  }
  const config = loadConfigOrExit();
  // Logs go to stderr so the token stays the last line of stdout.
  const log = createLogger({ level: config.logLevel === 'info' ? 'warn' : config.logLevel, destination: process.stderr, pretty: false });
  // A command run by hand or from a script must end: it does not wait for a store that is down as a service does.
  const store = await openConfiguredStore(config, log, { maxWaitMs: CLI_STORE_WAIT_MS });
  if (store.embedded) {
    // Not the store of a running appliance: say whose, or a user created beside `DATA_DIR=/srv/x npm start`
    // without the same DATA_DIR lands in ./data and cannot sign in, with nothing said.
    process.stderr.write(`postroom cli: no Postroom is running with DATA_DIR ${config.dataDir}; this command used the embedded store in that directory (a Postroom started with another DATA_DIR or MONGODB_URI does not see it)\n`);
  }
  let status = 1;
  try {
    const context: CliContext = { config, applianceRunning: !config.mongodbUri && !store.embedded };
    status = await runCli(argv, store, { out: (line) => process.stdout.write(`${line}\n`), err: (line) => process.stderr.write(`${line}\n`) }, context);
  } finally {
    await store.close();
  }
  process.exit(status);
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`postroom cli: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
