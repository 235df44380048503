import net from 'node:net';
import { BlockedHostError, resolveChecked, type CheckedHost, type LookupAll } from '../core/checked-host';
import { AppError } from '../core/errors';
import { embeddedIpv4 } from '../core/network-list';

/**
 * Server-side request forgery guard for webhook URLs: an admin-entered URL
 * must not make Postroom talk to itself, the LAN or a cloud metadata
 * endpoint unless an admin explicitly allowed private targets for that
 * webhook. The check runs on the resolved IP addresses (a public name can
 * point at 127.0.0.1), when the webhook is saved and before each delivery,
 * which connects to the addresses checked only; redirects are never
 * followed.
 */

/** Special-use ranges (RFC 6890 and its IANA registries) that are not the public Internet. */
const BLOCKED = new net.BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) BLOCKED.addSubnet(network, prefix, 'ipv4');
// Also the forms that carry an IPv4 address some network may route to it: IPv4-compatible (::/96, RFC 4291
// §2.5.5.1), IPv4-translated (::ffff:0:0:0/96, RFC 2765), local-use NAT64 (64:ff9b:1::/48, RFC 8215) and
// 6to4 (2002::/16, RFC 3056: 2002:a9fe:a9fe:: is 169.254.169.254 behind a relay).
for (const [network, prefix] of [
  ['::', 96], ['::ffff:0:0:0', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 23], ['2001:db8::', 32], ['2002::', 16],
  ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
] as const) BLOCKED.addSubnet(network, prefix, 'ipv6');

/** True for loopback, private, link-local, CGNAT, documentation, multicast and other non-public addresses. */
export function isPrivateAddress(ip: string): boolean {
  const family = net.isIP(ip);
  if (family === 4) return BLOCKED.check(ip, 'ipv4');
  if (family === 6) {
    const v4 = embeddedIpv4(ip);
    if (v4) return BLOCKED.check(v4, 'ipv4');
    return BLOCKED.check(ip, 'ipv6');
  }
  return true; // not an IP at all: refuse rather than guess
}

const refused = (message: string) => new AppError('WEBHOOK_URL_REFUSED', message, { status: 400, fields: { url: message } });

/** Parse and check the shape of a webhook URL (no network). */
export function parseWebhookUrl(input: string): URL {
  let url: URL;
  try {
    url = new URL(String(input ?? '').trim());
  } catch {
    throw refused('must be an absolute http(s) URL such as https://crm.example.com/hooks/postroom');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw refused(`only http and https URLs are allowed, not ${url.protocol.replace(':', '')}`);
  if (url.username || url.password) throw refused('must not contain a user name or password: authenticate the request with the signature instead');
  if (!url.hostname) throw refused('must name a host');
  url.hash = '';
  return url;
}

/** Hostname without IPv6 brackets. */
export function bareHost(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

/**
 * Resolve the URL's host and refuse it when any address is private (unless
 * allowed), through the shared check (gateway/core/checked-host.ts). A name
 * that resolves to both a public and a private address is refused: the
 * connection could go to either. Deliveries connect through
 * `checkedLookup` of the result, so DNS rebinding after the check does not
 * help.
 */
export async function checkWebhookTarget(url: URL, options: { allowPrivate: boolean; lookup?: LookupAll; timeoutMs?: number }): Promise<CheckedHost> {
  const host = bareHost(url);
  const policy = (address: string) => (!options.allowPrivate && isPrivateAddress(address) ? 'private or loopback' : undefined);
  try {
    return await resolveChecked(host, { policy, lookup: options.lookup, timeoutMs: options.timeoutMs });
  } catch (err) {
    if (err instanceof BlockedHostError) {
      throw refused(`${host} resolves to a private or loopback address (${err.blocked.map((b) => b.address).join(', ')}); an admin must allow private targets for this webhook explicitly`);
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' && /has no address$/.test((err as Error).message)) throw refused(`host ${host} has no address`);
    throw refused(`host ${host} cannot be resolved (${code ?? (err as Error).message})`);
  }
}
