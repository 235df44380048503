import dns from 'node:dns';
import net from 'node:net';
import { blockedMailServerNetworks } from '../core/mail-server-networks';

/** A mailbox's server resolved to an address Postroom may connect to. */
export interface PinnedServer {
  /** The IP address to connect to. */
  address: string;
  /** The name typed, for TLS (SNI and certificate check); unset when an address was typed. */
  servername?: string;
}

/** The host resolves to a network in MAIL_SERVER_BLOCKED_NETWORKS. */
export class MailServerBlockedError extends Error {
  readonly code = 'MAIL_SERVER_BLOCKED';
  constructor(readonly host: string, readonly address: string, readonly network: string) {
    super(`${host}${host === address ? '' : ` is ${address}, which`} is in a network Postroom does not connect to for mailboxes (${network})`);
    this.name = 'MailServerBlockedError';
  }
}

function lookupAll(host: string, timeoutMs: number): Promise<dns.LookupAddress[]> {
  return new Promise((resolve, reject) => {
    // getaddrinfo has no timeout of its own; the connection's budget covers it, as it did inside imapflow and nodemailer.
    const timer = setTimeout(() => reject(Object.assign(new Error(`DNS lookup of ${host} took longer than ${timeoutMs} ms`), { code: 'EAI_AGAIN', hostname: host })), timeoutMs);
    dns.lookup(host, { all: true, verbatim: true }, (err, addresses) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(addresses);
    });
  });
}

/**
 * Resolve a mailbox server's host once and check every address against
 * MAIL_SERVER_BLOCKED_NETWORKS; the connection then goes to the address
 * checked (a name re-resolved later could point elsewhere: DNS rebinding).
 * A name with any blocked address is refused as a whole, so round-robin
 * cannot slip one in. IPv4 is tried first: most mail servers publish both,
 * and containers often have no IPv6 route.
 */
export async function pinMailServer(host: string, timeoutMs = 30_000): Promise<PinnedServer> {
  const name = host.trim().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  const blocked = blockedMailServerNetworks();
  if (net.isIP(name) !== 0) {
    const network = blocked.match(name);
    if (network) throw new MailServerBlockedError(name, name, network);
    return { address: name };
  }
  const addresses = await lookupAll(name, timeoutMs);
  for (const { address } of addresses) {
    const network = blocked.match(address);
    if (network) throw new MailServerBlockedError(name, address, network);
  }
  const first = addresses.find((a) => a.family === 4) ?? addresses[0];
  if (!first) throw Object.assign(new Error(`${name} has no address`), { code: 'ENOTFOUND', hostname: name });
  return { address: first.address, servername: name };
}
