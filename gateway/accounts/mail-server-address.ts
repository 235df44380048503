import dns from 'node:dns';
import net from 'node:net';
import { blockedMailServerNetworks } from '../core/mail-server-networks';

/** A mailbox's server resolved to the addresses Postroom may connect to. */
export interface PinnedServer {
  /** The first address to try (IPv4 first): for a client that takes one address. */
  address: string;
  /** Every address the name has, each checked; in the resolver's order. */
  addresses: dns.LookupAddress[];
  /** The name typed, for TLS (SNI and certificate check); unset when an address was typed. */
  servername?: string;
}

type LookupAll = (host: string) => Promise<dns.LookupAddress[]>;
const systemLookupAll: LookupAll = (host) => dns.promises.lookup(host, { all: true, verbatim: true });
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

function lookupAll(host: string, timeoutMs: number): Promise<dns.LookupAddress[]> {
  return new Promise((resolve, reject) => {
    // getaddrinfo has no timeout of its own; the connection's budget covers it, as it did inside imapflow and nodemailer.
    const timer = setTimeout(() => reject(Object.assign(new Error(`DNS lookup of ${host} took longer than ${timeoutMs} ms`), { code: 'EAI_AGAIN', hostname: host })), timeoutMs);
    resolver(host).then((addresses) => {
      clearTimeout(timer);
      resolve(addresses);
    }, (err: unknown) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * Resolve a mailbox server's host once and check every address against
 * MAIL_SERVER_BLOCKED_NETWORKS; the connection then goes to the addresses
 * checked (a name re-resolved later could point elsewhere: DNS rebinding).
 * A name with any blocked address is refused as a whole, so round-robin
 * cannot slip one in.
 */
export async function pinMailServer(host: string, timeoutMs = 30_000): Promise<PinnedServer> {
  const name = host.trim().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  const blocked = blockedMailServerNetworks();
  if (net.isIP(name) !== 0) {
    const network = blocked.match(name);
    if (network) throw new MailServerBlockedError(name, name, network);
    return { address: name, addresses: [{ address: name, family: net.isIP(name) }] };
  }
  const addresses = await lookupAll(name, timeoutMs);
  for (const { address } of addresses) {
    const network = blocked.match(address);
    if (network) throw new MailServerBlockedError(name, address, network);
  }
  const first = addresses.find((a) => a.family === 4) ?? addresses[0];
  if (!first) throw Object.assign(new Error(`${name} has no address`), { code: 'ENOTFOUND', hostname: name });
  return { address: first.address, addresses, servername: name };
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/**
 * A `lookup` for net/tls.connect that answers with the pinned addresses
 * only: the socket tries each in turn (Node's autoSelectFamily), as it did
 * with the name, and never asks DNS again.
 */
export function pinnedLookup(server: PinnedServer) {
  return (hostname: string, options: dns.LookupOptions, callback: LookupCallback): void => {
    const wanted = options.family === 4 || options.family === 6 ? server.addresses.filter((a) => a.family === options.family) : server.addresses;
    setImmediate(() => {
      if (wanted.length === 0) callback(Object.assign(new Error(`${hostname} has no IPv${String(options.family)} address`), { code: 'ENOTFOUND', hostname }), '');
      else if (options.all) callback(null, wanted);
      else callback(null, wanted[0]!.address, wanted[0]!.family);
    });
  };
}
