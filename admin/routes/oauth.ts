import { Router, type NextFunction, type Request, type Response } from 'express';
import { getMailAccount, parseObjectId } from '../../gateway/accounts';
import { AppError, isAppError, notFound } from '../../gateway/core/errors';
import {
  accountOfFailedCallback, completeAuthorization, getOAuthSettings, isProviderId, listProviders, OAUTH_CALLBACK_PATH, providerDefaults, providerForPreset,
  revokeAuthorization, startAuthorization, updateOAuthSettings, verifyOAuthImap, type OAuthDeps,
} from '../../gateway/oauth';
import { checkbox, field, queryParam } from '../lib/forms';
import { csrfToken, sameToken } from '../middleware/csrf';
import { flash, requireAdmin, requireUser } from '../middleware/auth';
import type { AdminDeps } from '../types';

/**
 * "Sign in with Google / Microsoft / …" for IMAP Support, the provider's
 * callback, the one-click re-authorisation and Disconnect, and the OAuth
 * client settings on Preferences → Business. Thin: the flow lives in
 * gateway/oauth. Mounted before the Preferences routers so it can add its
 * locals to their pages (the partials oauth-signin / oauth-settings).
 *
 * The start is a GET link carrying the CSRF token: a form POST answered by a
 * redirect to the provider would be blocked by the console's CSP
 * `form-action 'self'`, which also applies to redirects after a submission.
 */
export function oauthRouter(deps: AdminDeps): Router {
  const router = Router();
  const oauthDeps: OAuthDeps = { store: deps.store, log: deps.log, secretBox: deps.secretBox, config: deps.config, clock: deps.clock };

  // Locals for the IMAP Support panel of an account page.
  router.get('/preferences/email/:id', async (req: Request, res: Response, next: NextFunction) => {
    const id = parseObjectId(String(req.params.id));
    if (!req.user || !id) return next();
    const account = await deps.store.models.MailAccount.findById(id, { oauth: 1, ownerId: 1, imap: 1 }).lean();
    if (!account || (req.viewer!.role !== 'admin' && !account.ownerId.equals(req.viewer!.id))) return next();
    const providers = (await listProviders(oauthDeps)).filter((p) => p.configured);
    const provider = account.oauth?.provider ?? '';
    const token = csrfToken(req);
    res.locals.oauth = {
      accountId: id.toHexString(),
      connected: isProviderId(provider),
      provider,
      label: providers.find((p) => p.id === provider)?.label ?? (isProviderId(provider) ? providerDefaults(provider).label : ''),
      status: account.oauth?.status ?? 'ok',
      lastError: account.oauth?.lastError ?? '',
      providers,
      suggested: providerForPreset(account.imap?.service ?? ''),
      startPath: (providerId: string) => `/preferences/email/${id.toHexString()}/oauth/${providerId}/start?_csrf=${encodeURIComponent(token)}`,
    };
    next();
  });

  router.get('/preferences/email/:id/oauth/:provider/start', requireUser, async (req, res) => {
    const expected = req.session.csrfToken;
    const sent = queryParam(req, '_csrf');
    if (!expected || !sent || !sameToken(sent, expected)) {
      throw new AppError('CSRF_FAILED', 'This link has expired or did not come from this site. Go back, reload the page and try again.', { status: 403 });
    }
    const account = await getMailAccount(deps.store, req.viewer!, String(req.params.id));
    if (!account) throw notFound('mail account');
    try {
      const { redirectUrl } = await startAuthorization(oauthDeps, {
        userId: req.viewer!.id.toHexString(),
        accountId: account.id,
        provider: String(req.params.provider),
        actingAsAdmin: req.viewer!.role === 'admin',
      });
      res.redirect(303, redirectUrl);
    } catch (err) {
      if (!isAppError(err) || (err.status >= 500 && err.code !== 'OAUTH_PROVIDER_UNAVAILABLE')) throw err;
      flash(req, 'error', err.message);
      res.redirect(303, `/preferences/email/${account.id}#imap`);
    }
  });

  // The provider sends the browser back here (register PUBLIC_URL + this path at the provider).
  router.get(OAUTH_CALLBACK_PATH, requireUser, async (req, res) => {
    let accountId: string;
    try {
      ({ accountId } = await completeAuthorization(oauthDeps, {
        userId: req.viewer!.id.toHexString(),
        state: queryParam(req, 'state') || undefined,
        code: queryParam(req, 'code') || undefined,
        iss: queryParam(req, 'iss') || undefined,
        error: queryParam(req, 'error') || undefined,
        errorDescription: queryParam(req, 'error_description') || undefined,
      }));
    } catch (err) {
      if (!isAppError(err) || (err.status >= 500 && !err.code.startsWith('OAUTH_'))) throw err;
      flash(req, 'error', err.message);
      // Back to the account whose "Sign in with …" was clicked (a cancelled consent, a refused code), if it still exists.
      const failedFor = err.code === 'NOT_FOUND' ? undefined : accountOfFailedCallback(err);
      return res.redirect(303, failedFor ? `/preferences/email/${failedFor}#imap` : '/preferences/email');
    }
    const { error } = await verifyOAuthImap({ ...oauthDeps, actor: req.actor, timeoutMs: deps.imapTimeoutMs }, accountId);
    const account = await deps.store.models.MailAccount.findById(accountId, { email: 1, 'imap.host': 1 }).lean();
    if (error) flash(req, 'error', `Signed in, but the IMAP login did not work (${error.code}): ${error.message}`);
    else flash(req, 'success', `Authenticated with OAuth2: signed in to ${account?.imap?.host ?? 'the IMAP server'} as ${account?.email ?? ''}. IMAP sync is on.`);
    res.redirect(303, `/preferences/email/${accountId}#imap`);
  });

  router.post('/preferences/email/:id/oauth/disconnect', requireUser, async (req, res) => {
    const account = await getMailAccount(deps.store, req.viewer!, String(req.params.id));
    if (!account) throw notFound('mail account');
    const { revokedAtProvider } = await revokeAuthorization({ ...oauthDeps, actor: req.actor }, account.id);
    flash(req, 'success', `Disconnected: Postroom no longer holds a token for ${account.email}${revokedAtProvider ? ' and the provider revoked it' : ''}. Sign in again or enter a password to keep IMAP Support working.`);
    res.redirect(303, `/preferences/email/${account.id}#imap`);
  });

  // Preferences → Business: OAuth client settings (no secrets in the locals).
  router.get('/preferences/business', async (req: Request, res: Response, next: NextFunction) => {
    if (req.user) res.locals.oauthSettings = await getOAuthSettings(oauthDeps);
    next();
  });

  router.post('/preferences/business/oauth/:provider', requireUser, requireAdmin, async (req, res) => {
    const provider = String(req.params.provider);
    try {
      const view = await updateOAuthSettings({ ...oauthDeps, actor: req.actor! }, provider, {
        clientId: field(req, 'clientId'),
        clientSecret: field(req, 'clientSecret') || undefined,
        clearClientSecret: checkbox(req, 'clearClientSecret'),
        issuer: field(req, 'issuer'),
        authorizationUrl: field(req, 'authorizationUrl'),
        tokenUrl: field(req, 'tokenUrl'),
        revocationUrl: field(req, 'revocationUrl'),
        scopes: field(req, 'scopes'),
        ...(provider === 'microsoft' ? { tenant: field(req, 'tenant') } : {}),
        ...(provider === 'oidc' ? { label: field(req, 'label') } : {}),
      });
      flash(req, 'success', `Sign-in with ${view.label} saved${view.configured ? '' : ' (not usable yet: it needs a client id and endpoints)'}.`);
    } catch (err) {
      if (!isAppError(err) || err.status >= 500) throw err;
      flash(req, 'error', err.message);
    }
    res.redirect(303, `/preferences/business#oauth-${isProviderId(provider) ? provider : ''}`);
  });

  return router;
}
