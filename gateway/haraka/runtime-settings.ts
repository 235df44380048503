import fs from 'node:fs';
import path from 'node:path';

/**
 * What the gateway process hands to the Postroom plugins inside Haraka,
 * written as config/postroom.json into the runtime instance. Secrets never go
 * in here: the store URI travels in the child's environment (MONGODB_URI).
 */
export interface GatewayRuntimeSettings {
  gatewayDomain: string;
  businessDomains: string[];
  dnsServers: string[];
  /** DNS_CACHE_SECONDS: how long SPF/DKIM/DMARC/ARC answers are reused. */
  dnsCacheSeconds: number;
  maxMessageSize: number;
  maxRecipients: number;
  maxConnections: number;
  /** SMTP_MAX_CONNECTIONS_PER_CLIENT: connections at once from one address (IPv6: one /64). */
  maxConnectionsPerClient: number;
  logLevel: string;
  /** How long recipient lookups are reused (a new or disabled account takes effect after this). */
  recipientCacheMs: number;
  /**
   * How long each refused recipient or sender is held back once a session has made
   * SMTP_SOFT_ERROR_LIMIT errors (plugins/postroom-limits.ts); tests shorten it.
   */
  errorDelayMs: number;
  /** A command or message line must be complete within this long of the last reply or line (postroom-limits). */
  lineTimeoutMs: number;
  /** A message must be received within this long of the 354 reply (postroom-limits). */
  dataTimeoutMs: number;
}

export const RUNTIME_SETTINGS_FILE = 'postroom.json';

/** Environment variables of the Haraka child (set by the launcher). */
export const STORE_URI_ENV = 'MONGODB_URI';
export const STORE_DB_ENV = 'POSTROOM_STORE_DB';

/** Read the settings of the instance Haraka was started with (`haraka -c DIR` sets HARAKA=DIR). */
export function readRuntimeSettings(instanceDir: string | undefined = process.env.HARAKA): GatewayRuntimeSettings {
  if (!instanceDir) throw new Error('HARAKA is not set: the Postroom plugins run inside Haraka started by gateway/bin/gateway');
  const file = path.join(instanceDir, 'config', RUNTIME_SETTINGS_FILE);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as GatewayRuntimeSettings;
}
