/**
 * A real Dovecot 2.3 (Debian's dovecot-imapd) for tests: private config,
 * data and sockets in a fresh temp dir, random loopback ports, users in
 * per-user passwd files, maildirs owned by `vmail`. Needs root (Dovecot drops
 * privileges to dovecot/dovenull/vmail itself).
 *
 * Harness-side operations (append, appendMany) log in through a Dovecot
 * *master user* ("user*postroom-harness"), so they need no user password and
 * never show up in loginAttempts(); mailbox surgery goes through doveadm,
 * which does no authentication at all.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import { ensureTestCertificates, type TestCertificates } from './certs';

export interface DovecotServer {
  host: string;            // '127.0.0.1'
  port: number;            // plain IMAP (STARTTLS offered)
  tlsPort: number;         // implicit TLS
  dir: string;
  logFile: string;
  addUser(email: string, password: string): Promise<void>;
  setPassword(email: string, password: string): Promise<void>;
  /**
   * Break (or mend) the user's passdb lookup the way a failing auth backend
   * does: Dovecot then answers every login of that user, right password or
   * not, with `NO [UNAVAILABLE] Temporary authentication failure` (RFC 5530).
   */
  failAuth(email: string, failing: boolean): Promise<void>;
  append(email: string, folder: string, raw: Buffer | string, opts?: { date?: Date; flags?: string[] }): Promise<number>;
  appendMany(email: string, folder: string, messages: Array<{ raw: Buffer | string; date?: Date }>): Promise<void>;
  recreateMailbox(email: string, folder: string): Promise<void>;
  /**
   * Copy the user's INBOX as it is now; calling the answer puts that copy
   * back, as a provider restoring a backup does: same UIDVALIDITY, UIDs and
   * UIDNEXT of the time of the copy, so later mail reuses UIDs already seen.
   */
  backupInbox(email: string): Promise<() => Promise<void>>;
  /**
   * Take away (or give back) the server's own access to a folder's files, as
   * a botched migration or restore does: the user still logs in, but
   * EXAMINE of that folder answers NO [SERVERBUG].
   */
  setFolderReadable(email: string, folder: string, readable: boolean): Promise<void>;
  /**
   * Make one stored message unreadable to Dovecot (or readable again): its
   * mail file loses its permissions, as a corrupt or half-restored mail
   * store does. Dovecot then answers a FETCH of it without the content and
   * closes the connection ("FETCH failed: Internal error").
   */
  setMessageReadable(email: string, folder: string, uid: number, readable: boolean): Promise<void>;
  loginAttempts(email: string): Promise<number>;
  stop(): Promise<void>;
  start(): Promise<void>;
  clientOptions(email: string, password: string): {
    host: string; port: number; secure: boolean; auth: { user: string; pass: string };
  };
}

export interface StartDovecotOptions {
  /** email -> password, written before Dovecot starts. */
  users?: Record<string, string>;
  /**
   * Also accept OAuth2 bearer tokens (SASL XOAUTH2 / OAUTHBEARER, RFC 7628),
   * validated by POSTing them to an RFC 7662 introspection endpoint (Dovecot
   * 2.3 `oauth2` passdb). Password logins are unchanged.
   */
  oauth2?: DovecotOAuth2Options;
  /**
   * A server unlike the default one, as hosting providers run them: the
   * personal namespace's prefix and hierarchy separator (Courier and many
   * hosting Dovecots: prefix "INBOX.", separator "."; RFC 2342), no
   * \Sent special-use flag on the Sent folder, and the capabilities it
   * announces after login (Dovecot's imap_capability, e.g. "IMAP4rev1
   * LITERAL+" for a server without CONDSTORE, QRESYNC, ESEARCH, IDLE,
   * SPECIAL-USE or LIST-STATUS).
   */
  variant?: DovecotVariant;
}

export interface DovecotVariant {
  namespacePrefix?: string;
  separator?: string;
  /** false: the Sent folder carries no \Sent flag (it is still auto-created). */
  sentSpecialUse?: boolean;
  /** false: no Sent folder is created for the user (folders come from IMAP CREATE only). */
  sentFolder?: boolean;
  /** Dovecot's imap_capability: the whole list the server announces once logged in. */
  imapCapability?: string;
  /** Dovecot's imap_max_line_length (default 64k): longer commands are refused with "Too long argument". */
  maxLineLength?: string;
}

export interface DovecotOAuth2Options {
  /** The authorisation server's introspection endpoint (https; trusted through the test CA). */
  introspectionUrl: string;
  /** Resource-server credentials for the introspection endpoint (HTTP Basic). */
  clientId?: string;
  clientSecret?: string;
  /** Introspection field that must equal the login name (default 'username'). */
  usernameAttribute?: string;
  /** Field and value that mark a token active (default active = true). */
  activeAttribute?: string;
  activeValue?: string;
  /** SASL mechanisms to offer (default both; imapflow prefers OAUTHBEARER when offered). */
  mechanisms?: Array<'xoauth2' | 'oauthbearer'>;
}

const HOST = '127.0.0.1';
const MASTER_USER = 'postroom-harness';
const run = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- system setup

function ensureVmailUser(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('startDovecot() must run as root: Dovecot switches to the dovecot/dovenull/vmail users itself');
  }
  const exists = (db: string) => {
    try { execFileSync('getent', [db, 'vmail'], { stdio: 'ignore' }); return true; } catch { return false; }
  };
  if (exists('passwd')) return;
  const group = exists('group') ? ['--gid', 'vmail'] : ['--user-group'];
  execFileSync('useradd', ['--system', ...group, '--no-create-home', '--home-dir', '/nonexistent',
    '--shell', '/usr/sbin/nologin', 'vmail'], { stdio: 'pipe' });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Is something LISTENing on 127.0.0.1:port? Read from /proc/net/tcp rather
 * than probed with connect(): every probe connection makes Dovecot fork an
 * imap-login process, and one still initialising when stop() arrives holds
 * the master's shutdown for 5 s.
 */
function listening(port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return fs.readFileSync('/proc/net/tcp', 'utf8').split('\n')
    .some((line) => { const f = line.trim().split(/\s+/); return f[1] === local && f[3] === '0A'; });
}

/** PIDs of all live descendants of `pid` (from /proc), so stop() can prove none outlive it. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch { /* exited meanwhile */ }
  }
  const out: number[] = [];
  for (let queue = [pid]; queue.length > 0;) {
    const kids = children.get(queue.shift() as number) ?? [];
    out.push(...kids);
    queue.push(...kids);
  }
  return out;
}

/** Alive = exists and is not a zombie (PID 1 in containers may never reap orphans). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function cmdline(pid: number): string {
  try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim(); } catch { return ''; }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try { process.kill(pid, sig); } catch { /* already gone */ }
}

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
}

// ---------------------------------------------------------------- config

function renderOAuth2(dir: string, oauth2: DovecotOAuth2Options, caFile: string): { mechanisms: string; passdb: string; ext: string } {
  const mechanisms = (oauth2.mechanisms ?? ['xoauth2', 'oauthbearer']).join(' ');
  const url = new URL(oauth2.introspectionUrl);
  if (oauth2.clientId) url.username = encodeURIComponent(oauth2.clientId);
  if (oauth2.clientSecret) url.password = encodeURIComponent(oauth2.clientSecret);
  return {
    mechanisms,
    // First among the user passdbs and limited to the OAuth mechanisms;
    // return-fail: a refused token is not then tried as a password.
    passdb: `passdb {
  driver = oauth2
  mechanisms = ${mechanisms}
  args = ${dir}/dovecot-oauth2.conf.ext
  result_failure = return-fail
}
`,
    ext: `# Generated by tests/support/dovecot.ts (Dovecot 2.3 oauth2 passdb)
introspection_mode = post
introspection_url = ${url.href}
force_introspection = yes
username_attribute = ${oauth2.usernameAttribute ?? 'username'}
active_attribute = ${oauth2.activeAttribute ?? 'active'}
active_value = ${oauth2.activeValue ?? 'true'}
tls_ca_cert_file = ${caFile}
`,
  };
}

function renderConfig(dir: string, port: number, tlsPort: number, masterUsers: string, oauth2?: { mechanisms: string; passdb: string }, variant: DovecotVariant = {}): string {
  const prefix = variant.namespacePrefix ?? '';
  return `# Generated by tests/support/dovecot.ts
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = postroom-test-${path.basename(dir)}
log_path = ${dir}/dovecot.log
protocols = imap
listen = ${HOST}
ssl = yes
ssl_cert = <${dir}/cert.pem
ssl_key = <${dir}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login${oauth2 ? ` ${oauth2.mechanisms}` : ''}
# auth_debug logs one "Performing passdb lookup" line per login attempt,
# success or failure: loginAttempts() counts those.
auth_verbose = yes
auth_debug = yes
# 2.3.19 still answers failures on its 500 ms tick, but without extra delay.
auth_failure_delay = 0
auth_master_user_separator = *
# Tests open many connections per user from one IP (default limit is 10).
mail_max_userip_connections = 1000
# Throwaway data: skipping fsync makes APPEND ~10x faster.
mail_fsync = never
# No stats process connections: a login process still handshaking with the
# stats writer at shutdown holds the master for 5 s.
stats_writer_socket_path =

passdb {
  driver = passwd-file
  master = yes
  args = scheme=PLAIN username_format=%u ${masterUsers}
}
${oauth2?.passdb ?? ''}# One file per user: a new file is read on first lookup, so addUser() takes
# effect at once (Dovecot re-stats a known file at most once per second).
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd.d/%u
}
# allow_all_users: doveadm's user lookups need no passdb round trip.
userdb {
  driver = static
  args = uid=vmail gid=vmail home=${dir}/mail/%u allow_all_users=yes
}
mail_location = maildir:~/Maildir
${variant.imapCapability ? `imap_capability = ${variant.imapCapability}\n` : ''}${variant.maxLineLength ? `imap_max_line_length = ${variant.maxLineLength}\n` : ''}namespace inbox {
  inbox = yes
  separator = ${variant.separator ?? '/'}
${prefix ? `  prefix = ${prefix}\n` : ''}${variant.sentFolder === false ? '' : `  mailbox Sent {
${variant.sentSpecialUse === false ? '' : '    special_use = \\Sent\n'}    auto = subscribe
  }
`}}
service imap-login {
  inet_listener imap {
    address = ${HOST}
    port = ${port}
  }
  inet_listener imaps {
    address = ${HOST}
    port = ${tlsPort}
    ssl = yes
  }
}
# Disable anvil's auth penalty (up to 15 s per login after a few failures
# from one IP), which auth_failure_delay does not cover. The stale socket of
# a previous run must be removed before each start (see start()).
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`;
}

// ---------------------------------------------------------------- validation

function normalizeUser(email: string): string {
  // auth_username_format defaults to %Lu: Dovecot lowercases before lookups.
  const user = email.toLowerCase();
  if (!/^[^\s:/*%\\]+$/.test(user)) throw new Error(`unsupported test user name: ${JSON.stringify(email)}`);
  return user;
}

function imapQuote(s: string): string {
  // Harness folder names are ASCII; non-ASCII would need modified UTF-7.
  if (!/^[\x20-\x7e]+$/.test(s)) throw new Error(`appendMany: folder must be printable ASCII: ${JSON.stringify(s)}`);
  return `"${s.replace(/[\\"]/g, (c) => '\\' + c)}"`;
}

function imapDate(d: Date): string {
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (n: number) => String(n).padStart(2, '0');
  return `"${p(d.getUTCDate())}-${months[d.getUTCMonth()]}-${d.getUTCFullYear()} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000"`;
}

// ---------------------------------------------------------------- the server

const instances = new Set<Dovecot>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: signal the masters (they take their
  // children down with them) and drop the data dirs.
  const killAll = () => { for (const server of instances) server.killSync(); };
  process.on('exit', killAll);
  // A fatal signal skips 'exit' handlers (e.g. a CI timeout's SIGTERM). Clean
  // up, then re-raise it unless someone else (mocha on SIGINT) handles it.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAll();
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

class Dovecot implements DovecotServer {
  readonly host = HOST;
  readonly logFile: string;
  private readonly conf: string;
  private readonly masterPass = crypto.randomBytes(12).toString('hex');
  private readonly ca: Buffer;
  private readonly users = new Map<string, number>(); // user -> last mtime stamp (s)
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | undefined;
  private markers = 0;

  private readonly oauth2: { mechanisms: string; passdb: string } | undefined;

  constructor(readonly dir: string, public port: number, public tlsPort: number, certs: TestCertificates, oauth2?: DovecotOAuth2Options, private readonly variant: DovecotVariant = {}) {
    this.logFile = path.join(dir, 'dovecot.log');
    this.conf = path.join(dir, 'dovecot.conf');
    this.ca = fs.readFileSync(certs.caFile);
    fs.copyFileSync(certs.certFile, path.join(dir, 'cert.pem'));
    fs.copyFileSync(certs.keyFile, path.join(dir, 'key.pem'));
    for (const sub of ['run', 'state', 'passwd.d']) fs.mkdirSync(path.join(dir, sub), { mode: 0o755 });
    fs.mkdirSync(path.join(dir, 'mail'), { mode: 0o700 });
    execFileSync('chown', ['vmail:vmail', path.join(dir, 'mail')]);
    const masterUsers = path.join(dir, 'master-users');
    fs.writeFileSync(masterUsers, `${MASTER_USER}:{PLAIN}${this.masterPass}\n`, { mode: 0o644 });
    if (oauth2) {
      const rendered = renderOAuth2(dir, oauth2, certs.caFile);
      // Read by the auth process (user dovecot); holds only throwaway test credentials.
      fs.writeFileSync(path.join(dir, 'dovecot-oauth2.conf.ext'), rendered.ext, { mode: 0o644 });
      this.oauth2 = rendered;
    }
    this.writeConfig();
  }

  /** Only before the first successful start (startDovecot's port-race retry). */
  setPorts(port: number, tlsPort: number): void {
    this.port = port;
    this.tlsPort = tlsPort;
    this.writeConfig();
  }

  private writeConfig(): void {
    fs.writeFileSync(this.conf, renderConfig(this.dir, this.port, this.tlsPort, path.join(this.dir, 'master-users'), this.oauth2, this.variant));
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  // ---- lifecycle

  async start(): Promise<void> {
    if (this.stopping) await this.stopping;
    if (this.child) return;
    // Stale from the previous run; if present, auth retries connecting to it for 5 s.
    fs.rmSync(path.join(this.dir, 'run', 'anvil-auth-penalty'), { force: true });
    const stderrFile = path.join(this.dir, 'dovecot.stderr');
    const stderr = fs.openSync(stderrFile, 'w');
    // -F keeps the master as our child: we get its exit event and reap it.
    const child = spawn('dovecot', ['-F', '-c', this.conf], { stdio: ['ignore', 'ignore', stderr] });
    fs.closeSync(stderr);
    child.unref(); // an un-stopped server must not keep mocha alive; the exit hook kills it
    this.child = child;
    let dead = false;
    let spawnError = '';
    this.exited = new Promise((resolve) => child.once('exit', () => {
      dead = true;
      if (this.child === child) this.child = undefined; // crashed or killed behind our back
      resolve();
    }));
    child.once('error', (err) => { dead = true; spawnError = err.message; });
    const up = await waitUntil(() => dead || (listening(this.port) && listening(this.tlsPort)), 10_000);
    if (dead || !up) {
      this.child = undefined;
      if (!dead) child.kill('SIGKILL');
      const log = fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-15).join('\n') : '';
      throw new Error(`Dovecot did not start (${this.conf}): ${spawnError}\n${fs.readFileSync(stderrFile, 'utf8')}\n${log}`);
    }
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop().finally(() => { this.stopping = undefined; });
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined) return;
    const pid = child.pid;
    const kids = new Set(descendants(pid)); // once the master is gone they are no longer findable
    const masterGone = () => child.exitCode !== null || child.signalCode !== null;
    child.ref(); // start() unref'd it; while we wait for its exit, it must keep the loop alive
    // SIGTERM to the master is what `doveadm stop` does (via master.pid);
    // the master then stops its children and lingers ~1 s by design.
    child.kill('SIGTERM');
    if (!(await waitUntil(masterGone, 1_500))) {
      // The master waits up to 5 s more for children that were mid-startup
      // or serving a client when it was told to stop. Cut that short: kill
      // everything but the log process (it exits on its own once the master
      // is gone, after writing what it was sent), then the master.
      for (const k of descendants(pid)) {
        kids.add(k);
        if (!cmdline(k).endsWith('/log')) signal(k, 'SIGKILL');
      }
      child.kill('SIGKILL');
    }
    await this.exited;
    if (!(await waitUntil(() => [...kids].every((k) => !alive(k)), 5_000))) {
      for (const k of [...kids].filter(alive)) signal(k, 'SIGKILL');
    }
    this.child = undefined;
    const closed = await waitUntil(() => !listening(this.port) && !listening(this.tlsPort), 5_000);
    if (!closed) throw new Error(`Dovecot stopped but ports ${this.port}/${this.tlsPort} still accept connections`);
  }

  /** For the process 'exit' hook only. */
  killSync(): void {
    if (this.child?.pid !== undefined) {
      try { process.kill(this.child.pid, 'SIGTERM'); } catch { /* already gone */ }
    }
    this.child = undefined;
    if (!process.env.POSTROOM_TEST_KEEP_TMP) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  // ---- users

  private passwdFile(user: string): string {
    return path.join(this.dir, 'passwd.d', user);
  }

  private writeUser(user: string, password: string): void {
    // PLAIN.b64 lets passwords contain ':' or any other byte.
    const line = `${user}:{PLAIN.b64}${Buffer.from(password).toString('base64')}\n`;
    const file = this.passwdFile(user);
    fs.writeFileSync(`${file}.tmp`, line, { mode: 0o644 });
    // A strictly increasing mtime guarantees Dovecot sees a change even when
    // the size is unchanged and the rewrite falls in the same second.
    const stamp = Math.max(Math.floor(Date.now() / 1000), (this.users.get(user) ?? 0) + 1);
    fs.utimesSync(`${file}.tmp`, stamp, stamp);
    fs.renameSync(`${file}.tmp`, file);
    this.users.set(user, stamp);
  }

  async addUser(email: string, password: string): Promise<void> {
    const user = normalizeUser(email);
    if (this.users.has(user)) return this.setPassword(email, password);
    this.writeUser(user, password);
  }

  async setPassword(email: string, password: string): Promise<void> {
    const user = normalizeUser(email);
    if (!this.users.has(user)) throw new Error(`setPassword: unknown user ${email} (addUser first)`);
    this.writeUser(user, password);
    // Dovecot stats an already-loaded passwd file at most once per second
    // (per auth process clock second); after the next second begins, the
    // next lookup is guaranteed to re-read it.
    await sleep(1000 - (Date.now() % 1000) + 20);
  }

  async failAuth(email: string, failing: boolean): Promise<void> {
    const user = this.requireUser(email);
    const file = this.passwdFile(user);
    // The auth process runs as 'dovecot': a file it cannot open is an internal passdb error
    // (code=temp_fail), not an unknown user. A new mtime makes Dovecot open it again.
    fs.chmodSync(file, failing ? 0o000 : 0o644);
    const stamp = Math.max(Math.floor(Date.now() / 1000), (this.users.get(user) ?? 0) + 1);
    fs.utimesSync(file, stamp, stamp);
    this.users.set(user, stamp);
    await sleep(1000 - (Date.now() % 1000) + 20);
  }

  private requireUser(email: string): string {
    const user = normalizeUser(email);
    if (!this.users.has(user)) throw new Error(`unknown test user ${email} (addUser first)`);
    return user;
  }

  clientOptions(email: string, password: string) {
    return { host: this.host, port: this.tlsPort, secure: true, auth: { user: email, pass: password } };
  }

  // ---- mail

  private harnessClient(user: string): ImapFlow {
    // Explicit CA: harness plumbing works even where NODE_EXTRA_CA_CERTS is unset.
    return new ImapFlow({
      host: this.host, port: this.tlsPort, secure: true, logger: false,
      auth: { user: `${user}*${MASTER_USER}`, pass: this.masterPass },
      tls: { ca: this.ca },
    });
  }

  async append(email: string, folder: string, raw: Buffer | string, opts: { date?: Date; flags?: string[] } = {}): Promise<number> {
    const client = this.harnessClient(this.requireUser(email));
    await client.connect();
    try {
      const once = () => client.append(folder, raw, opts.flags ?? [], opts.date);
      let res: Awaited<ReturnType<typeof once>>;
      try {
        res = await once();
      } catch (err) {
        if ((err as { serverResponseCode?: string }).serverResponseCode !== 'TRYCREATE') throw err;
        await client.mailboxCreate(folder);
        res = await once();
      }
      if (!res || typeof res.uid !== 'number') throw new Error(`APPEND to ${folder} returned no UID`);
      return res.uid;
    } finally {
      await client.logout().catch(() => undefined);
    }
  }

  /**
   * One TLS connection, MULTIAPPEND with LITERAL+ (no round trip per
   * message): ~5000 small messages in about half a second. imapflow has no
   * MULTIAPPEND and sends one APPEND per round trip.
   */
  async appendMany(email: string, folder: string, messages: Array<{ raw: Buffer | string; date?: Date }>): Promise<void> {
    const user = this.requireUser(email);
    const mailbox = imapQuote(folder);
    const conn = await ImapLine.connect(this.host, this.tlsPort, this.ca);
    try {
      const sasl = Buffer.from(`\0${user}*${MASTER_USER}\0${this.masterPass}`).toString('base64');
      await conn.command(`AUTHENTICATE PLAIN ${sasl}`);
      const BATCH = 500; // bounds the size of one command
      let created = false;
      for (let i = 0; i < messages.length;) {
        const parts: Buffer[] = [Buffer.from(`APPEND ${mailbox}`)];
        for (const m of messages.slice(i, i + BATCH)) {
          const raw = Buffer.isBuffer(m.raw) ? m.raw : Buffer.from(m.raw);
          parts.push(Buffer.from(`${m.date ? ' ' + imapDate(m.date) : ''} {${raw.length}+}\r\n`), raw);
        }
        const status = await conn.command(Buffer.concat(parts), true);
        if (/^\S+ OK/.test(status)) {
          i += BATCH;
        } else if (/\[TRYCREATE\]/.test(status) && !created) {
          created = true; // a missing folder is created once, then the batch retried
          await conn.command(`CREATE ${mailbox}`);
          await conn.command(`SUBSCRIBE ${mailbox}`);
        } else {
          throw new Error(`appendMany to ${folder} failed: ${status}`);
        }
      }
      await conn.command('LOGOUT').catch(() => undefined);
    } finally {
      conn.close();
    }
  }

  private doveadm(args: string[]): Promise<{ stdout: string; stderr: string }> {
    return run('doveadm', ['-c', this.conf, ...args]);
  }

  async setMessageReadable(email: string, folder: string, uid: number, readable: boolean): Promise<void> {
    const user = this.requireUser(email);
    const dir = (await this.doveadm(['mailbox', 'path', '-u', user, folder])).stdout.trim();
    // Maildir: dovecot-uidlist maps "UID [extensions] :base-name"; the file is new/ or cur/ base-name[:2,flags].
    // The first line is the header ("3 V<uidvalidity> N<next>…"), not a message.
    const line = fs.readFileSync(path.join(dir, 'dovecot-uidlist'), 'utf8').split('\n').slice(1).find((l) => l.startsWith(`${uid} `));
    if (!line) throw new Error(`setMessageReadable: no UID ${uid} in ${folder} of ${user}`);
    const base = line.slice(line.indexOf(':') + 1);
    const file = ['new', 'cur'].flatMap((sub) => fs.readdirSync(path.join(dir, sub)).filter((name) => name.split(':')[0] === base).map((name) => path.join(dir, sub, name)))[0];
    if (!file) throw new Error(`setMessageReadable: the mail file of UID ${uid} is gone`);
    fs.chmodSync(file, readable ? 0o600 : 0o000);
  }

  async backupInbox(email: string): Promise<() => Promise<void>> {
    const user = this.requireUser(email);
    const maildir = path.join(this.dir, 'mail', user, 'Maildir');
    const backup = fs.mkdtempSync(path.join(this.dir, 'backup-'));
    const inboxFiles = (dir: string) => fs.readdirSync(dir).filter((f) => ['cur', 'new', 'tmp', 'dovecot-uidlist'].includes(f) || f.startsWith('dovecot.index'));
    for (const f of inboxFiles(maildir)) fs.cpSync(path.join(maildir, f), path.join(backup, f), { recursive: true, preserveTimestamps: true });
    return async () => {
      await this.kickSessions(user);
      for (const f of inboxFiles(maildir)) fs.rmSync(path.join(maildir, f), { recursive: true, force: true });
      // The folder-list cache also caches INBOX's STATUS.
      for (const f of fs.readdirSync(maildir)) if (f.startsWith('dovecot.list.index')) fs.rmSync(path.join(maildir, f), { force: true });
      for (const f of fs.readdirSync(backup)) fs.cpSync(path.join(backup, f), path.join(maildir, f), { recursive: true, preserveTimestamps: true });
      execFileSync('chown', ['-R', 'vmail:vmail', maildir]);
    };
  }

  async setFolderReadable(email: string, folder: string, readable: boolean): Promise<void> {
    const user = this.requireUser(email);
    const dir = (await this.doveadm(['mailbox', 'path', '-u', user, folder])).stdout.trim();
    for (const sub of ['cur', 'new']) fs.chmodSync(path.join(dir, sub), readable ? 0o700 : 0o000);
  }

  async recreateMailbox(email: string, folder: string): Promise<void> {
    const user = this.requireUser(email);
    if (folder.toUpperCase() === 'INBOX') return this.resetInbox(user);
    await this.doveadm(['mailbox', 'delete', '-u', user, folder]).catch((err: { stderr?: string }) => {
      if (!/doesn't exist/.test(err.stderr ?? '')) throw err;
    });
    await this.doveadm(['mailbox', 'create', '-s', '-u', user, folder]);
  }

  /**
   * IMAP cannot delete INBOX, so rebuild it on disk the way a restored
   * server would: drop its messages, uidlist and indexes. Dovecot then
   * assigns the next UIDVALIDITY from the per-user counter and UIDs restart
   * at 1. The user's open sessions are kicked first (as a server does when
   * it rebuilds a mailbox): a live session would otherwise keep the old
   * index and answer NO [SERVERBUG].
   */
  private async resetInbox(user: string): Promise<void> {
    const maildir = path.join(this.dir, 'mail', user, 'Maildir');
    if (!fs.existsSync(maildir)) return; // never used: it will be created fresh
    await this.kickSessions(user);
    for (const sub of ['cur', 'new', 'tmp']) {
      const d = path.join(maildir, sub);
      if (!fs.existsSync(d)) continue;
      for (const f of fs.readdirSync(d)) fs.rmSync(path.join(d, f), { force: true });
    }
    for (const f of fs.readdirSync(maildir)) {
      // dovecot.list.index* is the folder-list cache, which also caches INBOX's STATUS.
      if (f === 'dovecot-uidlist' || f.startsWith('dovecot.index') || f.startsWith('dovecot.list.index')) {
        fs.rmSync(path.join(maildir, f), { force: true });
      }
    }
  }

  /** End the user's open sessions, as a server does when it rebuilds a mailbox (a live one would keep the old index). */
  private async kickSessions(user: string): Promise<void> {
    if (!this.running) return;
    const { stdout } = await this.doveadm(['who', '-1', user]);
    // "username proto pid ip" lines after a header
    const pids = stdout.split('\n').slice(1).map((l) => Number(l.trim().split(/\s+/)[2])).filter((n) => n > 0);
    if (pids.length === 0) return;
    await this.doveadm(['kick', user]);
    if (!(await waitUntil(() => pids.every((p) => !alive(p)), 5_000))) {
      throw new Error(`sessions of ${user} did not exit after doveadm kick`);
    }
  }

  // ---- auth log

  /**
   * Counts passdb lookups for `email` made by network clients (IMAP LOGIN /
   * AUTHENTICATE, success or failure). Harness logins use the master user and
   * doveadm lookups carry no remote IP, so neither is counted. Before
   * counting, a doveadm userdb lookup is sent through the same auth process
   * and awaited in the log: auth logs in order, so every earlier attempt is
   * in the file by then.
   */
  async loginAttempts(email: string): Promise<number> {
    const user = normalizeUser(email);
    if (this.running) {
      const marker = `flush-${++this.markers}@marker.invalid`;
      await this.doveadm(['user', marker]);
      const needle = `static(${marker}): Performing userdb lookup`;
      const seen = await waitUntil(() => fs.readFileSync(this.logFile, 'utf8').includes(needle), 5_000);
      if (!seen) throw new Error(`auth log marker did not appear in ${this.logFile}`);
    }
    const esc = user.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const re = new RegExp(`auth: Debug: passwd-file\\(${esc},[^,)]+,[^)]*\\): Performing passdb lookup`, 'g');
    return (fs.readFileSync(this.logFile, 'utf8').match(re) ?? []).length;
  }
}

/** Minimal tagged-command IMAP connection for the bulk path. */
class ImapLine {
  private buf = '';
  private tag = 0;
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;

  private constructor(private readonly sock: tls.TLSSocket) {
    sock.on('data', (d: Buffer) => { this.buf += d.toString('latin1'); this.waiter?.(); });
    const fail = (err: Error) => { this.failure = err; this.waiter?.(); };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('IMAP connection closed')));
  }

  static async connect(host: string, port: number, ca: Buffer): Promise<ImapLine> {
    const sock = tls.connect({ host, port, ca });
    const conn = new ImapLine(sock);
    await conn.until(/^\* OK.*\r\n/m);
    return conn;
  }

  private async until(re: RegExp): Promise<RegExpMatchArray> {
    for (;;) {
      const m = this.buf.match(re);
      if (m) return m;
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => { this.waiter = resolve; });
      this.waiter = undefined;
    }
  }

  /** Sends a command; resolves with the tagged status line; throws on BAD, or on NO unless allowNo. */
  async command(cmd: string | Buffer, allowNo = false): Promise<string> {
    const tag = `h${++this.tag}`;
    this.buf = '';
    this.sock.write(Buffer.concat([Buffer.from(`${tag} `), Buffer.from(cmd), Buffer.from('\r\n')]));
    const line = (await this.until(new RegExp(`^${tag} (OK|NO|BAD)[^\\r]*`, 'm')))[0];
    if (!line.startsWith(`${tag} OK`) && !(allowNo && line.startsWith(`${tag} NO`))) {
      const shown = typeof cmd === 'string' ? cmd.split(' ')[0] : 'APPEND';
      throw new Error(`IMAP ${shown} failed: ${line}`);
    }
    return line;
  }

  close(): void {
    this.sock.destroy();
  }
}

export async function startDovecot(opts: StartDovecotOptions = {}): Promise<DovecotServer> {
  const certs = ensureTestCertificates();
  ensureVmailUser();
  installExitHook();
  const [port, tlsPort] = [await freePort(), await freePort()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-dovecot-'));
  fs.chmodSync(dir, 0o755); // auth and imap run as dovecot/vmail and must traverse it
  const server = new Dovecot(dir, port, tlsPort, certs, opts.oauth2, opts.variant);
  instances.add(server);
  for (const [email, password] of Object.entries(opts.users ?? {})) await server.addUser(email, password);
  // freePort() closes its probe socket before Dovecot binds: retry on a lost race.
  for (let attempt = 1; ; attempt++) {
    try {
      await server.start();
      return server;
    } catch (err) {
      if (attempt >= 3 || !/Address already in use/.test(String(err))) throw err;
      server.setPorts(await freePort(), await freePort());
    }
  }
}
