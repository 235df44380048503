import { z } from 'zod';
import { AppError } from '../../../gateway/core/errors';

/**
 * Parse a JSON body with a strict zod schema: unknown fields and wrong
 * types are a 400 naming every offending field, never a 500.
 */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AppError('BAD_REQUEST', 'The request body must be a JSON object (Content-Type: application/json).', { status: 400 });
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  throw validationError(result.error);
}

export function validationError(error: z.ZodError): AppError {
  const fields: Record<string, string> = {};
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) fields[[...issue.path, key].join('.')] = 'is not a known field';
    } else {
      fields[issue.path.join('.') || 'body'] = issue.message;
    }
  }
  const message = Object.entries(fields).map(([name, problem]) => `${name} ${problem}`).join('; ');
  return new AppError('VALIDATION_FAILED', message, { status: 400, fields });
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
    throw new AppError('VALIDATION_FAILED', Object.entries(fields).map(([n, p]) => `${n} ${p}`).join('; '), { status: 400, fields });
  }
  return out;
}
