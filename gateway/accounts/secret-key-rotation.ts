import { SecretBox, SecretBoxError } from '../core/crypto';
import { OAUTH_PROVIDER_IDS } from '../core/config';
import { secretContext as webhookSecretContext, urlContext as webhookUrlContext } from '../crm/webhooks';
import { clientSecretContext } from '../oauth/providers';
import type { Store } from '../store';
import { recordAudit, type Actor } from './audit';
import { resealKeyCheck } from './secret-key-check';

export interface RotationResult {
  /** Values opened with the old key and sealed with the new one. */
  resealed: number;
  /** Values already sealed with the new key (a rotation that was interrupted and run again). */
  alreadyNew: number;
  /** Values neither key opens (left as they were; their owners enter them again). */
  unreadable: number;
  /** OAuth sign-ins in progress, dropped: they are minutes old and simply started again. */
  oauthStatesDropped: number;
}

/**
 * Re-seal every stored secret from `oldKey` to `newKey` (a leaked
 * SECRET_KEY): IMAP/SMTP passwords, OAuth tokens, OAuth client secrets,
 * webhook signing secrets and URLs, then the key check (secret-key-check.ts). Each
 * value is written only if it is still the one read. A value the new key
 * already opens is skipped, so a rotation cut short is finished by running
 * it again. Run it with Postroom stopped: a process still on the old key
 * would read the new values as undecryptable.
 */
export async function rotateSecretKey(store: Store, oldKey: Buffer, newKey: Buffer, actor: Actor, now: Date = new Date()): Promise<RotationResult> {
  const from = new SecretBox(oldKey, 'secrets');
  const to = new SecretBox(newKey, 'secrets');
  const result: RotationResult = { resealed: 0, alreadyNew: 0, unreadable: 0, oauthStatesDropped: 0 };
  const reseal = (sealed: string | null | undefined, context: string): string | null => {
    if (!sealed) return null;
    for (const [box, outcome] of [[from, 'old'], [to, 'new']] as const) {
      try {
        const plain = box.open(sealed, context);
        if (outcome === 'new') {
          result.alreadyNew += 1;
          return null;
        }
        result.resealed += 1;
        return to.seal(plain, context);
      } catch (err) {
        if (!(err instanceof SecretBoxError)) throw err;
      }
    }
    result.unreadable += 1;
    return null;
  };
  /** Set the re-sealed values of one document, only where they are still what was read. */
  const rewrite = async (model: { updateOne(filter: object, update: object): PromiseLike<unknown> }, id: unknown, fields: Record<string, { value: string | null | undefined; context: string }>) => {
    const set: Record<string, string> = {};
    const filter: Record<string, unknown> = { _id: id };
    for (const [path, { value, context }] of Object.entries(fields)) {
      const next = reseal(value, context);
      if (next === null) continue;
      set[path] = next;
      filter[path] = value;
    }
    if (Object.keys(set).length > 0) await model.updateOne(filter, { $set: set });
  };

  const accounts = await store.models.MailAccount.find({}, { imap: 1, smtp: 1, oauth: 1 }).lean();
  for (const account of accounts) {
    const context = account._id.toString();
    await rewrite(store.models.MailAccount, account._id, {
      'imap.passwordEnc': { value: account.imap?.passwordEnc, context },
      'smtp.passwordEnc': { value: account.smtp?.passwordEnc, context },
      'oauth.refreshTokenEnc': { value: account.oauth?.refreshTokenEnc, context },
      'oauth.accessTokenEnc': { value: account.oauth?.accessTokenEnc, context },
    });
  }
  const settings = await store.models.BusinessSettings.findById('business').lean();
  if (settings) {
    await rewrite(store.models.BusinessSettings, 'business', Object.fromEntries(OAUTH_PROVIDER_IDS.map((id) => [
      `oauth.${id}.clientSecretEnc`, { value: settings.oauth?.[id]?.clientSecretEnc, context: clientSecretContext(id) },
    ])));
  }
  for (const hook of await store.models.Webhook.find({}, { secretEnc: 1, urlEnc: 1 }).lean()) {
    await rewrite(store.models.Webhook, hook._id, {
      secretEnc: { value: hook.secretEnc, context: webhookSecretContext(hook._id) },
      urlEnc: { value: hook.urlEnc, context: webhookUrlContext(hook._id) },
    });
  }
  result.oauthStatesDropped = (await store.models.OAuthState.deleteMany({})).deletedCount ?? 0;
  await resealKeyCheck(store, to, now);
  await recordAudit(store, actor, { action: 'secret_key.rotate', targetType: 'settings', targetId: 'secret-key', details: { ...result } }, now);
  return result;
}
