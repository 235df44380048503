import type { RequestHandler } from 'express';
import { z } from 'zod';
import { describeFields, NOT_AN_ID, parseObjectId } from '../../../gateway/accounts';
import { AppError } from '../../../gateway/core/errors';
import { fieldProblem, orList } from './field-problems';

/**
 * Request validation of the JSON API, in one place: bodies against strict
 * zod schemas (problems worded by field-problems.ts), query parameters by
 * name. Every problem is a 400 naming each offending field, never a 500.
 */

const isJsonObject = (body: unknown): body is Record<string, unknown> => typeof body === 'object' && body !== null && !Array.isArray(body);

function notAnObject(body: unknown): AppError {
  const hint = body === undefined ? ' (Content-Type: application/json)' : '';
  return new AppError('BAD_BODY', `The request body must be a JSON object${hint}.`, { status: 400 });
}

/** Routes that take a body other than JSON; each answers 415 for a type it does not take. */
const OWN_BODY_TYPES = new Set(['/objects/import']);

/** A body in anything but JSON is refused before parsing: it would otherwise read as "no body". */
export const requireJsonBody: RequestHandler = (req, _res, next) => {
  // Content-Length: 0 is no body (type-is counts it as one), whatever its type.
  const content = Number(req.get('content-length') ?? 0) > 0 || req.get('transfer-encoding') !== undefined;
  if (!content || OWN_BODY_TYPES.has(req.path) || req.is(['application/json', 'application/*+json'])) return next();
  next(new AppError('UNSUPPORTED_MEDIA_TYPE', `The request body must be JSON (Content-Type: application/json), not ${req.get('content-type') ?? 'untyped'}.`, { status: 415 }));
};

/**
 * After the JSON body parsers (which accept any JSON value, so that valid
 * JSON that is not an object is told apart from broken JSON, BAD_JSON):
 * a parsed body must be an object, on every route.
 */
export const requireObjectBody: RequestHandler = (req, _res, next) => {
  next(req.body === undefined || isJsonObject(req.body) ? undefined : notAnObject(req.body));
};

/**
 * Parse a JSON body with a strict zod schema: unknown fields and wrong
 * types are a 400 naming every offending field, never a 500.
 */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  if (!isJsonObject(body)) throw notAnObject(body);
  const result = schema.safeParse(body, { error: fieldProblem });
  if (result.success) return result.data;
  throw validationError(result.error);
}

export function validationError(error: z.ZodError): AppError {
  // No prototype: a field named `__proto__` (a pollution probe) is then a field like any other, not a setter.
  const fields: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) fields[[...issue.path, key].join('.')] = 'is not a known field';
    } else {
      fields[issue.path.join('.') || 'body'] ??= issue.message;
    }
  }
  return new AppError('VALIDATION_FAILED', describeFields(fields), { status: 400, fields });
}

/** A whole number from `min` to `max` in a body, with one message for every way a value can miss. */
export function wholeNumber(min: number, max: number, error = `must be a whole number from ${min} to ${max}`) {
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

/** A whole-number query parameter from `min` to `max` (undefined when absent). */
export function wholeNumberParam(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value) || Number(value) < min || Number(value) > max) {
    const problem = `must be a whole number from ${min} to ${max}`;
    throw new AppError('VALIDATION_FAILED', `${name} ${problem}`, { status: 400, fields: { [name]: problem } });
  }
  return Number(value);
}

/** An id query parameter (undefined when absent): said when it is not one, not treated as "matches nothing". */
export function idParam(value: string | undefined, name: string): string | undefined {
  if (value !== undefined && !parseObjectId(value)) {
    throw new AppError('VALIDATION_FAILED', `${name} ${NOT_AN_ID}`, { status: 400, fields: { [name]: NOT_AN_ID } });
  }
  return value;
}

/**
 * A query parameter that takes one of a few words (undefined when absent):
 * anything else is said, so that `?commit=1` is not quietly read as false.
 */
export function oneOfParam<T extends string>(value: string | undefined, name: string, allowed: readonly T[]): T | undefined {
  if (value === undefined || (allowed as readonly string[]).includes(value)) return value as T | undefined;
  const problem = `must be ${orList([...allowed])}`;
  throw new AppError('VALIDATION_FAILED', `${name} ${problem}`, { status: 400, fields: { [name]: problem } });
}

/** Query parameters: only `allowed` names, each at most once. */
export function checkQuery(query: Record<string, unknown>, allowed: string[]): Record<string, string> {
  const fields: Record<string, string> = {};
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(query)) {
    if (!allowed.includes(name)) fields[name] = 'is not a known query parameter';
    else if (typeof value !== 'string') fields[name] = 'must be given once';
    else out[name] = value;
  }
  if (Object.keys(fields).length > 0) {
    throw new AppError('VALIDATION_FAILED', describeFields(fields), { status: 400, fields });
  }
  return out;
}
