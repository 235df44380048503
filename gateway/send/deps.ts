import crypto from 'node:crypto';
import type { Config } from '../core/config';
import type { SecretBox } from '../core/crypto';
import type { Logger } from '../core/log';
import { associatorOrDefault } from '../crm/link';
import type { Associator } from '../mail/ingest';
import type { Store } from '../store';
import type { SendOAuthOptions } from './oauth';
import type { SmtpTimeouts } from './transport';

/** When a message the server did not take yet is tried again. */
export interface RetryOptions {
  /** First delay after a 4xx reply or a network failure; doubles each attempt (RFC 5321 §4.5.4.1 asks senders to back off). */
  baseMs: number;
  /** Longest delay between two attempts. */
  capMs: number;
  /** Recipients still not accepted this long after the message was sent are given up. */
  giveUpAfterMs: number;
  /** Attempts to append to the Sent folder before giving that up (the message itself is sent and stored). */
  sentFolderAttempts: number;
}

export const DEFAULT_RETRY: RetryOptions = {
  baseMs: 60_000,
  capMs: 60 * 60_000,
  // RFC 5321 §4.5.4.1: "give up … at least 4-5 days"; a person waiting on a
  // message composed in the console is better told after two.
  giveUpAfterMs: 2 * 24 * 3600_000,
  sentFolderAttempts: 5,
};

export interface SendDeps {
  store: Store;
  log: Logger;
  /** Opens the sealed SMTP/IMAP passwords (context = account id). */
  secretBox: SecretBox;
  /** CRM association of the sent copy. */
  associate?: Associator;
  /** SEND_RATE_LIMIT: at most `max` messages per account in any `windowMs`. */
  rateLimit: { max: number; windowMs: number };
  /** GATEWAY_DOMAIN: Postroom's own intake addresses are there, which Reply all leaves out. */
  gatewayDomain?: string;
  /** Largest message Postroom sends (and stores): SMTP_MAX_MESSAGE_SIZE. */
  maxMessageBytes: number;
  retry?: Partial<RetryOptions>;
  smtpTimeouts?: Partial<SmtpTimeouts>;
  /** Timeout of the Sent-folder APPEND session. */
  imapTimeoutMs?: number;
  /** How long a sender holds an outbox entry; longer than one SMTP session can take. */
  lockMs?: number;
  clock?: () => Date;
  /** Told when an entry is queued for a retry, so an outbox worker in this process can plan its next pass. */
  onQueued?: (at: Date) => void;
  /** OAuth2 accounts: provider settings from the environment for token refreshes (see oauth.ts). */
  oauthConfig?: SendOAuthOptions['oauthConfig'];
  oauthTuning?: SendOAuthOptions['oauthTuning'];
}

export const DEFAULT_LOCK_MS = 10 * 60_000;

/** A lock holder id for this process and purpose. */
export function newHolder(kind: string): string {
  return `${kind}:${process.pid}:${crypto.randomBytes(4).toString('hex')}`;
}

/** The usual dependencies from the configuration: limits from the environment, CRM association after storing. */
export function sendDepsFromConfig(config: Pick<Config, 'sendRateLimit' | 'smtpMaxMessageSize' | 'businessDomains' | 'publicUrl' | 'oauth' | 'gatewayDomain'>, base: { store: Store; log: Logger; secretBox: SecretBox; associate?: Associator | null }): SendDeps {
  return {
    store: base.store,
    log: base.log,
    secretBox: base.secretBox,
    associate: associatorOrDefault(base.associate, { store: base.store, log: base.log, settings: { businessDomains: config.businessDomains } }),
    rateLimit: { ...config.sendRateLimit },
    gatewayDomain: config.gatewayDomain,
    maxMessageBytes: config.smtpMaxMessageSize,
    oauthConfig: { publicUrl: config.publicUrl, oauth: config.oauth },
  };
}
