import { ImapFlow, type ListResponse } from 'imapflow';
import type { Logger } from '../core/log';
import { imapClientOptions, type ImapEndpoint } from '../accounts/imap-client';
import type { ObjectId } from '../accounts/ids';
import type { ImapLoginSettings } from '../accounts/imap-login';
import { connectImapWithOAuth, type OAuthDeps } from '../oauth';

/**
 * Filing a sent message in the provider's Sent folder over IMAP (RFC 3501
 * §6.3.11 APPEND), so the user's mail program shows it like any other sent
 * mail. The bytes appended are the ones Postroom stored, so when the IMAP
 * sync later reads the Sent folder, ingest recognises the copy (same
 * Message-ID and content) and only records the extra source.
 */

/** Names of the Sent folder on servers that do not mark it \Sent (RFC 6154). */
const SENT_NAMES = ['sent', 'sent items', 'sent messages', 'sent mail', 'gesendet', 'gesendete elemente', 'envoyés', 'éléments envoyés'];

/** The folder to append to: the one marked \Sent, else one with a usual name. Null when there is none. */
export function findSentFolder(list: ReadonlyArray<Pick<ListResponse, 'path' | 'name' | 'specialUse' | 'flags'>>): string | null {
  const selectable = list.filter((entry) => !entry.flags?.has('\\Noselect') && !entry.flags?.has('\\NonExistent'));
  const marked = selectable.find((entry) => entry.specialUse === '\\Sent');
  if (marked) return marked.path;
  const named = selectable.find((entry) => SENT_NAMES.includes((entry.name ?? entry.path).toLowerCase()));
  return named?.path ?? null;
}

export interface SentAppendOptions {
  timeoutMs?: number;
  log?: Logger;
  /** The message's Message-ID (bare): a copy already in the folder is not appended again. */
  messageId?: string;
}

export type SentAppendResult = { outcome: 'appended'; folder: string; uid: number | null } | { outcome: 'no-folder' };

/**
 * Log in, find the Sent folder, APPEND the message flagged \Seen with its
 * date as INTERNALDATE, log out. Rejects with imapflow's error (the caller
 * classifies it with classifyImapError).
 */
export async function appendToSentFolder(settings: ImapLoginSettings, raw: Buffer, date: Date, options: SentAppendOptions = {}): Promise<SentAppendResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const client = new ImapFlow(await imapClientOptions(settings, { user: settings.username, pass: settings.password }, timeoutMs));
  client.on('error', () => undefined); // connect()/append() reject with the same error
  try {
    await client.connect();
    return await appendWith(client, settings.host, raw, date, options);
  } finally {
    closeQuietly(client);
  }
}

/** Where and as whom an OAuth2 account appends: `user` is the mailbox address the token was granted for. */
export interface OAuthSentTarget extends ImapEndpoint {
  accountId: ObjectId;
  user: string;
}

/**
 * The same for an account signed in with OAuth2: the login uses an access
 * token (OAUTHBEARER or XOAUTH2), refreshed once if the server refuses it
 * (connectImapWithOAuth). OAuth failures reject with gateway/oauth's AppErrors.
 */
export async function appendToSentFolderWithOAuth(deps: OAuthDeps, target: OAuthSentTarget, raw: Buffer, date: Date, options: SentAppendOptions = {}): Promise<SentAppendResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const client = await connectImapWithOAuth(deps, target.accountId, target.user, await imapClientOptions(target, undefined, timeoutMs));
  try {
    return await appendWith(client, target.host, raw, date, options);
  } finally {
    closeQuietly(client);
  }
}

async function appendWith(client: ImapFlow, host: string, raw: Buffer, date: Date, options: SentAppendOptions): Promise<SentAppendResult> {
  const folder = findSentFolder(await client.list());
  if (!folder) {
    options.log?.warn({ host }, 'no Sent folder on the IMAP server; the sent message is not appended');
    return { outcome: 'no-folder' };
  }
  if (options.messageId) {
    const filed = await alreadyFiled(client, folder, options.messageId, date);
    if (filed !== null) {
      await client.logout().catch(() => undefined);
      options.log?.info({ folder, uid: filed }, 'the sent message is in the Sent folder already; not appended again');
      return { outcome: 'appended', folder, uid: filed };
    }
  }
  const result = await client.append(folder, raw, ['\\Seen'], date);
  if (!result) throw Object.assign(new Error(`APPEND to ${folder} was refused`), { code: 'APPEND_FAILED' });
  await client.logout().catch(() => undefined);
  return { outcome: 'appended', folder, uid: typeof result.uid === 'number' ? result.uid : null };
}

/**
 * The UID of a copy with this Message-ID in the folder, or null. An APPEND
 * whose answer was lost (the connection dropped after the server filed it),
 * or a process stopped between the APPEND and recording it, is tried again:
 * without this look the user's mail program showed the sent mail twice.
 * SINCE the day before the date it was filed with (its INTERNALDATE) keeps
 * the header search to a few messages of a large Sent folder.
 */
async function alreadyFiled(client: ImapFlow, folder: string, messageId: string, date: Date): Promise<number | null> {
  await client.mailboxOpen(folder, { readOnly: true });
  const bracketed = `<${messageId.replace(/^<|>$/g, '')}>`;
  const found = (await client.search({ since: new Date(date.getTime() - 86_400_000), header: { 'message-id': bracketed } }, { uid: true })) || [];
  return found.length > 0 ? found[0] : null;
}

function closeQuietly(client: ImapFlow): void {
  try {
    client.close();
  } catch {
    // already closed
  }
}
