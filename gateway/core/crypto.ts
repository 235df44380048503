import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Secrets at rest (IMAP/SMTP passwords, OAuth refresh tokens) are sealed
 * with AES-256-GCM from node:crypto (OpenSSL). Each purpose gets its own key
 * derived from the master key with HKDF (RFC 5869), so the session-signing
 * key and the secret-sealing key never coincide.
 *
 * Sealed form: "v1.<iv b64url>.<tag b64url>.<ciphertext b64url>". The
 * version prefix leaves room for key rotation without a data migration.
 */

const VERSION = 'v1';
const IV_BYTES = 12; // NIST SP 800-38D recommends 96-bit IVs for GCM.

export type KeyPurpose = 'secrets' | 'sessions' | 'tokens' | 'webhooks';

export class SecretBox {
  private readonly key: Buffer;

  constructor(masterKey: Buffer, purpose: KeyPurpose = 'secrets') {
    if (masterKey.length !== 32) throw new Error('master key must be 32 bytes');
    this.key = deriveKey(masterKey, purpose);
  }

  /** Seal a UTF-8 secret. `context` (e.g. the account id) is bound as associated data so a sealed value cannot be moved to another record. */
  seal(plaintext: string, context = ''): string {
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [VERSION, iv.toString('base64url'), tag.toString('base64url'), ciphertext.toString('base64url')].join('.');
  }

  /** Open a sealed value; throws SecretBoxError when it was tampered with, sealed under another key or context. */
  open(sealed: string, context = ''): string {
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== VERSION) throw new SecretBoxError('not a sealed secret');
    const [, ivText, tagText, dataText] = parts;
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', this.key, Buffer.from(ivText, 'base64url'));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(Buffer.from(tagText, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(dataText, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretBoxError('secret cannot be decrypted (wrong SECRET_KEY or tampered value)');
    }
  }
}

export class SecretBoxError extends Error {
  readonly code = 'SECRET_UNREADABLE';
}

export function deriveKey(masterKey: Buffer, purpose: KeyPurpose): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', masterKey, Buffer.from('postroom'), Buffer.from(purpose), 32));
}

/** Random URL-safe token (forwarding addresses, API tokens, invites). */
export function randomToken(bytes = 16): string {
  return crypto.randomBytes(bytes).toString('base64url');
}

/** Lower-case base32-ish token for the local part of an address (case-insensitive in practice, RFC 5321 §2.4). */
export function randomAddressToken(length = 16): string {
  const alphabet = 'abcdefghijkmnpqrstuvwxyz23456789'; // no 0/o/1/l: users read these aloud
  let out = '';
  while (out.length < length) {
    for (const byte of crypto.randomBytes(length)) {
      // 256 % 32 === 0, so taking the low five bits is unbiased.
      out += alphabet[byte & 31];
      if (out.length === length) break;
    }
  }
  return out;
}

/** SHA-256 hex digest, for storing API/invite tokens by hash only. */
export function sha256Hex(value: string | Buffer): string {
  return crypto.createHash('sha256').update(value).digest('hex');
}

/**
 * The master key: SECRET_KEY when given; otherwise (development only) a key
 * generated once into DATA_DIR/secret.key with mode 0600 and reused on later
 * starts, so `npm start` works with nothing set and restarts can still read
 * the secrets they stored.
 */
export function resolveMasterKey(configured: Buffer | undefined, dataDir: string): { key: Buffer; generated: boolean; file?: string } {
  if (configured) return { key: configured, generated: false };
  const file = path.join(dataDir, 'secret.key');
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (fs.existsSync(file)) {
    const key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'hex');
    if (key.length !== 32) throw new Error(`${file} does not hold a 64-hex-character key; remove it or set SECRET_KEY`);
    return { key, generated: false, file };
  }
  const key = crypto.randomBytes(32);
  fs.writeFileSync(file, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  return { key, generated: true, file };
}
