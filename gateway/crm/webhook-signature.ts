import crypto from 'node:crypto';

/**
 * Webhook signatures (the scheme Stripe popularised, so receivers know it):
 *
 *   Postroom-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
 *
 * The timestamp is inside the signed string, so a captured request cannot
 * be replayed later with a fresh timestamp; receivers reject a `t` older
 * than their tolerance (5 minutes suggested). Several v1 entries may appear
 * while a secret is being rotated: any one that matches is enough.
 *
 * HMAC and the constant-time comparison come from node:crypto.
 */

export const SIGNATURE_HEADER = 'Postroom-Signature';
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function computeSignature(secret: string, timestamp: number, body: string | Buffer): string {
  return crypto.createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

/** The header value for a body sent at `timestamp` (unix seconds). */
export function signatureHeader(secret: string, body: string | Buffer, timestamp = Math.floor(Date.now() / 1000)): string {
  return `t=${timestamp},v1=${computeSignature(secret, timestamp, body)}`;
}

export interface ParsedSignature {
  timestamp: number;
  signatures: string[];
}

export function parseSignatureHeader(header: string): ParsedSignature | null {
  let timestamp = NaN;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && /^[0-9a-f]{64}$/i.test(value)) signatures.push(value.toLowerCase());
  }
  if (!Number.isFinite(timestamp) || signatures.length === 0) return null;
  return { timestamp, signatures };
}

export interface VerifyOptions {
  toleranceSeconds?: number;
  /** Unix seconds; defaults to now. */
  now?: number;
}

/**
 * What a receiver does (also the documented algorithm):
 * 1. read the raw request body as bytes — before any JSON parsing;
 * 2. split the header at ',' into t and v1 values;
 * 3. expected = hex(HMAC-SHA256(secret, t + "." + body));
 * 4. accept when a v1 equals expected (constant-time compare) and
 *    |now - t| <= tolerance.
 */
export function verifySignature(secret: string, body: string | Buffer, header: string | undefined | null, options: VerifyOptions = {}): boolean {
  if (!header) return false;
  const parsed = parseSignatureHeader(header);
  if (!parsed) return false;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - parsed.timestamp) > (options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) return false;
  const expected = Buffer.from(computeSignature(secret, parsed.timestamp, body), 'hex');
  return parsed.signatures.some((signature) => crypto.timingSafeEqual(Buffer.from(signature, 'hex'), expected));
}
