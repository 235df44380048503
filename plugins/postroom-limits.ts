import DSN from 'haraka-dsn';
import * as constants from 'haraka-constants';
import { throttleIpKey } from '../gateway/accounts/login-throttle';
import { AppError } from '../gateway/core/errors';
import type { HarakaAddress, HarakaConnection, HarakaMessageStream, HarakaParams, HarakaPlugin, Next } from './haraka-types';
import { checkMailParams } from './mail-params';
import { enhancedCodeOf, logRefusal } from './refusal-log';
import { gatewayRuntime } from './runtime';
import { countTransaction } from './smtp-metrics';
import { smtpReply } from './smtp-reply';

/**
 * Connection-level limits (CONNECT, MAIL, DATA, end of DATA):
 *
 * - at most SMTP_MAX_CONNECTIONS sessions at once; more get
 *   `421 4.3.2` (RFC 5321 §3.8) and come back later; and at most
 *   SMTP_MAX_CONNECTIONS_PER_CLIENT of them from one address (an IPv6 /64,
 *   which one host may use whole), so one client holding idle or slow
 *   sessions cannot take every slot from the senders that matter: more get
 *   `421 4.7.0` (Postfix's smtpd_client_connection_count_limit). A client
 *   knocking again and again leaves one log line a minute, with the count;

 * - the size limit (connection.ini [max] bytes = SMTP_MAX_MESSAGE_SIZE, also
 *   advertised as `SIZE n`, RFC 1870). Haraka refuses oversize mail itself
 *   but answers a bare "550 Message too big!"; RFC 1870 §6.1 and RFC 3463
 *   ask for `552 5.3.4`, so this plugin installs those two replies on each
 *   connection (Haraka dispatches commands and hook replies through the
 *   connection object, so an own property replaces the reply without
 *   touching Haraka's code);
 * - MAIL FROM parameters: only those of advertised extensions, with valid
 *   values (mail-params.ts; 501 / 555 5.5.4, 553 5.6.7);
 * - bare line feeds in DATA. RFC 5321 §2.3.8 forbids them, and an LF that
 *   one hop reads as a line end and another does not is how SMTP smuggling
 *   works (CVE-2023-51764/51765). Haraka answers `451` and hangs up at once,
 *   so a sender retries the same bytes forever, or gets a reset instead of
 *   the reply while it is still writing. Postroom refuses them permanently,
 *   as Postfix's smtpd_forbid_bare_newline does: the rest of the data is
 *   read and dropped (the way Haraka treats an oversize message), and at the
 *   sender's end of data it answers `554 5.5.2` and disconnects, so nothing
 *   after an ambiguous end of data is ever run as a command;
 * - mail loops: more than 100 Received fields (RFC 5321 §6.3) get
 *   `554 5.4.6` (RFC 3463: routing loop detected). Haraka's own check
 *   answers a bare 550, so its limit is set out of reach (instance.ts) and
 *   counted here instead.
 *
 * - sessions that keep making errors (a dictionary attack guessing
 *   forwarding addresses, a client ignoring every refusal, more than
 *   JUNK_COMMAND_LIMIT NOOP/RSET/VRFY… without delivering mail, more than
 *   RECIPIENT_OVERSHOOT_LIMIT recipients past the limit): from the
 *   SOFT_ERROR_LIMIT-th error on each refusal is held back (errorDelayMs, a
 *   tarpit), and the command after the HARD_ERROR_LIMIT-th error gets
 *   `421 4.7.0` and the connection is closed, as Postfix does.
 *
 * - slow clients: Haraka's inactivity timeout (5 minutes) starts again at
 *   every byte, so a client sending one byte every few minutes, or one
 *   short line after another, held its session (and its slot) for ever.
 *   A line must be complete within 5 minutes of the last reply or line
 *   (as Exim's smtp_receive_timeout counts), and a message within 30
 *   minutes of the 354 reply (50 MB at 250 kbit/s); past either the client
 *   gets `421 4.4.2` and the connection is closed, logged once.
 *
 * Every refusal of MAIL is logged once at info (refusal-log.ts).
 *
 * ENHANCEDSTATUSCODES (RFC 2034) is deliberately not advertised although
 * Postroom's own 4xx/5xx replies carry enhanced codes: once it is
 * advertised, every reply but the greeting and the EHLO/HELO answer must
 * carry one (RFC 2034 §3), and Haraka's own replies do not — "250 sender
 * <a@b> OK", "250 recipient <x> OK", "503 MAIL required first",
 * "500 Unrecognized command", its 501 parse errors and 555 after HELO.
 * Advertising it would promise what half the replies break; it can be
 * added (hook_capabilities) once those replies are all replaced.
 */

/** RFC 5321 §6.3: servers counting Received fields SHOULD use a threshold of at least 100. */
export const MAX_RECEIVED = 100;

export function mailLoopError(received: number): AppError {
  return new AppError('MAIL_LOOP', `Too many Received headers (${received}, limit ${MAX_RECEIVED}): mail loop detected`, { smtpCode: 554, enhancedCode: '5.4.6' });
}

export function bareLineFeedError(): AppError {
  return new AppError('BARE_LINE_FEED', 'Bare line feed in message data; lines must end with CRLF (RFC 5321 section 2.3.8)', { smtpCode: 554, enhancedCode: '5.5.2' });
}

/**
 * Errors a session may make (Postfix's smtpd_soft_error_limit and
 * smtpd_hard_error_limit, with their defaults). Counted in Haraka's
 * `connection.errors`: commands out of sequence, unparseable or unknown
 * (Haraka's 500/501/503), refused senders (hook_mail) and recipients
 * refused permanently (postroom-rcpt). Temporary refusals are not the
 * client's fault and do not count: `452` too many recipients (an MTA that
 * pipelines 100 recipients into a limit of 50 must still deliver the
 * first 50) and `451` when the store is down.
 */
export const SOFT_ERROR_LIMIT = 10;
export const HARD_ERROR_LIMIT = 20;

/**
 * Commands that do nothing for delivery (Postfix's smtpd_junk_command_limit,
 * with its default): past this many in a session each one counts as an
 * error too, so a client cannot keep a session (and a core) busy with NOOP
 * or RSET for ever. Both counts start again when a message is delivered,
 * as in Postfix ("errors without delivering mail"): a sender that reuses
 * its session for hundreds of messages, with an RSET between each, is fine.
 */
export const JUNK_COMMAND_LIMIT = 100;
const JUNK_COMMANDS = new Set(['NOOP', 'RSET', 'VRFY', 'EXPN', 'HELP', 'ETRN']);

/**
 * Send a refusal, held back by errorDelayMs once the session has made more
 * than SOFT_ERROR_LIMIT errors: a guesser's next try waits, while the
 * gateway spends nothing (Haraka reads no command of this session until the
 * reply is sent).
 */
export function replyAfterErrorDelay(connection: HarakaConnection, reply: () => void): void {
  const delay = connection.errors > SOFT_ERROR_LIMIT ? gatewayRuntime().settings.errorDelayMs : 0;
  if (delay > 0) setTimeout(reply, delay);
  else reply();
}

export function tooManyErrors(): DSN {
  return DSN.create(421, 'Too many errors, closing connection', 7, 0);
}

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/** A line ending in LF without the CR before it (Haraka splits DATA after every LF). */
export function endsWithBareLf(line: Buffer): boolean {
  return line.length > 0 && line[line.length - 1] === LF && (line.length < 2 || line[line.length - 2] !== CR);
}

/** The end-of-data line: "." CRLF, or "." LF from a sender that uses bare LF throughout. */
function isEndOfData(line: Buffer): boolean {
  return line[0] === DOT && ((line.length === 3 && line[1] === CR && line[2] === LF) || (line.length === 2 && line[1] === LF));
}

let active = 0;
/** Open sessions per client network (throttleIpKey: the IPv4 address, or the IPv6 /64). */
const perClient = new Map<string, number>();

/** One line per client (or for the total limit) per minute, however fast refused connections come. */
const REFUSAL_LOG_INTERVAL_MS = 60_000;
const refusalLines = new Map<string, { at: number; since: number }>();

function logConnectionRefusal(key: string, fields: Record<string, unknown>, message: string): void {
  const now = Date.now();
  const last = refusalLines.get(key);
  if (last && now - last.at < REFUSAL_LOG_INTERVAL_MS) {
    last.since++;
    return;
  }
  // Bounded: entries older than the interval are of no use; drop them when many clients have knocked.
  if (refusalLines.size > 10_000) for (const [other, line] of refusalLines) if (now - line.at >= REFUSAL_LOG_INTERVAL_MS) refusalLines.delete(other);
  refusalLines.set(key, { at: now, since: 0 });
  gatewayRuntime().log.warn({ ...fields, refusedSinceLastLine: last?.since ?? 0 }, message);
}

export function register(this: HarakaPlugin): void {
  gatewayRuntime();
}

function tooBig(limit: number): DSN {
  return DSN.create(552, `Message size exceeds fixed maximum message size of ${limit} bytes`, 3, 4);
}

export function hook_connect_init(this: HarakaPlugin, next: Next, connection: HarakaConnection): void {
  const { settings, log } = gatewayRuntime();
  active++;
  const client = throttleIpKey(connection.remote.ip);
  perClient.set(client, (perClient.get(client) ?? 0) + 1);
  connection.client.once('close', () => {
    active--;
    const left = (perClient.get(client) ?? 1) - 1;
    if (left > 0) perClient.set(client, left);
    else perClient.delete(client);
  });

  const limit = settings.maxMessageSize;
  const haraka = Object.getPrototypeOf(connection) as HarakaConnection;
  connection.cmd_mail = function cmdMail(this: HarakaConnection, line: string) {
    // A whole SIZE=<digits> token; any other SIZE value reaches hook_mail and gets 501 there.
    const declared = /(?:^|\s)SIZE=(\d+)(?=\s|$)/i.exec(line);
    if (this.esmtp && declared && Number(declared[1]) > limit) {
      this.errors++;
      const dsn = tooBig(limit);
      // Refused before Haraka parses the line; the address is picked out for the log line only.
      logRefusal(this, dsn, { sender: /^FROM:\s*<([^>]*)>/i.exec(line)?.[1] ?? '', reason: 'declared size over the limit' });
      return this.respond(552, dsn);
    }
    return haraka.cmd_mail.call(this, line);
  };
  connection.max_data_exceeded_respond = function maxDataExceeded(this: HarakaConnection) {
    const dsn = tooBig(limit);
    log.info(
      { queueId: this.transaction?.uuid, remoteIp: this.remote.ip, helo: this.hello.host, size: this.transaction?.data_bytes, outcome: 'rejected', code: 552, enhancedCode: enhancedCodeOf(dsn) },
      'message over the size limit refused',
    );
    this.respond(552, dsn, () => this.reset_transaction());
  };
  // The deadlines of slow clients (see the top of this file): progress is a complete line or a reply.
  let lastProgressAt = Date.now();
  let dataStartedAt: number | null = null;
  let junkCommands = 0;
  connection.respond = function respond(this: HarakaConnection, code: number, message: string | DSN, after?: () => void) {
    lastProgressAt = Date.now();
    // 250 at the end of DATA: a message was delivered, and the session's errors are forgiven.
    if (dataStartedAt !== null && code === 250) {
      this.errors = 0;
      junkCommands = 0;
    }
    dataStartedAt = code === 354 ? lastProgressAt : null;
    return haraka.respond.call(this, code, message, after);
  };
  const { lineTimeoutMs, dataTimeoutMs } = settings;
  const { CMD, DATA } = constants.connection.state;
  const watchdog = setInterval(() => {
    // Only while the gateway waits for the client: not while a hook (the store) or a full spool holds it up.
    if (connection.state !== CMD && connection.state !== DATA) return;
    const now = Date.now();
    const lineLate = now - lastProgressAt > lineTimeoutMs;
    const dataLate = connection.state === DATA && dataStartedAt !== null && now - dataStartedAt > dataTimeoutMs;
    if (!lineLate && !dataLate) return;
    clearInterval(watchdog);
    const dsn = lineLate
      ? DSN.create(421, `Timeout: no complete line in ${Math.round(lineTimeoutMs / 1000)} s, closing connection`, 4, 2)
      : DSN.create(421, `Timeout: message not received within ${Math.round(dataTimeoutMs / 1000)} s, closing connection`, 4, 2);
    log.info(
      { queueId: connection.transaction?.uuid ?? connection.uuid, remoteIp: connection.remote.ip, helo: connection.hello.host, size: connection.transaction?.data_bytes, code: dsn.code, enhancedCode: enhancedCodeOf(dsn), reason: lineLate ? 'line timeout' : 'data timeout' },
      'slow client; closing connection',
    );
    connection.respond(dsn.code, dsn, () => connection.disconnect());
  }, Math.max(50, Math.min(lineTimeoutMs, dataTimeoutMs) / 10));
  watchdog.unref();
  connection.client.once('close', () => clearInterval(watchdog));

  connection.process_line = function processLine(this: HarakaConnection, line: Buffer) {
    lastProgressAt = Date.now();
    if (this.state === constants.connection.state.CMD && JUNK_COMMANDS.has(line.subarray(0, 4).toString('latin1').toUpperCase()) && ++junkCommands > JUNK_COMMAND_LIMIT) this.errors++;
    if (this.state !== constants.connection.state.CMD || this.errors < HARD_ERROR_LIMIT) return haraka.process_line.call(this, line);
    // Whatever else the client pipelined is dropped with this command (Haraka does the same for a command line too long).
    (this as HarakaConnection & { current_data: Buffer | null }).current_data = null;
    this.state = constants.connection.state.PAUSE_SMTP;
    const dsn = tooManyErrors();
    log.info({ queueId: this.transaction?.uuid ?? this.uuid, remoteIp: this.remote.ip, helo: this.hello.host, errors: this.errors, code: dsn.code, enhancedCode: enhancedCodeOf(dsn) }, 'too many errors; closing connection');
    this.respond(dsn.code, dsn, () => this.disconnect());
  };
  // Set when a bare LF arrives; the connection is closed at the end of that DATA, so one flag per connection suffices.
  let bareLf = false;
  connection.accumulate_data = function accumulateData(this: HarakaConnection, line: Buffer | string) {
    // Haraka feeds its own Received line as a string: always CRLF.
    if (typeof line === 'string') return haraka.accumulate_data.call(this, line);
    if (!bareLf && !endsWithBareLf(line)) return haraka.accumulate_data.call(this, line);
    bareLf = true;
    if (!isEndOfData(line)) return;
    const reply = smtpReply(bareLineFeedError());
    log.info({ queueId: this.transaction?.uuid, remoteIp: this.remote.ip, outcome: 'rejected', code: reply.code, enhancedCode: reply.enhancedCode }, 'bare line feed in DATA refused');
    countTransaction(reply.code, 'rejected', Date.now());
    this.respond(reply.code, reply.dsn, () => this.disconnect());
  };
  next();
}

/**
 * haraka-message-stream 2.0.8 can reopen its spool file after `destroy()`: a
 * client that hangs up while a message larger than spool_after is being
 * spooled leaves a write in flight, which opens the file again (flags `wx+`)
 * while the removal of the first is pending. That fails with EEXIST, and
 * Haraka logs the error at crit (level 60, fatal) for a connection already
 * gone: one alarm per dropped transfer. Errors of a stream already
 * destroyed concern nobody; the stream still removes whatever it opened.
 */
export function ignoreErrorsAfterDestroy(stream: HarakaMessageStream): void {
  let destroyed = false;
  const destroy = stream.destroy.bind(stream);
  const emit = stream.emit.bind(stream);
  stream.destroy = () => {
    destroyed = true;
    destroy();
  };
  stream.emit = (event: string | symbol, ...args: unknown[]) => (destroyed && event === 'error' ? false : emit(event, ...args));
}

/** MAIL FROM, as Haraka parsed it: refuse parameters this session did not advertise, or with bad values. */
export function hook_mail(this: HarakaPlugin, next: Next, connection: HarakaConnection, [from, params]: [HarakaAddress, HarakaParams]): void {
  // Haraka made the transaction (and its message stream) just before this hook.
  if (connection.transaction) ignoreErrorsAfterDestroy(connection.transaction.message_stream);
  const refusal = checkMailParams(from, params, connection.capabilities);
  if (!refusal) {
    // postroom-rcpt refuses non-ASCII recipients of a transaction without it (RFC 6531 §3.5).
    if (connection.transaction) connection.transaction.notes.smtputf8 = 'SMTPUTF8' in params;
    return next();
  }
  connection.errors++;
  logRefusal(connection, refusal.dsn, { sender: from.isNull() ? '' : from.address, reason: refusal.reason });
  replyAfterErrorDelay(connection, () => next(constants.deny, refusal.dsn));
}

export function hook_connect(this: HarakaPlugin, next: Next, connection: HarakaConnection): void {
  const { settings } = gatewayRuntime();
  if (active > settings.maxConnections) {
    logConnectionRefusal('', { remoteIp: connection.remote.ip, active, limit: settings.maxConnections }, 'connection limit reached; answering 421');
    return next(constants.denysoftdisconnect, DSN.create(421, 'Too many connections, try again later', 3, 2));
  }
  const client = throttleIpKey(connection.remote.ip);
  const fromClient = perClient.get(client) ?? 0;
  if (fromClient > settings.maxConnectionsPerClient) {
    logConnectionRefusal(client, { remoteIp: connection.remote.ip, client, open: fromClient - 1, limit: settings.maxConnectionsPerClient }, 'connection limit of one client reached; answering 421');
    return next(constants.denysoftdisconnect, DSN.create(421, 'Too many connections from your address, try again later', 7, 0));
  }
  next();
}

/** End of DATA, before postroom-store: refuse looping mail before any work is done for it. */
export function hook_data_post(this: HarakaPlugin, next: Next, connection: HarakaConnection): void {
  const txn = connection.transaction;
  if (!txn) return next();
  // Haraka's own Received line is among them, as it is for the next hop's count.
  const received = txn.header.get_all('Received').length;
  if (received <= MAX_RECEIVED) return next();
  const reply = smtpReply(mailLoopError(received));
  gatewayRuntime().log.info({ queueId: txn.uuid, remoteIp: connection.remote.ip, received, outcome: 'rejected', code: reply.code, enhancedCode: reply.enhancedCode }, 'mail loop refused');
  next(reply.action, reply.dsn);
}
