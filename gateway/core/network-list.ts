import net from 'node:net';

/**
 * Lists of IP networks ("127.0.0.0/8,::1/128,10.1.2.3") as Node's own
 * BlockList, which does the prefix matching: a list is parsed and checked
 * here, never by comparing address strings.
 */

export interface NetworkList {
  /** The entries as configured, for messages and logs. */
  readonly entries: readonly string[];
  /** The configured entry an address falls in, or undefined. */
  match(address: string): string | undefined;
}

/** IPv4 embedded in IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible or NAT64 (64:ff9b::/96) IPv6 addresses. */
export function embeddedIpv4(ip: string): string | null {
  // The URL parser writes an IPv6 address in its one short form, so 0:0:0:0:0:ffff:7f00:1 is ::ffff:7f00:1 too.
  const bare = ip.replace(/%.*$/, ''); // a zone (fe80::1%eth0) is no part of the address, and the URL parser refuses it
  const lower = net.isIP(bare) === 6 ? new URL(`http://[${bare}]/`).hostname.slice(1, -1) : bare.toLowerCase();
  const dotted = /^(?:::ffff:|::|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted) return dotted[1];
  const hex = /^(?:::ffff:|::|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hex) {
    const high = parseInt(hex[1], 16);
    const low = parseInt(hex[2], 16);
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  return null;
}

/** An IPv4 address written as IPv6 (::ffff:127.0.0.1) is that IPv4 address, so an IPv4 entry covers it. */
function plainAddress(address: string): { address: string; family: 'ipv4' | 'ipv6' } | null {
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const v4 = net.isIP(bare) === 6 ? embeddedIpv4(bare) : null;
  if (v4) return { address: v4, family: 'ipv4' };
  const version = net.isIP(bare);
  if (version === 0) return null;
  return { address: bare, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** One entry: an address or address/prefix; the problem in words when it is neither. */
function parseEntry(entry: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | string {
  const [ip = '', prefixText, ...rest] = entry.split('/');
  const parsed = plainAddress(ip);
  if (!parsed || rest.length > 0) return `"${entry}" is not an IP address or network such as 10.0.0.0/8 or fd00::/8`;
  const max = parsed.family === 'ipv4' ? 32 : 128;
  if (prefixText === undefined) return { ...parsed, prefix: max };
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) return `"${entry}": the prefix length must be 0-${max}`;
  return { ...parsed, prefix: Number(prefixText) };
}

/**
 * Parse a comma-separated list; `none` is the empty list. Throws an Error
 * naming every bad entry.
 */
export function parseNetworkList(text: string): NetworkList {
  const entries = text.split(',').map((e) => e.trim()).filter((e) => e !== '');
  if (entries.length === 1 && entries[0]!.toLowerCase() === 'none') return { entries: [], match: () => undefined };
  const problems: string[] = [];
  const parsed: Array<{ entry: string; list: net.BlockList; family: 'ipv4' | 'ipv6' }> = [];
  for (const entry of entries) {
    const result = parseEntry(entry);
    if (typeof result === 'string') {
      problems.push(result);
      continue;
    }
    const list = new net.BlockList();
    list.addSubnet(result.address, result.prefix, result.family);
    parsed.push({ entry, list, family: result.family });
  }
  if (problems.length > 0) throw new Error(problems.join('; '));
  return {
    entries: Object.freeze(entries),
    match(address: string) {
      const plain = plainAddress(address);
      if (!plain) return undefined;
      return parsed.find((p) => p.family === plain.family && p.list.check(plain.address, plain.family))?.entry;
    },
  };
}
