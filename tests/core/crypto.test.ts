import { strict as assert } from 'node:assert';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveMasterKey, SecretBox, randomAddressToken } from '../../gateway/core/crypto';

describe('secret encryption (AES-256-GCM)', () => {
  const key = crypto.randomBytes(32);

  it('round-trips a secret and never stores the plaintext', () => {
    const box = new SecretBox(key);
    const sealed = box.seal('app-password-123', 'acct1');
    assert.doesNotMatch(sealed, /app-password-123/);
    assert.notEqual(box.seal('app-password-123', 'acct1'), sealed, 'a fresh IV each time');
    assert.equal(box.open(sealed, 'acct1'), 'app-password-123');
  });

  it('refuses a tampered value, another key, or another record', () => {
    const box = new SecretBox(key);
    const sealed = box.seal('secret', 'acct1');
    const parts = sealed.split('.');
    const flipped = Buffer.from(parts[3], 'base64url');
    flipped[0] ^= 1;
    const tampered = [parts[0], parts[1], parts[2], flipped.toString('base64url')].join('.');
    assert.throws(() => box.open(tampered, 'acct1'), /cannot be decrypted/);
    assert.throws(() => new SecretBox(crypto.randomBytes(32)).open(sealed, 'acct1'), /cannot be decrypted/);
    assert.throws(() => box.open(sealed, 'acct2'), /cannot be decrypted/);
    assert.throws(() => box.open('plaintext', 'acct1'), /not a sealed secret/);
  });

  it('generates a development key once into DATA_DIR and reuses it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postroom-key-'));
    const first = resolveMasterKey(undefined, dir);
    const second = resolveMasterKey(undefined, dir);
    assert.equal(first.generated, true);
    assert.equal(second.generated, false);
    assert.deepEqual(first.key, second.key);
    assert.equal(fs.statSync(path.join(dir, 'secret.key')).mode & 0o777, 0o600);
    fs.rmSync(dir, { recursive: true });
  });

  it('makes address tokens from an unambiguous alphabet', () => {
    const tokens = new Set(Array.from({ length: 200 }, () => randomAddressToken(16)));
    assert.equal(tokens.size, 200);
    for (const token of tokens) assert.match(token, /^[a-km-z2-9]{16}$/);
  });
});
