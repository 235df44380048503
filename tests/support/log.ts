import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../gateway/core/log';

export interface CapturedLog {
  log: Logger;
  /** Every line written, parsed. */
  lines: Array<Record<string, unknown>>;
  text(): string;
  /** IMAP commands imapflow sent (its debug entries with src 'c'), optionally of one account only. */
  commands(accountId?: string): string[];
}

/** A logger whose JSON lines the test reads back. */
export function captureLog(level = 'debug'): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  const log = createLogger({ level, destination, pretty: false });
  return {
    log,
    lines,
    text: () => raw.join('\n'),
    commands: (accountId?: string) =>
      lines.filter((l) => l.src === 'c' && typeof l.msg === 'string' && (!accountId || l.accountId === accountId)).map((l) => l.msg as string),
  };
}
