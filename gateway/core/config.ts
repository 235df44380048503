import net from 'node:net';
import path from 'node:path';
import { aLabelDomain } from './idn';
import { z } from 'zod';
import { validate as validateCron } from 'node-cron';
import { projectRoot } from './paths';
import { redactUri } from './redact-uri';
import { canonicalTimeZone } from './time-zone';
import { parseNetworkList } from './network-list';
import { DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS, setBlockedMailServerNetworks } from './mail-server-networks';

/**
 * Configuration comes only from environment variables (12-factor), is read
 * once, validated as a whole and frozen. Every problem is reported on its own
 * line naming the variable, what is wrong and an example, so an operator can
 * fix a `.env` file in one pass instead of one restart per typo.
 */

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Each variable: its schema and an example shown when the value is rejected. */
interface VarSpec {
  schema: z.ZodType;
  example: string;
  description: string;
  default?: string;
  /** Never repeated in an error message (logs keep what stderr gets): 'hide' the value, or 'uri' with its password redacted. */
  secret?: 'hide' | 'uri';
}

/** Digits only: Number() would also take 0x50, 1e3 or 0b11 (SMTP_PORT=0x50 listened on port 80). */
const wholeNumber = z.string().trim().regex(/^\d+$/, 'must be a whole number (digits only)').transform(Number);

const port = wholeNumber.pipe(z.number().min(1, 'must be 1-65535').max(65535, 'must be 1-65535'));

const domainName = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/, 'must be a domain name');


const domainList = z
  .string()
  .transform((value) => value.split(',').map((part) => aLabelDomain(part.trim().toLowerCase())).filter(Boolean))
  .pipe(z.array(domainName));

/** `ip` or `ip:port`, comma-separated; IPv6 with a port as `[::1]:53`. */
const dnsServers = z
  .string()
  .transform((value) => value.split(',').map((part) => part.trim()).filter(Boolean))
  .pipe(
    z.array(
      z.string().refine((entry) => {
        const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(entry);
        if (bracketed) return net.isIPv6(bracketed[1]);
        if (net.isIP(entry)) return true;
        const [ip, p, ...rest] = entry.split(':');
        return rest.length === 0 && net.isIPv4(ip) && /^\d{1,5}$/.test(p ?? '') && Number(p) <= 65535;
      }, 'each entry must be an IP address or ip:port'),
    ),
  );

const positiveInt = (max: number) => wholeNumber.pipe(z.number().min(1, 'must be at least 1').max(max, `must be at most ${max}`));

const byteSize = z
  .string()
  .trim()
  .regex(/^\d+\s*([kmg]b?)?$/i, 'must be a size such as 52428800, 50MB or 512KB')
  .transform((value) => {
    const match = /^(\d+)\s*([kmg])?/i.exec(value)!;
    const unit = (match[2] ?? '').toLowerCase();
    const factor = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
    return Number(match[1]) * factor;
  });

const secretKey = z
  .string()
  .trim()
  .refine((value) => decodeKey(value) !== null, 'must be 32 random bytes as 64 hex characters or base64 (generate one with: openssl rand -hex 32)');

export function decodeKey(value: string): Buffer | null {
  if (/^[0-9a-f]{64}$/i.test(value)) return Buffer.from(value, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(value)) {
    const buf = Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    return buf.length === 32 ? buf : null;
  }
  return null;
}

/** `count/period`, e.g. `100/hour`: how many messages one mail account may send per period. */
const RATE_PERIODS: Record<string, number> = { second: 1000, minute: 60_000, hour: 3_600_000, day: 86_400_000 };
const rateLimit = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^\d{1,6}\s*\/\s*(second|minute|hour|day)$/, 'must be count/period such as 100/hour (period: second, minute, hour or day)')
  .transform((value) => {
    const [count, period] = value.split('/').map((part) => part.trim());
    return { max: Number(count), windowMs: RATE_PERIODS[period] };
  })
  .refine((limit) => limit.max >= 1, 'the count must be at least 1');

const booleanFlag = z
  .string()
  .trim()
  .toLowerCase()
  .refine((value) => ['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off'].includes(value), 'must be true or false')
  .transform((value) => ['1', 'true', 'yes', 'on'].includes(value));

/**
 * OAuth2 endpoints: https, except loopback hosts over http (a provider run on
 * the same machine, e.g. for development). Certificate checks are never off.
 */
const oauthUrl = z
  .string()
  .trim()
  .refine((value) => {
    try {
      const url = new URL(value);
      if (url.protocol === 'https:') return true;
      return url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
    } catch {
      return false;
    }
  }, 'must be an https:// URL (http:// only for localhost)');

/** Space- or comma-separated OAuth2 scopes (RFC 6749 §3.3). */
const scopeList = z
  .string()
  .transform((value) => value.split(/[\s,]+/).filter(Boolean))
  .pipe(z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'each scope must be printable ASCII without quotes or backslashes (RFC 6749 §3.3)')).min(1, 'must name at least one scope'));

/** The OAuth2 providers the console offers ("Sign in with …"); `oidc` is any other OAuth2/OIDC server. */
export const OAUTH_PROVIDER_IDS = ['google', 'microsoft', 'oidc'] as const;
export type OAuthProviderId = (typeof OAUTH_PROVIDER_IDS)[number];

/** What the environment says about one OAuth2 provider; unset fields fall back to Preferences → Business, then built-in defaults. */
export interface OAuthProviderEnv {
  clientId?: string;
  clientSecret?: string;
  issuer?: string;
  authorizationUrl?: string;
  tokenUrl?: string;
  revocationUrl?: string;
  scopes?: readonly string[];
  /** Microsoft only: the Entra ID tenant in the endpoint paths (common, organizations, a tenant id or domain). */
  tenant?: string;
  /** Generic provider only: the button reads "Sign in with <label>". */
  label?: string;
}

const OAUTH_FIELDS = {
  CLIENT_ID: 'clientId', CLIENT_SECRET: 'clientSecret', ISSUER: 'issuer', AUTHORIZATION_URL: 'authorizationUrl',
  TOKEN_URL: 'tokenUrl', REVOCATION_URL: 'revocationUrl', SCOPES: 'scopes', TENANT: 'tenant', LABEL: 'label',
} as const satisfies Record<string, keyof OAuthProviderEnv>;

function oauthVariables<P extends string>(prefix: P, name: string, examples: { issuer: string; authorizationUrl: string; tokenUrl: string; revocationUrl: string; scopes: string }) {
  const where = 'Overrides the built-in default; Preferences → Business overrides this.';
  return {
    [`OAUTH_${prefix}_CLIENT_ID`]: { schema: z.string().trim().min(1), example: prefix === 'GOOGLE' ? '1234567890-abc.apps.googleusercontent.com' : '00000000-0000-0000-0000-000000000000', description: `OAuth2 client id for "Sign in with ${name}" (IMAP/SMTP via XOAUTH2). Redirect URI to register: PUBLIC_URL/oauth/callback.` },
    [`OAUTH_${prefix}_CLIENT_SECRET`]: { schema: z.string().trim().min(1), secret: 'hide', example: '<client secret from the provider console>', description: `OAuth2 client secret for ${name} (empty: public client with PKCE only).` },
    [`OAUTH_${prefix}_ISSUER`]: { schema: oauthUrl, example: examples.issuer, description: `OAuth2/OIDC issuer of ${name}; endpoints not set below are discovered from it (RFC 8414 / OIDC Discovery). ${where}` },
    [`OAUTH_${prefix}_AUTHORIZATION_URL`]: { schema: oauthUrl, example: examples.authorizationUrl, description: `Authorization endpoint of ${name}. ${where}` },
    [`OAUTH_${prefix}_TOKEN_URL`]: { schema: oauthUrl, example: examples.tokenUrl, description: `Token endpoint of ${name}. ${where}` },
    [`OAUTH_${prefix}_REVOCATION_URL`]: { schema: oauthUrl, example: examples.revocationUrl, description: `Token revocation endpoint of ${name} (RFC 7009), used when an account is disconnected.${prefix === 'MICROSOFT' ? ' Microsoft has none: set it only for a gateway in front of it that offers one.' : ''} ${where}` },
    [`OAUTH_${prefix}_SCOPES`]: { schema: scopeList, example: examples.scopes, description: `Scopes requested from ${name}, space-separated (must allow IMAP and SMTP and give a refresh token). ${where}` },
  } as unknown as Record<`OAUTH_${P}_${'CLIENT_ID' | 'CLIENT_SECRET' | 'ISSUER' | 'AUTHORIZATION_URL' | 'TOKEN_URL' | 'REVOCATION_URL' | 'SCOPES'}`, VarSpec>;
}

const OAUTH_VARIABLES = {
  ...oauthVariables('GOOGLE', 'Google', {
    issuer: 'https://accounts.google.com', authorizationUrl: 'https://accounts.google.com/o/oauth2/v2/auth',
    tokenUrl: 'https://oauth2.googleapis.com/token', revocationUrl: 'https://oauth2.googleapis.com/revoke', scopes: 'https://mail.google.com/',
  }),
  ...oauthVariables('MICROSOFT', 'Microsoft', {
    issuer: 'https://login.microsoftonline.com/common/v2.0', authorizationUrl: 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize',
    tokenUrl: 'https://login.microsoftonline.com/common/oauth2/v2.0/token', revocationUrl: 'https://sso.acme.com/oauth2/revoke',
    scopes: 'https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access',
  }),
  OAUTH_MICROSOFT_TENANT: { schema: z.string().trim().regex(/^[A-Za-z0-9.-]{1,100}$/, 'must be common, organizations, consumers, a tenant id or a tenant domain'), example: 'organizations', default: 'common', description: 'Microsoft Entra ID tenant in the default endpoint URLs (common, organizations, a tenant id or domain).' },
  ...oauthVariables('OIDC', 'another OAuth2/OIDC provider', {
    issuer: 'https://sso.acme.com/realms/mail', authorizationUrl: 'https://sso.acme.com/realms/mail/protocol/openid-connect/auth',
    tokenUrl: 'https://sso.acme.com/realms/mail/protocol/openid-connect/token', revocationUrl: 'https://sso.acme.com/realms/mail/protocol/openid-connect/revoke',
    scopes: 'openid email offline_access',
  }),
  OAUTH_OIDC_LABEL: { schema: z.string().trim().min(1).max(60, 'must be at most 60 characters'), example: 'Acme SSO', default: 'single sign-on', description: 'Name on the generic provider\'s button: "Sign in with <label>".' },
} satisfies Record<string, VarSpec>;

export const VARIABLES = {
  NODE_ENV: { schema: z.enum(['development', 'production', 'test']), example: 'production', default: 'development', description: 'Runtime mode; production requires SECRET_KEY and GATEWAY_DOMAIN. Logs are JSON lines, except on a terminal.' },
  MONGODB_URI: { schema: z.string().regex(/^mongodb(\+srv)?:\/\/.+/, 'must start with mongodb:// or mongodb+srv://'), secret: 'uri', example: 'mongodb://mongo:27017/postroom?replicaSet=rs0', description: 'MongoDB connection string. Unset: an embedded FerretDB store is started with data under DATA_DIR.' },
  DATA_DIR: { schema: z.string().min(1), example: './data', default: './data', description: 'Embedded store data, generated TLS certificate and generated secret key.' },
  BIND_ADDRESS: { schema: z.string().refine((v) => net.isIP(v) !== 0, 'must be an IP address'), example: '0.0.0.0', default: '127.0.0.1', description: 'Address the SMTP and admin servers listen on (0.0.0.0 in Docker).' },
  SMTP_PORT: { schema: port, example: '25', default: '2525', description: 'SMTP port of the gateway.' },
  ADMIN_PORT: { schema: port, example: '8080', default: '8080', description: 'HTTP port of the admin console and API.' },
  HEALTH_PORT: { schema: wholeNumber.pipe(z.number().max(65535, 'must be 0-65535')), example: '8081', default: '0', description: 'Port of GET /healthz and GET /metrics (Prometheus) for the gateway, syncer and admin processes, and for npm start (0: off; the admin also serves /healthz on ADMIN_PORT). Keep it off the Internet.' },
  PUBLIC_URL: { schema: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL such as https://postroom.acme.com' }), example: 'https://postroom.acme.com', description: 'Base URL of the console, used in invite links; https enables Secure cookies (behind a TLS proxy: set TRUST_PROXY=true). Unset: http://localhost:ADMIN_PORT.' },
  GATEWAY_DOMAIN: { schema: domainName, example: 'in.postroom.acme.com', default: 'postroom.localhost', description: 'Domain of the generated forwarding and dropbox addresses (its MX points at the gateway); required in production. Choose it once: addresses already issued keep their domain, and after a change mail to them is refused (550 5.7.1).' },
  BUSINESS_DOMAINS: { schema: domainList, example: 'acme.com,acme.co.uk', default: '', description: 'Comma-separated domains of the business (initial value; editable in Preferences → Business).' },
  DNS_SERVERS: { schema: dnsServers, example: '1.1.1.1,127.0.0.1:5353', default: '', description: 'DNS servers for SPF/DKIM/DMARC/ARC lookups; empty uses the system resolver.' },
  DNS_CACHE_SECONDS: {
    schema: wholeNumber.pipe(z.number().max(3600, 'must be at most 3600')),
    example: '60',
    default: '60',
    description: 'How long the gateway reuses a DNS answer (records or "no such record") for SPF/DKIM/DMARC/ARC; 0 asks every time. Timeouts and server failures are never reused.',
  },
  SECRET_KEY: { schema: secretKey, secret: 'hide', example: '<output of: openssl rand -hex 32>', description: 'Key that encrypts stored IMAP/SMTP secrets (AES-256-GCM) and signs sessions. Unset outside production: generated once into DATA_DIR/secret.key.' },
  ADMIN_EMAIL: { schema: z.email('must be an email address'), example: 'it@acme.com', description: 'First admin, created at first start when no admin exists.' },
  ADMIN_PASSWORD: { schema: z.string().min(12, 'must be at least 12 characters'), secret: 'hide', example: 'a-long-passphrase', description: 'Password of the first admin (only read when it is created).' },
  IMAP_SYNC_CRON: { schema: z.string().trim().refine((v) => validateCron(v), 'must be a cron expression such as "*/5 * * * *" (minute hour day month weekday; a sixth field in front is seconds)'), example: '*/5 * * * *', default: '* * * * *', description: 'Schedule of IMAP sync passes.' },
  IMAP_SYNC_TIMEZONE: {
    schema: z.string().trim().refine((v) => canonicalTimeZone(v) !== null, 'must be an IANA time zone such as Europe/Berlin or America/New_York (not an offset such as +02:00)').transform((v) => canonicalTimeZone(v)!),
    example: 'Europe/Berlin',
    default: 'UTC',
    description: 'Time zone IMAP_SYNC_CRON runs in (an IANA name): "0 2 * * *" is 02:00 on that clock, through DST changes. Not the server\'s TZ, so Docker and bare metal agree; the syncer logs its next pass at start.',
  },
  MAIL_SERVER_BLOCKED_NETWORKS: {
    schema: z.string().trim().superRefine((v, ctx) => {
      try {
        parseNetworkList(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `${(err as Error).message} (a comma-separated list of addresses and networks, or none)` });
      }
    }),
    example: `${DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS},10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7`,
    default: DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS,
    description: 'Networks Postroom never connects to as a client of a mailbox\'s IMAP or SMTP server (what employees type as host), checked on the resolved address at every connection: by default loopback, link-local (cloud metadata), unspecified and multicast addresses, so a mailbox form cannot probe this machine. Add private ranges to keep employees off the internal network too; none allows every address.',
  },
  IMAP_SYNC_CONCURRENCY: { schema: positiveInt(64), example: '4', default: '4', description: 'Accounts synced at once by one syncer.' },
  IMAP_BACKFILL_DAYS: { schema: positiveInt(3650), example: '30', default: '30', description: 'How far back the first sync of a mailbox reaches.' },
  FORWARDING_GRACE_MINUTES: { schema: positiveInt(10080), example: '15', default: '15', description: 'Forwarding is marked broken when IMAP sync finds inbox mail (of an account with verified forwarding) that forwarding did not deliver within this many minutes.' },
  SMTP_MAX_MESSAGE_SIZE: { schema: byteSize.pipe(z.number().min(1024, 'must be at least 1KB (0 would read as "no limit" to senders, RFC 1870)')), example: '50MB', default: '50MB', description: 'Largest message the gateway accepts (552 5.3.4 above it).' },
  SMTP_MAX_RECIPIENTS: { schema: positiveInt(1000), example: '50', default: '50', description: 'Recipients per SMTP transaction.' },
  SMTP_MAX_CONNECTIONS: { schema: positiveInt(100000), example: '200', default: '200', description: 'Concurrent SMTP connections.' },
  SMTP_MAX_CONNECTIONS_PER_CLIENT: { schema: positiveInt(100000), example: '50', default: '50', description: 'Concurrent SMTP connections from one client address (IPv6: one /64), so one client cannot take every connection (421 4.7.0 beyond it).' },
  SEND_RATE_LIMIT: { schema: rateLimit, example: '100/hour', default: '100/hour', description: 'Messages one mail account may send from Postroom per period (count/period; period second, minute, hour or day); more are refused with 429 until the window moves on.' },
  TLS_CERT_FILE: { schema: z.string().min(1), example: '/certs/fullchain.pem', description: 'PEM certificate for STARTTLS; unset: a self-signed one is generated into DATA_DIR/tls.' },
  TLS_KEY_FILE: { schema: z.string().min(1), example: '/certs/privkey.pem', description: 'PEM private key matching TLS_CERT_FILE.' },
  TRUST_PROXY: { schema: booleanFlag, example: 'true', default: 'false', description: 'Trust X-Forwarded-* from the one reverse proxy in front of the console (the client address is the one it adds).' },
  LOG_LEVEL: { schema: z.enum(LOG_LEVELS), example: 'info', default: 'info', description: 'fatal, error, warn, info, debug, trace or silent.' },
  ...OAUTH_VARIABLES,
} satisfies Record<string, VarSpec>;

type Vars = typeof VARIABLES;
type Parsed<K extends keyof Vars> = z.output<Vars[K]['schema']>;

export interface Config {
  nodeEnv: Parsed<'NODE_ENV'>;
  mongodbUri: string | undefined;
  dataDir: string;
  bindAddress: string;
  smtpPort: number;
  adminPort: number;
  healthPort: number;
  publicUrl: string;
  gatewayDomain: string;
  businessDomains: readonly string[];
  dnsServers: readonly string[];
  dnsCacheSeconds: number;
  /** Raw 32-byte master key; undefined when it must be generated into DATA_DIR. */
  secretKey: Buffer | undefined;
  adminEmail: string | undefined;
  adminPassword: string | undefined;
  imapSyncCron: string;
  /** IANA zone the cron expression is read in. */
  imapSyncTimeZone: string;
  /** IMAP_SYNC_TIMEZONE was set (not the UTC default): versions before it read the cron in the machine's zone. */
  imapSyncTimeZoneSet: boolean;
  mailServerBlockedNetworks: string;
  imapSyncConcurrency: number;
  imapBackfillDays: number;
  forwardingGraceMinutes: number;
  smtpMaxMessageSize: number;
  smtpMaxRecipients: number;
  smtpMaxConnections: number;
  smtpMaxConnectionsPerClient: number;
  /** Outgoing mail per account (SEND_RATE_LIMIT): at most `max` messages in any `windowMs`. */
  sendRateLimit: Readonly<{ max: number; windowMs: number }>;
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  trustProxy: boolean;
  logLevel: Parsed<'LOG_LEVEL'>;
  /** OAuth2 providers as configured in the environment (gateway/oauth merges Preferences → Business and defaults). */
  oauth: Readonly<Record<OAuthProviderId, Readonly<OAuthProviderEnv>>>;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/**
 * Variables under a provider's prefix that Postroom does not know. Postroom
 * owns these prefixes, so such a name is a typo (OAUTH_GOOGLE_CLIENTID) that
 * would otherwise leave the "Sign in with …" button missing without a word.
 */
function misspeltOAuthVariables(env: NodeJS.ProcessEnv): string[] {
  const squash = (name: string) => name.replace(/_/g, '');
  return Object.keys(env).filter((name) => /^OAUTH_(GOOGLE|MICROSOFT|OIDC)_/.test(name) && !Object.hasOwn(VARIABLES, name)).map((name) => {
    const prefix = /^OAUTH_[A-Z]+_/.exec(name)![0];
    const known = Object.keys(VARIABLES).filter((candidate) => candidate.startsWith(prefix));
    const meant = known.find((candidate) => squash(candidate) === squash(name.toUpperCase()));
    return `${name} is not a Postroom setting: ${meant ? `did you mean ${meant}?` : `the ones starting ${prefix} are ${known.join(', ')}`}`;
  });
}

/** Names that are not Postroom's but belong in the same .env (docker-compose.yml reads them). */
const COMPOSE_ONLY_VARIABLES = new Set(['ADMIN_PUBLISH']);

/** Optimal string alignment distance (edits, counting a swap of two neighbours as one). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j += 1) d[0][j] = j;
  for (let i = 1; i <= a.length; i += 1) {
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * Variables one slip away from a Postroom setting (SMTP_PROT, IMAP_SYNC_CONCURENCY,
 * smtp_port, DATADIR): set in .env, they would be ignored without a word and
 * the default used instead. Only near misses count (one letter added, missing,
 * changed or swapped, or underscores and case), so the rest of the
 * environment (SSL_CERT_FILE, NODE_OPTIONS, npm's variables) is left alone.
 */
function misspeltVariables(env: NodeJS.ProcessEnv): string[] {
  const known = Object.keys(VARIABLES);
  const squash = (name: string) => name.replace(/_/g, '').toUpperCase();
  const problems: string[] = [];
  for (const name of Object.keys(env)) {
    if (Object.hasOwn(VARIABLES, name) || COMPOSE_ONLY_VARIABLES.has(name) || name.length < 6 || /^OAUTH_(GOOGLE|MICROSOFT|OIDC)_/.test(name)) continue;
    const meant = known.find((candidate) => squash(candidate) === squash(name)) ?? known.find((candidate) => editDistance(candidate, name.toUpperCase()) <= 1);
    if (meant) problems.push(`${name} is not a Postroom setting, so it is ignored: did you mean ${meant}?`);
  }
  return problems;
}

/**
 * Parse and validate the environment. Throws ConfigError listing every
 * problem; never returns a partially valid config.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const problems: string[] = [];
  const values: Record<string, unknown> = {};

  for (const [name, spec] of Object.entries(VARIABLES) as Array<[keyof Vars, VarSpec]>) {
    const raw = env[name];
    const input = raw === undefined || raw.trim() === '' ? spec.default : raw;
    if (input === undefined) {
      values[name] = undefined;
      continue;
    }
    const result = spec.schema.safeParse(input);
    if (result.success) {
      values[name] = result.data;
    } else {
      const message = result.error.issues.map((issue) => issue.message).join('; ');
      problems.push(`${name}=${shown(raw ?? '', spec.secret)}: ${message} (example: ${name}=${spec.example})`);
    }
  }

  problems.push(...misspeltOAuthVariables(env), ...misspeltVariables(env));

  const nodeEnv = (values.NODE_ENV as Config['nodeEnv'] | undefined) ?? 'development';
  if (nodeEnv === 'production' && !env.SECRET_KEY?.trim()) {
    problems.push(`SECRET_KEY is required when NODE_ENV=production (example: SECRET_KEY=${VARIABLES.SECRET_KEY.example})`);
  }
  // Every forwarding address is issued on this domain and looked up whole, so addresses handed out on
  // the development default (no MX anywhere) would have to be replaced by every employee later.
  if (nodeEnv === 'production' && !env.GATEWAY_DOMAIN?.trim()) {
    problems.push(`GATEWAY_DOMAIN is required when NODE_ENV=production: forwarding addresses are issued on it and keep it (example: GATEWAY_DOMAIN=${VARIABLES.GATEWAY_DOMAIN.example})`);
  }
  if (Boolean(env.TLS_CERT_FILE) !== Boolean(env.TLS_KEY_FILE)) {
    problems.push('TLS_CERT_FILE and TLS_KEY_FILE must be set together (example: TLS_CERT_FILE=/certs/fullchain.pem TLS_KEY_FILE=/certs/privkey.pem)');
  }
  if (Boolean(env.ADMIN_EMAIL) !== Boolean(env.ADMIN_PASSWORD)) {
    problems.push('ADMIN_EMAIL and ADMIN_PASSWORD must be set together (example: ADMIN_EMAIL=it@acme.com ADMIN_PASSWORD=a-long-passphrase)');
  }

  const ports = [['SMTP_PORT', values.SMTP_PORT], ['ADMIN_PORT', values.ADMIN_PORT], ['HEALTH_PORT', values.HEALTH_PORT || undefined]] as const;
  for (const [i, [name, value]] of ports.entries()) {
    const same = ports.slice(i + 1).find(([, other]) => value !== undefined && other === value);
    if (same) problems.push(`${name} and ${same[0]} are both ${value}: each server needs its own port (example: SMTP_PORT=2525 ADMIN_PORT=8080)`);
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const config: Config = {
    nodeEnv,
    mongodbUri: values.MONGODB_URI as string | undefined,
    dataDir: path.resolve(projectRoot, values.DATA_DIR as string),
    bindAddress: values.BIND_ADDRESS as string,
    smtpPort: values.SMTP_PORT as number,
    adminPort: values.ADMIN_PORT as number,
    healthPort: values.HEALTH_PORT as number,
    // Invite links must reach the console: by default where it listens.
    publicUrl: ((values.PUBLIC_URL as string | undefined) ?? `http://localhost:${values.ADMIN_PORT as number}`).replace(/\/+$/, ''),
    gatewayDomain: values.GATEWAY_DOMAIN as string,
    businessDomains: Object.freeze([...(values.BUSINESS_DOMAINS as string[])]),
    dnsServers: Object.freeze([...(values.DNS_SERVERS as string[])]),
    dnsCacheSeconds: values.DNS_CACHE_SECONDS as number,
    secretKey: values.SECRET_KEY === undefined ? undefined : decodeKey(values.SECRET_KEY as string)!,
    adminEmail: (values.ADMIN_EMAIL as string | undefined)?.toLowerCase(),
    adminPassword: values.ADMIN_PASSWORD as string | undefined,
    imapSyncCron: values.IMAP_SYNC_CRON as string,
    imapSyncTimeZone: values.IMAP_SYNC_TIMEZONE as string,
    imapSyncTimeZoneSet: (env.IMAP_SYNC_TIMEZONE ?? '').trim() !== '',
    mailServerBlockedNetworks: values.MAIL_SERVER_BLOCKED_NETWORKS as string,
    imapSyncConcurrency: values.IMAP_SYNC_CONCURRENCY as number,
    imapBackfillDays: values.IMAP_BACKFILL_DAYS as number,
    forwardingGraceMinutes: values.FORWARDING_GRACE_MINUTES as number,
    smtpMaxMessageSize: values.SMTP_MAX_MESSAGE_SIZE as number,
    smtpMaxRecipients: values.SMTP_MAX_RECIPIENTS as number,
    smtpMaxConnections: values.SMTP_MAX_CONNECTIONS as number,
    smtpMaxConnectionsPerClient: values.SMTP_MAX_CONNECTIONS_PER_CLIENT as number,
    sendRateLimit: Object.freeze({ ...(values.SEND_RATE_LIMIT as { max: number; windowMs: number }) }),
    tlsCertFile: values.TLS_CERT_FILE as string | undefined,
    tlsKeyFile: values.TLS_KEY_FILE as string | undefined,
    trustProxy: values.TRUST_PROXY as boolean,
    logLevel: values.LOG_LEVEL as Config['logLevel'],
    oauth: oauthFromValues(values),
  };
  return Object.freeze(config);
}

/**
 * For process entry points: load the config or print every problem and exit
 * with status 78 (EX_CONFIG), so supervisors do not restart-loop silently.
 */
/** A rejected value as an error message may show it: secrets by their length only, URIs without their password. */
function shown(raw: string, secret: VarSpec['secret']): string {
  if (secret === 'hide') return `<hidden, ${raw.length} characters>`;
  return JSON.stringify(secret === 'uri' ? redactUri(raw) : raw);
}

export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  try {
    const config = loadConfig(env);
    // The process's blocked networks are the validated value, not a second read of the environment.
    setBlockedMailServerNetworks(config.mailServerBlockedNetworks);
    return config;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`postroom: ${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
}

function oauthFromValues(values: Record<string, unknown>): Config['oauth'] {
  const one = (id: OAuthProviderId): Readonly<OAuthProviderEnv> => {
    const out: Record<string, unknown> = {};
    for (const [suffix, key] of Object.entries(OAUTH_FIELDS)) {
      const value = values[`OAUTH_${id.toUpperCase()}_${suffix}`];
      if (value !== undefined) out[key] = Array.isArray(value) ? Object.freeze([...value]) : value;
    }
    return Object.freeze(out as OAuthProviderEnv);
  };
  return Object.freeze({ google: one('google'), microsoft: one('microsoft'), oidc: one('oidc') });
}
