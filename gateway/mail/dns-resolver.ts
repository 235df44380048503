import { promises as dns } from 'node:dns';
import { LRUCache } from 'lru-cache';

/**
 * The resolver every SPF/DKIM/DMARC/ARC lookup goes through. Node's
 * `Resolver` instances ignore `dns.setServers()`, so the servers from
 * DNS_SERVERS are set on this instance and the instance is handed to
 * mailauth explicitly; with no servers it uses the system configuration.
 *
 * Answers are reused for DNS_CACHE_SECONDS. Every message from a sender
 * repeats the same lookups (SPF may take ten, RFC 7208 §4.6.4, then the
 * DKIM key and the DMARC record), and Node does not cache them: since
 * c-ares 1.31 could, Node turns its query cache off (nodejs/node#57640).
 * Node does not expose the TTL of a TXT answer either, so the window is
 * fixed and short — well under the TTLs such records are published with — and
 * lookups asked while one is on the wire share it. Only definitive answers
 * are kept: records, and "no such name" / "no such record"; a timeout or
 * SERVFAIL is asked again by the next message.
 */
export type DnsResolveFn = (name: string, rrtype: string) => Promise<unknown>;

export interface DnsResolverOptions {
  /** Per-query timeout; SPF allows 10 lookups (RFC 7208 §4.6.4), so keep it short. */
  timeoutMs?: number;
  tries?: number;
  /** How long an answer is reused; 0 asks the DNS every time. */
  cacheSeconds?: number;
  /** Most answers kept (least recently used go first). */
  cacheEntries?: number;
}

/** c-ares codes that state what the DNS holds, rather than that it could not be asked. */
const DEFINITIVE_ERRORS = new Set(['ENOTFOUND', 'ENODATA']);

type Answer = { records: unknown } | { error: unknown };

export function createDnsResolver(servers: readonly string[], options: DnsResolverOptions = {}): DnsResolveFn {
  const resolver = new dns.Resolver({ timeout: options.timeoutMs ?? 3000, tries: options.tries ?? 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  const ask = (name: string, rrtype: string) => resolver.resolve(name, rrtype) as Promise<unknown>;
  const seconds = options.cacheSeconds ?? 0;
  if (seconds <= 0) return ask;

  const cache = new LRUCache<string, Answer, { name: string; rrtype: string }>({
    max: options.cacheEntries ?? 10_000,
    ttl: seconds * 1000,
    fetchMethod: async (_key, _stale, { context }) => {
      try {
        return { records: await ask(context.name, context.rrtype) };
      } catch (error) {
        if (DEFINITIVE_ERRORS.has((error as { code?: string }).code ?? '')) return { error };
        throw error; // not cached: the next lookup asks again
      }
    },
  });
  return async (name, rrtype) => {
    const lower = name.toLowerCase();
    const answer = await cache.fetch(`${rrtype} ${lower}`, { context: { name: lower, rrtype } });
    if (!answer) return ask(lower, rrtype);
    if ('error' in answer) throw answer.error;
    // A copy per caller: the cached records must not change with what one caller does to its answer.
    return structuredClone(answer.records);
  };
}
