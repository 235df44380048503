/**
 * Engine errors carry a stable `code` plus the reply each edge maps them to.
 * The Haraka adapter and the Express error handler each translate them in
 * exactly one place; nothing in between formats protocol replies.
 */
export interface AppErrorOptions {
  /** HTTP status for the admin/API edge. */
  status?: number;
  /** SMTP reply code (e.g. 550, 451) for the gateway edge. */
  smtpCode?: number;
  /** Enhanced status code (RFC 3463), e.g. '5.1.1'. */
  enhancedCode?: string;
  /** Short tag shown in temporary-failure replies and logs ([ERRC01]) to grep from a bounce to its cause. */
  tag?: string;
  /** Field-level problems for forms and the API. */
  fields?: Record<string, string>;
  cause?: unknown;
}

export class AppError extends Error {
  readonly code: string;
  readonly status: number;
  readonly smtpCode?: number;
  readonly enhancedCode?: string;
  readonly tag?: string;
  readonly fields?: Record<string, string>;

  constructor(code: string, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = options.status ?? 500;
    this.smtpCode = options.smtpCode;
    this.enhancedCode = options.enhancedCode;
    this.tag = options.tag;
    this.fields = options.fields;
  }
}

export const notFound = (what: string) => new AppError('NOT_FOUND', `${what} not found`, { status: 404 });

export const badRequest = (message: string, fields?: Record<string, string>) =>
  new AppError('BAD_REQUEST', message, { status: 400, fields });

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/**
 * A write refused by a unique index. MongoDB reports code 11000, and so does
 * FerretDB for an insert; FerretDB's SQLite backend refuses an update with
 * code 1 and SQLite's own words ("UNIQUE constraint failed").
 */
export function isDuplicateKeyError(err: unknown): boolean {
  return (err as { code?: number }).code === 11000 || /E11000|duplicate key|UNIQUE constraint failed/i.test((err as Error).message ?? '');
}
