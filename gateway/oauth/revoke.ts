import mongoose from 'mongoose';
import * as oidc from 'openid-client';
import { recordAudit, SYSTEM_ACTOR, type Actor } from '../accounts/audit';
import { SecretBoxError } from '../core/crypto';
import { notFound } from '../core/errors';
import { grantEndpoints, providerConfiguration } from './client';
import { now, tuning, type OAuthDeps } from './deps';
import { classifyTokenFailure } from './errors';
import { isProviderId, resolveProvider } from './providers';

/**
 * Disconnect an account from its provider: revoke the refresh token at the
 * provider (RFC 7009; for Google this ends the whole grant) when it has a
 * revocation endpoint, then forget the tokens. Forgetting happens even when
 * the provider cannot be reached: the user asked for the link to end, and a
 * token we no longer hold cannot be used by us. Resolves with whether the
 * provider confirmed the revocation. Audited: it ends the mailbox's sync,
 * and an admin may do it to another user's mailbox.
 */
export async function revokeAuthorization(deps: OAuthDeps & { actor?: Actor }, accountId: string | mongoose.Types.ObjectId): Promise<{ revokedAtProvider: boolean }> {
  const id = typeof accountId === 'string' ? (/^[0-9a-f]{24}$/i.test(accountId) ? new mongoose.Types.ObjectId(accountId) : null) : accountId;
  if (!id) throw notFound('mail account');
  const account = await deps.store.models.MailAccount.findById(id, { email: 1, oauth: 1, 'imap.passwordEnc': 1 }).lean();
  if (!account) throw notFound('mail account');
  const oauth = (account as { oauth?: { provider?: string; refreshTokenEnc?: string; tokenEndpoint?: string; revocationEndpoint?: string } }).oauth;
  const log = deps.log.child({ component: 'oauth', accountId: id.toHexString(), provider: oauth?.provider ?? '' });
  let revokedAtProvider = false;
  if (oauth?.provider && isProviderId(oauth.provider) && oauth.refreshTokenEnc) {
    try {
      const refreshToken = deps.secretBox.open(oauth.refreshTokenEnc, id.toHexString());
      const provider = await resolveProvider(deps, oauth.provider);
      const config = await providerConfiguration(provider, { timeoutS: tuning(deps).httpTimeoutS });
      const endpoints = grantEndpoints(config);
      // Only to the endpoint of the server that issued the grant (see tokens.ts): one changed since could be anyone's.
      const moved = Boolean(oauth.tokenEndpoint) && (endpoints['oauth.tokenEndpoint'] !== oauth.tokenEndpoint || endpoints['oauth.revocationEndpoint'] !== (oauth.revocationEndpoint ?? ''));
      if (moved) log.warn('the provider\'s endpoints changed since the grant; forgetting the tokens without revoking');
      else if (endpoints['oauth.revocationEndpoint']) {
        await oidc.tokenRevocation(config, refreshToken, { token_type_hint: 'refresh_token' });
        revokedAtProvider = true;
      }
    } catch (err) {
      if (err instanceof SecretBoxError) {
        log.warn('stored refresh token unreadable; forgetting it without revoking');
      } else {
        const failure = classifyTokenFailure({ label: oauth.provider }, err);
        log.warn({ code: failure.code }, 'token revocation at the provider failed; forgetting the tokens anyway');
      }
    }
  }
  await deps.store.models.MailAccount.updateOne({ _id: id }, {
    $set: {
      'oauth.provider': '', 'oauth.refreshTokenEnc': '', 'oauth.accessTokenEnc': '', 'oauth.expiresAt': null, 'oauth.status': 'ok',
      'oauth.lastError': '', 'oauth.lastErrorCode': '', 'oauth.lastErrorAt': null, 'oauth.scope': '', 'oauth.failures': 0, 'oauth.retryAfter': null,
      // Without a password the mailbox has no credentials left: the syncer must not pick it up.
      ...(account.imap?.passwordEnc ? {} : { 'imap.status': 'unverified', 'imap.authenticatedAt': null }),
    },
  });
  await recordAudit(deps.store, deps.actor ?? SYSTEM_ACTOR, {
    action: 'account.oauth.disconnect',
    targetType: 'mail_account',
    targetId: id.toHexString(),
    details: { email: account.email, provider: oauth?.provider ?? '', revokedAtProvider },
  }, now(deps));
  log.info({ revokedAtProvider, at: now(deps) }, 'oauth authorization removed');
  return { revokedAtProvider };
}
