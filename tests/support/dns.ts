/**
 * A tiny authoritative DNS server on 127.0.0.1 for tests (npm dns2, which
 * ships its own typings). UDP and TCP listen on the same port because
 * resolvers (c-ares in Node) retry over TCP on that port when a UDP answer is
 * truncated, which happens with 4096-bit DKIM keys.
 *
 * Point code at it with a Resolver: `r.setServers([dns.address])`.
 */
import type net from 'node:net';
import dns2 from 'dns2';

const { Packet } = dns2;

export interface TestDns {
  address: string;  // '127.0.0.1:PORT' – the form DNS_SERVERS takes
  port: number;
  setTxt(name: string, values: string | string[]): void;
  setA(name: string, ip: string): void;
  setMx(name: string, exchange: string, priority?: number): void;
  remove(name: string): void;
  clear(): void;
  /** Answer questions about `name` with SERVFAIL (fault injection), or normally again with `false`. */
  failing(name: string, on?: boolean): void;
  /** Never answer questions about `name` (a lost packet or a dead server: the resolver times out), or answer again with `false`. */
  silent(name: string, on?: boolean): void;
  /** Questions received so far (a resolver's cache shows as questions not asked). */
  readonly questions: number;
  stop(): Promise<void>;
}

interface NameRecords {
  a?: string[];
  txt?: string[][]; // one entry per TXT record, each a list of character-strings
  mx?: Array<{ exchange: string; priority: number }>;
}

const HOST = '127.0.0.1';
// TTL 0 by default: tests change records between lookups, and a resolver that
// honours TTLs (c-ares can, though Node 20.20 turns its cache off) must not
// keep the old ones. Benchmarks pass a real zone's TTL. The gateway's own
// cache (gateway/mail/dns-resolver.ts, DNS_CACHE_SECONDS) cannot see TTLs.
const DEFAULT_TTL = 0;

const key = (name: string) => name.toLowerCase().replace(/\.$/, '');

/** Splits text into <= 255-byte character-strings without cutting a UTF-8 sequence. */
export function splitTxt(value: string): string[] {
  const chunks: string[] = [];
  let current = '';
  for (const ch of value) {
    if (Buffer.byteLength(current + ch) > 255) {
      chunks.push(current);
      current = '';
    }
    current += ch;
  }
  chunks.push(current);
  return chunks;
}

function answer(zone: Map<string, NameRecords>, failing: Set<string>, request: dns2.Packet, ttl: number): dns2.Packet {
  const response = Packet.createResponseFromRequest(request);
  response.header.aa = 1;
  for (const q of request.questions) {
    if (failing.has(key(q.name))) {
      response.header.rcode = 2; // SERVFAIL
      continue;
    }
    const records = zone.get(key(q.name));
    if (!records) {
      response.header.rcode = 3; // NXDOMAIN
      continue;
    }
    const add = (type: number, rdata: Partial<dns2.Packet.Resource>) =>
      response.answers.push(Packet.createResourceFromQuestion(q, { type, class: Packet.CLASS.IN, ttl, ...rdata }));
    const any = q.type === Packet.TYPE.ANY;
    if (q.type === Packet.TYPE.A || any) for (const address of records.a ?? []) add(Packet.TYPE.A, { address });
    if (q.type === Packet.TYPE.TXT || any) for (const data of records.txt ?? []) add(Packet.TYPE.TXT, { data });
    if (q.type === Packet.TYPE.MX || any) for (const mx of records.mx ?? []) add(Packet.TYPE.MX, mx);
    // Known name without records of that type: NOERROR with no answers (NODATA).
  }
  return response;
}

export async function startDns(options: { ttl?: number } = {}): Promise<TestDns> {
  const ttl = options.ttl ?? DEFAULT_TTL;
  const zone = new Map<string, NameRecords>();
  const failing = new Set<string>();
  const silent = new Set<string>();
  let questions = 0;
  const handle: dns2.DnsHandler = (request, send) => {
    questions += request.questions.length;
    if (request.questions.some((q) => silent.has(key(q.name)))) return;
    let response: dns2.Packet;
    try {
      response = answer(zone, failing, request, ttl);
    } catch {
      response = Packet.createResponseFromRequest(request);
      response.header.rcode = 2; // SERVFAIL rather than a silent timeout
    }
    send(response).catch(() => undefined); // client gone: nothing to do
  };

  // UDP on a random port, then TCP on the same number; retry if TCP's is taken.
  for (let attempt = 1; ; attempt++) {
    const udp = dns2.createUDPServer(handle);
    await udp.listen(0, HOST);
    const port = udp.address().port;
    const tcp = dns2.createTCPServer(handle);
    // Tracked so stop() can drop idle keep-alive connections: close() waits for them.
    const sockets = new Set<net.Socket>();
    tcp.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    const bound = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, HOST, () => resolve(true));
    });
    if (!bound) {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      if (attempt >= 5) throw new Error('test DNS: could not bind UDP and TCP on one port');
      continue;
    }
    const update = (name: string, change: (r: NameRecords) => void) => {
      const r = zone.get(key(name)) ?? {};
      change(r);
      zone.set(key(name), r);
    };
    let stopped: Promise<void> | undefined;
    return {
      address: `${HOST}:${port}`,
      port,
      setTxt: (name, values) => update(name, (r) => {
        r.txt = (Array.isArray(values) ? values : [values]).map(splitTxt);
      }),
      setA: (name, ip) => update(name, (r) => { r.a = [ip]; }),
      setMx: (name, exchange, priority = 10) => update(name, (r) => { r.mx = [{ exchange, priority }]; }),
      remove: (name) => { zone.delete(key(name)); },
      clear: () => zone.clear(),
      failing: (name, on = true) => {
        if (on) failing.add(key(name));
        else failing.delete(key(name));
      },
      silent: (name, on = true) => {
        if (on) silent.add(key(name));
        else silent.delete(key(name));
      },
      get questions() {
        return questions;
      },
      stop: () => {
        stopped ??= Promise.all([
          new Promise<void>((resolve) => udp.close(() => resolve())),
          new Promise<void>((resolve) => {
            tcp.close(() => resolve());
            for (const socket of sockets) socket.destroy();
          }),
        ]).then(() => undefined);
        return stopped;
      },
    };
  }
}
