import type { Server, Socket } from 'node:net';
import type DSN from 'haraka-dsn';

/**
 * The parts of Haraka's objects (3.3) the Postroom plugins touch. Haraka
 * ships no types; keeping them here makes each plugin's dependence on
 * Haraka explicit and small.
 */

export type Next = (code?: number, message?: string | DSN) => void;

export interface HarakaAddress {
  /** `user@host` (a getter in Haraka 3.3; calling it throws). */
  readonly address: string;
  readonly host: string | null;
  /** True when the local part or the domain is not ASCII (RFC 6531); undefined otherwise. */
  readonly is_utf8?: boolean;
  isNull(): boolean;
  format(): string;
}

export interface HarakaMessageStream {
  pipe<T extends NodeJS.WritableStream>(destination: T, options?: { line_endings?: string; dot_stuffed?: boolean }): T;
  /** Tear down an active pipe synchronously (haraka-message-stream 2.x). */
  unpipe(): this;
  /** Haraka calls it when the transaction ends (reset, disconnect): the spool file is closed and removed. */
  destroy(): void;
  emit(event: string | symbol, ...args: unknown[]): boolean;
}

/** The parsed header of a transaction (Haraka's Header; at most connection.ini [headers] max_lines lines). */
export interface HarakaHeader {
  /** Every value of one header field, in order (name case-insensitive). */
  get_all(name: string): string[];
}

export interface HarakaTransaction {
  uuid: string;
  header: HarakaHeader;
  mail_from: HarakaAddress;
  rcpt_to: HarakaAddress[];
  notes: Record<string, unknown>;
  message_stream: HarakaMessageStream;
  data_bytes: number;
  parse_body: boolean;
}

export interface HarakaConnection {
  uuid: string;
  remote: { ip: string; port: number; host: string | null };
  local: { ip: string; port: number; host: string };
  hello: { host: string | null; verb: string | null };
  tls: { enabled: boolean };
  esmtp: boolean;
  /** The EHLO reply lines (greeting first, then one extension each, e.g. `SIZE 52428800`); null before EHLO. */
  capabilities: string[] | null;
  errors: number;
  /** Haraka's connection state (haraka-constants connection.state: CMD, PAUSE_SMTP, DATA, DISCONNECTING…). */
  state: number;
  client: Socket;
  notes: Record<string, unknown>;
  transaction: HarakaTransaction | null;
  respond(code: number, message: string | DSN, after?: () => void): void;
  reset_transaction(after?: () => void): void;
  disconnect(): void;
  /** Each line of DATA as received (a Buffer ending in LF; Haraka also passes its own Received line as a string). */
  accumulate_data(line: Buffer | string): void;
  cmd_mail(line: string): void;
  /** Each line the client sends (a command, or a line of DATA). */
  process_line(line: Buffer): void;
  max_data_exceeded_respond(retval: number, message?: string): void;
}

/** MAIL FROM / RCPT TO parameters as Haraka parsed them: upper-case keyword → value (null when there is none). */
export type HarakaParams = Record<string, string | null>;

export interface HarakaServer {
  listeners?: Server[];
}

/** `this` in a plugin's register/hook functions. */
export interface HarakaPlugin {
  name: string;
  register_hook(hook: string, method: string): void;
}
