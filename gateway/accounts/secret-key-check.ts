import fs from 'node:fs';
import { isDuplicateKeyError } from '../core/errors';
import { resolveMasterKey, SecretBox, SecretBoxError } from '../core/crypto';
import type { Logger } from '../core/log';
import type { Store } from '../store';
import { recordAudit, type Actor } from './audit';

const CHECK_ID = 'secrets';
const CHECK_CONTEXT = 'key-check';
const CHECK_PLAINTEXT = 'postroom key check';
/** Legacy stores (no key check yet): how many sealed secrets to try before deciding the key is not theirs. */
const LEGACY_SAMPLE = 20;

/**
 * The key this process was given does not open the secrets in its store. Not
 * a value to retry with: every sync pass would mark each IMAP account
 * "password cannot be decrypted" and stop syncing it, so that after the right
 * key is back every employee still has to type their password again.
 */
export class SecretKeyMismatchError extends Error {
  readonly code = 'SECRET_KEY_MISMATCH';
}

function mismatch(where: { source: string; generatedFile?: string }, what: string): SecretKeyMismatchError {
  const fix = where.generatedFile
    ? `${where.generatedFile} was missing, so a new key would have been made, and the data needs the old one: copy the secret.key that was backed up with this data to ${where.generatedFile} (or set SECRET_KEY to it)`
    : `start with the key this data was stored with (the SECRET_KEY of the backup's .env, or the secret.key backed up with DATA_DIR); ${where.source} is another key. To change the key on purpose, configure the old key again and, with Postroom stopped, run: npm run cli -- rotate-secret-key --new-key <new key>. If the old key is lost for good, run: npm run cli -- adopt-secret-key`;
  return new SecretKeyMismatchError(`the secret key does not decrypt ${what} in this store: ${fix}. Nothing was changed`);
}

/** Whether `box` opens any of a sample of the IMAP/SMTP passwords and OAuth grants stored before key checks existed; null when none is stored. */
async function opensLegacySecrets(store: Store, box: SecretBox): Promise<{ opened: boolean; tried: number } | null> {
  const rows = await store.models.MailAccount.find(
    { $or: [{ 'imap.passwordEnc': { $gt: '' } }, { 'smtp.passwordEnc': { $gt: '' } }, { 'oauth.refreshTokenEnc': { $gt: '' } }] },
    { imap: 1, smtp: 1, oauth: 1 },
  ).limit(LEGACY_SAMPLE).lean();
  let tried = 0;
  for (const row of rows) {
    for (const sealed of [row.imap?.passwordEnc, row.smtp?.passwordEnc, row.oauth?.refreshTokenEnc]) {
      if (!sealed) continue;
      tried += 1;
      try {
        box.open(sealed, row._id.toString());
        return { opened: true, tried };
      } catch (err) {
        if (!(err instanceof SecretBoxError)) throw err;
      }
    }
  }
  return tried > 0 ? { opened: false, tried } : null;
}

/**
 * Before a process seals or opens stored secrets: make sure its key
 * (SECRET_KEY, or DATA_DIR/secret.key outside production) is the one this
 * store's secrets were sealed with. The first start records a value sealed
 * with the key; later starts open it. A store from before this check is
 * probed with the secrets it holds. A mismatch throws SecretKeyMismatchError
 * (the process exits 78 naming the key); a key file generated for the
 * occasion is removed again, so the backed-up one can be copied in its place.
 */
export async function assertSecretKeyMatchesStore(store: Store, config: { secretKey?: Buffer; dataDir: string }, log: Logger): Promise<void> {
  const resolved = resolveMasterKey(config.secretKey, config.dataDir);
  const where = { source: config.secretKey ? 'SECRET_KEY' : `the key in ${resolved.file}`, generatedFile: resolved.generated ? resolved.file : undefined };
  const box = new SecretBox(resolved.key, 'secrets');
  const refuse = (what: string): never => {
    if (resolved.generated && resolved.file) fs.rmSync(resolved.file, { force: true });
    throw mismatch(where, what);
  };

  let check = await store.models.KeyCheck.findById(CHECK_ID).lean();
  if (!check) {
    const legacy = await opensLegacySecrets(store, box);
    if (legacy && !legacy.opened) refuse(`any of the ${legacy.tried} stored IMAP/SMTP passwords it tried`);
    try {
      await store.models.KeyCheck.create({ _id: CHECK_ID, sealed: box.seal(CHECK_PLAINTEXT, CHECK_CONTEXT), createdAt: new Date() });
      if (resolved.generated) log.warn({ file: resolved.file }, 'generated the secret key that seals stored IMAP/SMTP passwords: back it up with DATA_DIR, or set SECRET_KEY');
      return;
    } catch (err) {
      // Another process of this appliance recorded its key first: check against that one.
      if (!isDuplicateKeyError(err)) throw err;
      check = await store.models.KeyCheck.findById(CHECK_ID).lean();
      if (!check) throw err;
    }
  }
  if (!opensCheck(box, check.sealed)) refuse('the secrets (IMAP/SMTP passwords, OAuth grants, webhook secrets)');
}

/** Whether `box` opens the value the store's key was recorded with. */
function opensCheck(box: SecretBox, sealed: string): boolean {
  try {
    box.open(sealed, CHECK_CONTEXT);
    return true;
  } catch (err) {
    if (!(err instanceof SecretBoxError)) throw err;
    return false;
  }
}

/**
 * The old key is lost for good: record the configured key as the store's, so
 * the appliance starts again. Nothing stored is changed or deleted; what the
 * lost key sealed stays unreadable, and each place that needs it asks for it
 * again as it does for any undecryptable secret (an IMAP account says to
 * enter the password again, an OAuth account to reconnect, Preferences →
 * Business for a client secret). Returns whether the store had another key.
 */
export async function adoptSecretKey(store: Store, config: { secretKey?: Buffer; dataDir: string }, actor: Actor, now: Date = new Date()): Promise<{ changed: boolean }> {
  const box = new SecretBox(resolveMasterKey(config.secretKey, config.dataDir).key, 'secrets');
  const check = await store.models.KeyCheck.findById(CHECK_ID).lean();
  if (check && opensCheck(box, check.sealed)) return { changed: false };
  await resealKeyCheck(store, box, now);
  await recordAudit(store, actor, { action: 'secret_key.adopt', targetType: 'settings', targetId: 'secret-key', details: { hadKeyCheck: Boolean(check) } }, now);
  return { changed: true };
}

/** After a rotation (secret-key-rotation.ts): record the new key as the store's. */
export async function resealKeyCheck(store: Store, box: SecretBox, now: Date = new Date()): Promise<void> {
  await store.models.KeyCheck.updateOne({ _id: CHECK_ID }, { $set: { sealed: box.seal(CHECK_PLAINTEXT, CHECK_CONTEXT), createdAt: now } }, { upsert: true });
}
