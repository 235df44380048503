import type mongoose from 'mongoose';
import { AppError } from '../core/errors';
import type { Store } from '../store';

type ObjectId = mongoose.Types.ObjectId;

/**
 * Who an envelope recipient (RFC 5321 RCPT TO) is. Postroom accepts mail
 * only for
 *   - postmaster (RFC 5321 §4.5.1), delivered to the first admin's dropbox,
 *   - a mail account's forwarding address `<readable>.<token>@GATEWAY_DOMAIN`
 *     (exact match on MailAccount.forwardingAddress), and
 *   - a user's dropbox `dropbox.<User.dropboxToken>@GATEWAY_DOMAIN` (BCC or
 *     MX-routed mail),
 * and never relays: any other domain is "foreign".
 *
 * Lookups are cached for a few seconds (a new or disabled account takes
 * effect within `ttlMs`). When the store cannot be read, an entry for a
 * deliverable recipient seen in the last `staleMs` is still used, so a
 * store hiccup turns into a 451 at end of DATA (where the message is
 * retried as a whole) rather than rejected recipients.
 */

export type RecipientResolution =
  | {
      kind: 'account';
      address: string;
      accountId: ObjectId;
      ownerId: ObjectId;
      /** De-duplication scope: the account id. */
      mailboxKey: string;
      email: string;
      domain: string;
      /** Forwarding was verified when looked up (cached for ttlMs): forwarded mail then only refreshes lastForwardedAt. */
      forwardingVerified: boolean;
    }
  | {
      kind: 'dropbox';
      address: string;
      ownerId: ObjectId;
      mailboxKey: string;
      /** Domains of the owner's mail accounts: mail they BCC comes from these. */
      domains: string[];
    }
  | { kind: 'disabled'; address: string; what: 'account' | 'user' }
  | { kind: 'unknown'; address: string }
  | { kind: 'foreign'; address: string; domain: string };

export interface RecipientResolverOptions {
  store: Store;
  gatewayDomain: string;
  /** How long a lookup is reused; default 3 s. */
  ttlMs?: number;
  /** How old a deliverable entry may be when the store is unavailable; default 10 min. */
  staleMs?: number;
  maxEntries?: number;
  now?: () => number;
}

export interface RecipientResolver {
  resolve(address: string): Promise<RecipientResolution>;
  /** Forget cached lookups (tests, or after the admin changes accounts in-process). */
  clear(): void;
}

const DROPBOX_PREFIX = 'dropbox.';

/** Split `local@domain` at the last '@' (a quoted local part may contain '@'). */
export function splitRecipient(address: string): { local: string; domain: string } {
  const normalized = address.trim().toLowerCase();
  const at = normalized.lastIndexOf('@');
  if (at < 0) return { local: normalized, domain: '' };
  return { local: normalized.slice(0, at), domain: normalized.slice(at + 1).replace(/\.$/, '') };
}

export function createRecipientResolver(options: RecipientResolverOptions): RecipientResolver {
  const { store } = options;
  const gatewayDomain = options.gatewayDomain.toLowerCase();
  const ttlMs = options.ttlMs ?? 3000;
  const staleMs = options.staleMs ?? 10 * 60 * 1000;
  const maxEntries = options.maxEntries ?? 10000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { at: number; value: RecipientResolution }>();
  const inflight = new Map<string, Promise<RecipientResolution>>();

  async function lookup(address: string, local: string): Promise<RecipientResolution> {
    if (local === 'postmaster') {
      // RFC 5321 §4.5.1: a server must accept mail for "postmaster" of the
      // domains it serves (and unqualified). It goes to the first enabled
      // admin's dropbox, where the console shows it.
      const admin = await store.models.User.findOne({ role: 'admin', disabled: false }, { _id: 1 }).sort({ _id: 1 }).lean();
      if (!admin) return { kind: 'unknown', address };
      return { kind: 'dropbox', address, ownerId: admin._id, mailboxKey: `dropbox:${admin._id.toString()}`, domains: [] };
    }
    if (local.startsWith(DROPBOX_PREFIX)) {
      const token = local.slice(DROPBOX_PREFIX.length);
      const user = token ? await store.models.User.findOne({ dropboxToken: token }, { _id: 1, disabled: 1 }).lean() : null;
      if (!user) return { kind: 'unknown', address };
      if (user.disabled) return { kind: 'disabled', address, what: 'user' };
      const domains = (await store.models.MailAccount.find({ ownerId: user._id }, { domain: 1 }).lean()).map((a) => a.domain);
      return { kind: 'dropbox', address, ownerId: user._id, mailboxKey: `dropbox:${user._id.toString()}`, domains: [...new Set(domains)] };
    }
    const account = await store.models.MailAccount.findOne({ forwardingAddress: address }, { _id: 1, ownerId: 1, email: 1, domain: 1, enabled: 1, forwarding: 1 }).lean();
    if (!account) return { kind: 'unknown', address };
    if (!account.enabled) return { kind: 'disabled', address, what: 'account' };
    // An employee who was disabled (left the business) stops receiving too.
    const owner = await store.models.User.findById(account.ownerId, { disabled: 1 }).lean();
    if (!owner) return { kind: 'unknown', address };
    if (owner.disabled) return { kind: 'disabled', address, what: 'user' };
    return {
      kind: 'account',
      address,
      accountId: account._id,
      ownerId: account.ownerId,
      mailboxKey: account._id.toString(),
      email: account.email,
      domain: account.domain,
      forwardingVerified: account.forwarding?.status === 'verified' && Boolean(account.forwarding.verifiedAt),
    };
  }

  function remember(address: string, value: RecipientResolution): void {
    cache.delete(address);
    cache.set(address, { at: now(), value });
    if (cache.size > maxEntries) cache.delete(cache.keys().next().value as string);
  }

  async function resolve(rawAddress: string): Promise<RecipientResolution> {
    const { local, domain } = splitRecipient(rawAddress);
    const unqualifiedPostmaster = local === 'postmaster' && domain === '';
    const address = unqualifiedPostmaster ? `postmaster@${gatewayDomain}` : `${local}@${domain}`;
    if (domain !== gatewayDomain && !unqualifiedPostmaster) return { kind: 'foreign', address, domain };

    const cached = cache.get(address);
    if (cached && now() - cached.at < ttlMs) return cached.value;

    let pending = inflight.get(address);
    if (!pending) {
      pending = lookup(address, local).finally(() => inflight.delete(address));
      inflight.set(address, pending);
    }
    try {
      const value = await pending;
      remember(address, value);
      return value;
    } catch (err) {
      const deliverable = cached && (cached.value.kind === 'account' || cached.value.kind === 'dropbox');
      if (deliverable && now() - cached.at < staleMs) return cached.value;
      throw new AppError('STORE_UNAVAILABLE', 'Temporary lookup failure, please retry', {
        status: 503,
        smtpCode: 451,
        enhancedCode: '4.3.0',
        tag: 'RCPT01',
        cause: err,
      });
    }
  }

  return { resolve, clear: () => cache.clear() };
}
