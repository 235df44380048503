/**
 * SMTP clients for gateway tests: nodemailer (a real MTA-like client, with
 * opportunistic STARTTLS verified against the test CA), Debian's swaks, and
 * a bare line-level session for the cases where the exact command sequence
 * matters (SIZE=, AUTH on a server without AUTH, bare LF, pipelining).
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import nodemailer from 'nodemailer';

export interface SendOutcome {
  ok: boolean;
  /** SMTP reply code of the final answer (250 on success). */
  code: number;
  /** Full text of the final server reply. */
  response: string;
  accepted: string[];
  rejected: string[];
  /** Per-recipient rejection replies (nodemailer's rejectedErrors). */
  rejectedResponses: string[];
}

export async function sendMail(port: number, envelope: { from: string; to: string[] }, raw: Buffer | string, options: { size?: number } = {}): Promise<SendOutcome> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, connectionTimeout: 10000, greetingTimeout: 10000, socketTimeout: 120000 });
  try {
    const info = await transport.sendMail({ envelope: { ...envelope, ...(options.size ? { size: options.size } : {}) }, raw });
    const rejectedErrors = (info as unknown as { rejectedErrors?: Array<{ response?: string }> }).rejectedErrors ?? [];
    return {
      ok: true,
      code: Number(/^(\d{3})/.exec(info.response)?.[1] ?? 0),
      response: info.response,
      accepted: info.accepted.map(String),
      rejected: info.rejected.map(String),
      rejectedResponses: rejectedErrors.map((e) => e.response ?? ''),
    };
  } catch (err) {
    const e = err as Error & { responseCode?: number; response?: string; rejected?: string[]; rejectedErrors?: Array<{ response?: string }> };
    return {
      ok: false,
      code: e.responseCode ?? 0,
      response: e.response ?? e.message,
      accepted: [],
      rejected: e.rejected ?? [],
      rejectedResponses: (e.rejectedErrors ?? []).map((r) => r.response ?? ''),
    };
  } finally {
    transport.close();
  }
}

export interface SwaksResult {
  exitCode: number;
  transcript: string;
  /** Server reply lines ("<-" / "<**"), in order, without the arrow. */
  replies: string[];
}

export function swaks(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<SwaksResult> {
  return new Promise((resolve, reject) => {
    execFile('swaks', ['--timeout', '60', ...args], { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code: unknown = err ? (err as { code?: unknown }).code : 0;
      if (typeof code !== 'number') return reject(err);
      const transcript = `${stdout}${stderr}`;
      const replies = transcript
        .split('\n')
        .filter((line) => /^\s*<(-|~|\*\*|~\*)\s/.test(line))
        .map((line) => line.replace(/^\s*<(-|~|\*\*|~\*)\s+/, '').trim());
      resolve({ exitCode: code, transcript, replies });
    });
  });
}

export interface Reply {
  code: number;
  text: string;
}

/** A line-level SMTP session (no TLS). */
export class SmtpSession {
  private buffer = '';
  private waiting: Array<(reply: Reply) => void> = [];
  private lines: string[] = [];
  closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let index: number;
      while ((index = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, index).replace(/\r$/, '');
        this.buffer = this.buffer.slice(index + 1);
        this.lines.push(line);
        if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
          const text = this.lines.join('\n');
          this.lines = [];
          this.waiting.shift()?.({ code: Number(line.slice(0, 3)), text });
        }
      }
    });
    socket.on('close', () => {
      this.closed = true;
      for (const waiter of this.waiting.splice(0)) waiter({ code: 0, text: 'connection closed' });
    });
    socket.on('error', () => undefined);
  }

  /** `localAddress`: another loopback address (127.0.0.2…) to be another client. */
  static async open(port: number, options: { localAddress?: string } = {}): Promise<{ session: SmtpSession; greeting: Reply }> {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: options.localAddress });
    const session = new SmtpSession(socket);
    const greeting = await session.next();
    return { session, greeting };
  }

  next(timeoutMs = 60000): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('SMTP reply timeout')), timeoutMs);
      this.waiting.push((reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
    });
  }

  /** Send one command line and wait for its reply. */
  command(line: string): Promise<Reply> {
    const reply = this.next();
    this.socket.write(`${line}\r\n`);
    return reply;
  }

  /** DATA: send the message (dot-stuffed, RFC 5321 §4.5.2) and the terminator, return the final reply. */
  async data(message: Buffer, options: { stuff?: boolean } = {}): Promise<Reply> {
    const go = await this.command('DATA');
    if (go.code !== 354) return go;
    const reply = this.next();
    const body = options.stuff === false ? message : Buffer.from(message.toString('latin1').replace(/(^|\r\n)\./g, '$1..'), 'latin1');
    const ending = body.length === 0 || body.subarray(-2).toString() === '\r\n' ? '.\r\n' : '\r\n.\r\n';
    this.socket.write(Buffer.concat([body, Buffer.from(ending)]));
    return reply;
  }

  write(raw: Buffer | string): void {
    this.socket.write(raw);
  }

  /** Hang up without QUIT (a client that goes away mid-transfer). */
  destroy(): void {
    this.socket.destroy();
  }

  async quit(): Promise<void> {
    if (!this.closed) await this.command('QUIT').catch(() => undefined);
    this.socket.destroy();
  }
}
