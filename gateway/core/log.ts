import pino, { type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths pino replaces with "[redacted]" wherever they appear in a log
 * object. Secrets (passwords, tokens, keys) and message content must never
 * reach a log file: logs are shipped and kept far longer than mail is.
 */
export const REDACT_PATHS = [
  'password', '*.password', '*.*.password', 'pass', '*.pass', '*.*.pass',
  'passwordEnc', '*.passwordEnc', '*.*.passwordEnc',
  'token', '*.token', 'accessToken', '*.accessToken', 'refreshToken', '*.refreshToken',
  'secret', '*.secret', 'secretKey', '*.secretKey', 'apiKey', '*.apiKey',
  'authorization', '*.authorization', '*.headers.authorization', '*.headers.cookie', 'cookie', '*.cookie',
  'raw', '*.raw', 'body', '*.body', 'text', '*.text', 'html', '*.html', 'content', '*.content',
];

export interface LogOptions {
  level?: string;
  /** Pretty, human-readable output; defaults to true when stdout is a TTY. */
  pretty?: boolean;
  /** Destination stream (tests capture logs to assert on redaction). */
  destination?: NodeJS.WritableStream;
  base?: Record<string, unknown>;
}

/** Build the root logger. Components take `log.child({component, ...})`. */
export function createLogger(options: LogOptions = {}): Logger {
  const pretty = options.pretty ?? (process.stdout.isTTY === true && !options.destination);
  const pinoOptions: LoggerOptions = {
    level: options.level ?? 'info',
    base: { pid: process.pid, ...options.base },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: pino.stdSerializers.err },
  };
  if (pretty) {
    return pino({ ...pinoOptions, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  if (options.destination) return pino(pinoOptions, options.destination as pino.DestinationStream);
  return pino(pinoOptions);
}

/** A logger that drops everything, for code paths where a caller passed none. */
export const silentLogger: Logger = pino({ level: 'silent' });
