import crypto from 'node:crypto';
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { AppError, isAppError } from '../../gateway/core/errors';
import type { Logger } from '../../gateway/core/log';

/** Driver errors that mean the store could not be reached (down, restarting, a network cut), not a bad request. */
const UNREACHABLE = new Set([
  'MongoServerSelectionError', 'MongooseServerSelectionError', 'MongoNetworkError', 'MongoNetworkTimeoutError', 'MongoNotConnectedError', 'MongoTopologyClosedError',
]);

/** How long a client is asked to wait before asking again when the store is unreachable (Retry-After). */
const STORE_RETRY_AFTER_SECONDS = 30;

/**
 * The one place errors become HTTP answers (STYLE.md habit 2). AppErrors
 * carry their status and code; body-parser errors are the client's fault;
 * a store that cannot be reached is a 503; everything else is a 500 with a
 * reference to grep the log for, and never
 * echoes internals to the client.
 */
export function toAppError(err: unknown): AppError {
  if (isAppError(err)) return err;
  const name = (err as Error | undefined)?.name ?? '';
  if (UNREACHABLE.has(name) || (name === 'MongooseError' && /buffering timed out/.test((err as Error).message))) {
    // A 503, not a 500: it passes, and clients (and proxies) retry a 503 after Retry-After.
    return new AppError('STORE_UNAVAILABLE', 'The message store cannot be reached right now; try again shortly.', { status: 503, cause: err });
  }
  const e = err as { type?: string; status?: number; message?: string };
  if (e?.type === 'entity.parse.failed') return new AppError('BAD_JSON', 'The request body is not valid JSON.', { status: 400 });
  if (e?.type === 'entity.too.large') return new AppError('TOO_LARGE', 'The request body is too large.', { status: 413 });
  if (e?.type === 'charset.unsupported' || e?.type === 'encoding.unsupported') return new AppError('UNSUPPORTED_ENCODING', e.message ?? 'unsupported encoding', { status: 415 });
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) return new AppError('BAD_REQUEST', e.message ?? 'bad request', { status: e.status });
  return new AppError('INTERNAL', 'Something went wrong on our side.', { status: 500, cause: err });
}

function reference(): string {
  return crypto.randomBytes(4).toString('hex');
}

function logFailure(log: Logger, req: Request, err: unknown, appError: AppError): string | undefined {
  if (appError.status < 500) return undefined;
  const ref = reference();
  log.error({ err, ref, method: req.method, path: req.path }, 'request failed');
  return ref;
}

export function apiErrorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const appError = toAppError(err);
    const ref = logFailure(log, req, err, appError);
    if (res.headersSent) return res.end();
    const body: Record<string, unknown> = { code: appError.code, message: ref ? `${appError.message} (reference ${ref})` : appError.message };
    if (appError.fields) body.fields = appError.fields;
    if (appError.status === 429) res.set('Retry-After', String((appError as AppError & { retryAfter?: number }).retryAfter ?? 60));
    if (appError.code === 'STORE_UNAVAILABLE') res.set('Retry-After', String(STORE_RETRY_AFTER_SECONDS));
    res.status(appError.status).json({ error: body });
  };
}

export function htmlErrorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const appError = toAppError(err);
    const ref = logFailure(log, req, err, appError);
    if (res.headersSent) return res.end();
    res.status(appError.status).render('errors/error', {
      title: appError.status === 404 ? 'Not found' : 'Error',
      status: appError.status,
      message: appError.message,
      reference: ref,
      bare: !req.user,
      // An error page (often for a request the browser made on its own) must not eat a pending flash message.
      showFlash: false,
    });
  };
}

/**
 * The API's answer when no route took the request: 405 with Allow when the
 * path exists with other methods (`allowed` gives them), else 404.
 */
export function apiNotFound(allowed: (path: string) => string[] = () => []): RequestHandler {
  return (req, res, next) => {
    const methods = allowed(req.path);
    if (methods.length > 0 && !methods.includes(req.method)) {
      res.set('Allow', methods.join(', '));
      return next(new AppError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${req.baseUrl}${req.path} (allowed: ${methods.join(', ')})`, { status: 405 }));
    }
    next(new AppError('NOT_FOUND', `no API route ${req.method} ${req.baseUrl}${req.path}`, { status: 404 }));
  };
}

export function htmlNotFound(): RequestHandler {
  return (_req, _res, next) => next(new AppError('NOT_FOUND', 'Page not found', { status: 404 }));
}
