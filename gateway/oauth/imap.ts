import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import type mongoose from 'mongoose';
import { isImapCredentialsRefusal } from '../accounts/imap-login';
import type { OAuthDeps } from './deps';
import { withAccessToken } from './tokens';

/**
 * IMAP with OAuth2: imapflow picks OAUTHBEARER (RFC 7628) or XOAUTH2 from
 * the server's capabilities when given `auth.accessToken`. A refused token
 * is refreshed once and the login retried (see withAccessToken).
 */

/** imapflow's way of saying "the server refused the credentials" (not a network or TLS problem). */
export function isImapAuthFailure(err: unknown): boolean {
  // A temporary failure of the server (RFC 5530 UNAVAILABLE…) is no reason to refresh the token or ask the user to sign in again.
  return isImapCredentialsRefusal(err);
}

function describeImapFailure(err: unknown): string {
  const e = err as { responseText?: string; message?: string } | null;
  return (e?.responseText ?? e?.message ?? '').trim();
}

/** nodemailer's way of saying the same for SMTP AUTH (535 → code 'EAUTH'). */
export function isSmtpAuthFailure(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === 'EAUTH';
}

export type ImapOptionsWithoutAuth = Omit<ImapFlowOptions, 'auth'>;

/**
 * A connected (authenticated) ImapFlow client for an OAuth account. `user`
 * is the mailbox address the token was granted for. Each attempt uses a
 * fresh client (an ImapFlow instance cannot reconnect); `onClient` is told
 * about each so the caller can track/close it and attach its 'error' handler.
 */
export async function connectImapWithOAuth(
  deps: OAuthDeps,
  accountId: string | mongoose.Types.ObjectId,
  user: string,
  options: ImapOptionsWithoutAuth,
  onClient?: (client: ImapFlow) => void,
): Promise<ImapFlow> {
  return withAccessToken(deps, accountId, async (accessToken) => {
    const client = new ImapFlow({ ...options, auth: { user, accessToken } } as ImapFlowOptions);
    client.on('error', () => undefined); // connect() rejects with the same error
    onClient?.(client);
    try {
      await client.connect();
      return client;
    } catch (err) {
      client.close();
      throw err;
    }
  }, { isAuthFailure: isImapAuthFailure, describe: describeImapFailure });
}
