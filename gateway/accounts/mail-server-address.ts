import { BlockedHostError, resolveChecked, systemLookupAll, type CheckedHost, type LookupAll } from '../core/checked-host';
import { blockedMailServerNetworks } from '../core/mail-server-networks';

let resolver: LookupAll = systemLookupAll;

/** Answer DNS questions for mail servers with `lookup` (tests: a name with a dead address first); undefined restores the system's. */
export function setMailServerResolver(lookup: LookupAll | undefined): void {
  resolver = lookup ?? systemLookupAll;
}

/** The host resolves to a network in MAIL_SERVER_BLOCKED_NETWORKS. */
export class MailServerBlockedError extends Error {
  readonly code = 'MAIL_SERVER_BLOCKED';
  constructor(readonly host: string, readonly address: string, readonly network: string) {
    super(`${host}${host === address ? '' : ` is ${address}, which`} is in a network Postroom does not connect to for mailboxes (${network})`);
    this.name = 'MailServerBlockedError';
  }
}

/**
 * Resolve a mailbox server's host once and check every address against
 * MAIL_SERVER_BLOCKED_NETWORKS (gateway/core/checked-host.ts); connect
 * through `checkedLookup` of the result.
 */
export async function pinMailServer(host: string, timeoutMs = 30_000): Promise<CheckedHost> {
  const blocked = blockedMailServerNetworks();
  try {
    return await resolveChecked(host, { policy: (address) => blocked.match(address), lookup: resolver, timeoutMs });
  } catch (err) {
    if (!(err instanceof BlockedHostError)) throw err;
    const first = err.blocked[0]!;
    throw new MailServerBlockedError(err.host, first.address, first.reason);
  }
}
