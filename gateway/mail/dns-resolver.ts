import { promises as dns } from 'node:dns';

/**
 * The resolver every SPF/DKIM/DMARC/ARC lookup goes through. Node's
 * `Resolver` instances ignore `dns.setServers()`, so the servers from
 * DNS_SERVERS are set on this instance and the instance is handed to
 * mailauth explicitly; with no servers it uses the system configuration.
 */
export type DnsResolveFn = (name: string, rrtype: string) => Promise<unknown>;

export interface DnsResolverOptions {
  /** Per-query timeout; SPF allows 10 lookups (RFC 7208 §4.6.4), so keep it short. */
  timeoutMs?: number;
  tries?: number;
}

export function createDnsResolver(servers: readonly string[], options: DnsResolverOptions = {}): DnsResolveFn {
  const resolver = new dns.Resolver({ timeout: options.timeoutMs ?? 3000, tries: options.tries ?? 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  return (name, rrtype) => resolver.resolve(name, rrtype) as Promise<unknown>;
}
