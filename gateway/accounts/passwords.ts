import argon2 from 'argon2';

/**
 * Password hashing with argon2id (RFC 9106) through the `argon2` binding;
 * its defaults (m=64 MiB, t=3, p=4) follow the RFC's second recommended
 * option. The encoded hash carries its own parameters and salt, so raising
 * them later only affects new hashes.
 */

/** The shortest password a person may set (NIST SP 800-63B §5.1.1.2 asks for at least 8; we ask for 12). */
export const MIN_PASSWORD_LENGTH = 12;
/** argon2 accepts longer input, but a cap keeps a megabyte "password" from costing a request. */
export const MAX_PASSWORD_LENGTH = 1024;

export async function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, { type: argon2.argon2id });
}

/** True when `password` matches `hash`; false for a malformed or empty hash (never throws on user input). */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  if (!hash || !password || password.length > MAX_PASSWORD_LENGTH) return false;
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

/** Why a new password is not acceptable, or null when it is. */
export function passwordProblem(password: string): string | null {
  if (password.length < MIN_PASSWORD_LENGTH) return `must be at least ${MIN_PASSWORD_LENGTH} characters`;
  if (password.length > MAX_PASSWORD_LENGTH) return `must be at most ${MAX_PASSWORD_LENGTH} characters`;
  return null;
}

/**
 * A hash of a random value, used to make a failed login for an unknown
 * account cost the same time as one for a known account (no user
 * enumeration through timing).
 */
let dummyHash: Promise<string> | undefined;
export function timingDummyHash(): Promise<string> {
  dummyHash ??= hashPassword(`dummy-${Math.random()}`);
  return dummyHash;
}
