import { MIMEType } from 'node:util';
import type { Request } from 'express';

/** A form field as one string: missing → '', repeated → the last value (never an array or object). */
export function field(req: Request, name: string): string {
  const value = (req.body as Record<string, unknown> | undefined)?.[name];
  if (Array.isArray(value)) return typeof value[value.length - 1] === 'string' ? (value[value.length - 1] as string) : '';
  return typeof value === 'string' ? value : '';
}

/** A query parameter as one string. */
export function queryParam(req: Request, name: string): string {
  const value = (req.query as Record<string, unknown>)[name];
  if (Array.isArray(value)) return typeof value[0] === 'string' ? value[0] : '';
  return typeof value === 'string' ? value : '';
}

/** A checkbox: present ("on", "true", "1") → true. */
export function checkbox(req: Request, name: string): boolean {
  return ['on', 'true', '1', 'yes'].includes(field(req, name).toLowerCase());
}

/** A same-site path to return to after sign-in; anything else becomes '/'. */
export function safeReturnPath(value: string): string {
  return /^\/(?![/\\])[^\s]*$/.test(value) ? value : '/';
}

/** The charset parameter of the request's Content-Type (RFC 9110 §8.3), or '' when none (or unparseable). */
export function contentTypeCharset(req: Request): string {
  try {
    return new MIMEType(req.get('content-type') ?? '').params.get('charset') ?? '';
  } catch {
    return '';
  }
}
