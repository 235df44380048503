import net from 'node:net';

/**
 * A minimal SMTP client over a raw socket, for load and crash tests: one
 * command at a time (no PIPELINING, RFC 2920 is deliberately not used, so
 * every tier sees the same strictly sequential dialogue), multi-line replies
 * (RFC 5321 §4.2.1), and the one timing the benchmarks need — from the last
 * byte of DATA written to the final reply.
 *
 * It never retries by itself: a lost connection rejects the pending reply
 * with SmtpConnectionLost, and the caller decides whether to resend.
 */

export interface SmtpReply {
  code: number;
  text: string;
}

export class SmtpConnectionLost extends Error {
  readonly code = 'SMTP_CONNECTION_LOST';
  /** The stage of send() that was waiting when the connection went (set by send()). */
  stage?: TransactionResult['stage'];
}

export interface Envelope {
  from: string;
  to: string[];
}

export interface TransactionResult {
  /** Final reply: the first non-2xx/3xx reply of the dialogue, or the reply to end of DATA. */
  reply: SmtpReply;
  /** Stage whose reply ended the transaction. */
  stage: 'mail' | 'rcpt' | 'data' | 'end-of-data';
  /** Milliseconds from the last byte of the message written to the end-of-DATA reply (end-of-data stage only). */
  dataToReplyMs: number | null;
  /** Wall-clock time (Date.now()) the last byte of the message was written (end-of-data stage only). */
  dataEndedAt?: number;
}

/** RFC 5321 §4.5.2: a line starting with '.' gets one more; the message then ends with CRLF.CRLF. */
export function dotStuff(message: Buffer): Buffer {
  const text = message.toString('latin1');
  const body = text.replace(/(^|\r\n)\./g, '$1..');
  const end = body.endsWith('\r\n') ? '.\r\n' : '\r\n.\r\n';
  return Buffer.from(body + end, 'latin1');
}

export class SmtpConnection {
  private buffer = '';
  private lines: string[] = [];
  private waiters: Array<{ resolve: (reply: SmtpReply) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }> = [];
  private lost: Error | null = null;
  readonly ehlo: Promise<SmtpReply>;

  private constructor(
    private readonly socket: net.Socket,
    private readonly replyTimeoutMs: number,
  ) {
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new SmtpConnectionLost(`connection error: ${err.message}`)));
    socket.on('close', () => this.fail(new SmtpConnectionLost('connection closed by the server')));
    this.ehlo = Promise.resolve({ code: 0, text: '' });
  }

  /** Connect, read the greeting and say EHLO; rejects unless both are 2xx. */
  static async open(port: number, options: { host?: string; replyTimeoutMs?: number; helo?: string } = {}): Promise<SmtpConnection> {
    const host = options.host ?? '127.0.0.1';
    const socket = net.connect({ port, host });
    const connection = new SmtpConnection(socket, options.replyTimeoutMs ?? 120_000);
    try {
      const greeting = await connection.next();
      if (greeting.code !== 220) throw new SmtpConnectionLost(`greeting: ${greeting.code} ${greeting.text}`);
      const ehlo = await connection.command(`EHLO ${options.helo ?? 'bench.client.test'}`);
      if (ehlo.code !== 250) throw new SmtpConnectionLost(`EHLO: ${ehlo.code} ${ehlo.text}`);
      return connection;
    } catch (err) {
      connection.close();
      throw err;
    }
  }

  get closed(): boolean {
    return this.lost !== null;
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let index: number;
    while ((index = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, index).replace(/\r$/, '');
      this.buffer = this.buffer.slice(index + 1);
      this.lines.push(line);
      // "250-..." continues a reply, "250 ..." (or a bare "250") ends it.
      if (/^\d{3}(?: |$)/.test(line)) {
        const text = this.lines.join('\n');
        this.lines = [];
        const waiter = this.waiters.shift();
        if (waiter) {
          clearTimeout(waiter.timer);
          waiter.resolve({ code: Number(line.slice(0, 3)), text });
        }
      }
    }
  }

  private fail(err: Error): void {
    if (this.lost) return;
    this.lost = err;
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
    }
    this.socket.destroy();
  }

  private next(): Promise<SmtpReply> {
    if (this.lost) return Promise.reject(this.lost);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new SmtpConnectionLost(`no reply within ${this.replyTimeoutMs} ms`)), this.replyTimeoutMs);
      this.waiters.push({ resolve, reject, timer });
    });
  }

  command(line: string): Promise<SmtpReply> {
    const reply = this.next();
    if (!this.lost) this.socket.write(`${line}\r\n`);
    return reply;
  }

  /**
   * One mail transaction. `stuffed` is the message already dot-stuffed and
   * terminated (dotStuff()), so the same bytes can be sent many times
   * without re-encoding them.
   */
  async send(envelope: Envelope, stuffed: Buffer): Promise<TransactionResult> {
    let stage: TransactionResult['stage'] = 'mail';
    try {
      return await this.transaction(envelope, stuffed, (next) => {
        stage = next;
      });
    } catch (err) {
      if (err instanceof SmtpConnectionLost) {
        const lost = new SmtpConnectionLost(err.message);
        lost.stage = stage;
        throw lost;
      }
      throw err;
    }
  }

  private async transaction(envelope: Envelope, stuffed: Buffer, at: (stage: TransactionResult['stage']) => void): Promise<TransactionResult> {
    const mail = await this.command(`MAIL FROM:<${envelope.from}>`);
    at('rcpt');
    if (mail.code !== 250) return { reply: mail, stage: 'mail', dataToReplyMs: null };
    let accepted = 0;
    let lastRefusal: SmtpReply | null = null;
    for (const to of envelope.to) {
      const rcpt = await this.command(`RCPT TO:<${to}>`);
      if (rcpt.code === 250 || rcpt.code === 251) accepted++;
      else lastRefusal = rcpt;
    }
    if (accepted === 0) {
      await this.command('RSET').catch(() => undefined);
      return { reply: lastRefusal!, stage: 'rcpt', dataToReplyMs: null };
    }
    at('data');
    const data = await this.command('DATA');
    if (data.code !== 354) return { reply: data, stage: 'data', dataToReplyMs: null };
    at('end-of-data');
    const final = this.next();
    let dataEndedAt = 0;
    const flushed = new Promise<number>((resolve) => {
      this.socket.write(stuffed, () => {
        dataEndedAt = Date.now();
        resolve(performance.now());
      });
    });
    const reply = await final;
    const end = performance.now();
    // The write callback fires once the last byte reached the kernel; the reply cannot truly precede
    // it, only its callback can be queued behind the reply's data event.
    const written = await Promise.race([flushed, new Promise<null>((resolve) => setTimeout(() => resolve(null), 1000))]);
    return { reply, stage: 'end-of-data', dataToReplyMs: written === null ? null : Math.max(0, end - written), dataEndedAt };
  }

  async quit(): Promise<void> {
    if (!this.lost) await this.command('QUIT').catch(() => undefined);
    this.close();
  }

  close(): void {
    this.fail(new SmtpConnectionLost('closed by the client'));
  }
}
