import dns from 'node:dns';
import net from 'node:net';

/**
 * Outgoing connections to a host someone typed (a mailbox's IMAP/SMTP
 * server, a webhook URL) must not reach this machine, the LAN or a cloud
 * metadata service unless allowed. The host is resolved once, every address
 * is checked, and the connection then goes to those addresses only (a name
 * resolved again at connect time could point elsewhere: DNS rebinding). A
 * name with any blocked address is refused as a whole, so round-robin
 * cannot slip one in. Callers differ only in what is blocked and how the
 * refusal is worded.
 */

/** A host resolved once, every address checked. */
export interface CheckedHost {
  /** The host as typed, without IPv6 brackets or a final dot. */
  host: string;
  /** Every address the host has, in the resolver's order. */
  addresses: dns.LookupAddress[];
  /** The name typed, for TLS (SNI and certificate check); unset when an address was typed. */
  servername?: string;
}

export type LookupAll = (host: string) => Promise<dns.LookupAddress[]>;
export const systemLookupAll: LookupAll = (host) => dns.promises.lookup(host, { all: true, verbatim: true });

/** Why an address may not be connected to (the network it falls in), or undefined when it may. */
export type AddressPolicy = (address: string) => string | undefined;

/** The host has addresses the policy refuses: `blocked` pairs each with the policy's reason. */
export class BlockedHostError extends Error {
  readonly code = 'BLOCKED_HOST';
  constructor(readonly host: string, readonly blocked: ReadonlyArray<{ address: string; reason: string }>) {
    super(`${host} resolves to a refused address (${blocked.map((b) => `${b.address}: ${b.reason}`).join(', ')})`);
    this.name = 'BlockedHostError';
  }
}

function withTimeout(lookup: LookupAll, host: string, timeoutMs: number | undefined): Promise<dns.LookupAddress[]> {
  if (timeoutMs === undefined) return lookup(host);
  return new Promise((resolve, reject) => {
    // getaddrinfo has no timeout of its own; the caller's connection budget covers it.
    const timer = setTimeout(() => reject(Object.assign(new Error(`DNS lookup of ${host} took longer than ${timeoutMs} ms`), { code: 'EAI_AGAIN', hostname: host })), timeoutMs);
    lookup(host).then((addresses) => {
      clearTimeout(timer);
      resolve(addresses);
    }, (err: unknown) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * Resolve `host` (an address typed is taken as it is) and check every
 * address against `policy`. Rejects with BlockedHostError naming every
 * refused address, with the resolver's error (ENOTFOUND, EAI_AGAIN, …), or
 * with ENOTFOUND when the name has no address.
 */
export async function resolveChecked(host: string, options: { policy: AddressPolicy; lookup?: LookupAll; timeoutMs?: number }): Promise<CheckedHost> {
  const name = host.trim().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  const literal = net.isIP(name);
  const addresses = literal !== 0 ? [{ address: name, family: literal }] : await withTimeout(options.lookup ?? systemLookupAll, name, options.timeoutMs);
  if (addresses.length === 0) throw Object.assign(new Error(`${name} has no address`), { code: 'ENOTFOUND', hostname: name });
  const blocked = addresses.flatMap(({ address }) => {
    const reason = options.policy(address);
    return reason === undefined ? [] : [{ address, reason }];
  });
  if (blocked.length > 0) throw new BlockedHostError(name, blocked);
  return literal !== 0 ? { host: name, addresses } : { host: name, addresses, servername: name };
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/**
 * A `lookup` for net/tls/http connections that answers with the checked
 * addresses only: the socket tries each in turn (Node's autoSelectFamily),
 * as it would with the name, and never asks DNS again.
 */
export function checkedLookup(checked: CheckedHost) {
  return (hostname: string, options: dns.LookupOptions, callback: LookupCallback): void => {
    const wanted = options.family === 4 || options.family === 6 ? checked.addresses.filter((a) => a.family === options.family) : checked.addresses;
    setImmediate(() => {
      if (wanted.length === 0) callback(Object.assign(new Error(`${hostname} has no IPv${String(options.family)} address`), { code: 'ENOTFOUND', hostname }), '');
      else if (options.all) callback(null, wanted);
      else callback(null, wanted[0]!.address, wanted[0]!.family);
    });
  };
}
