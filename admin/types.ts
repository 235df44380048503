import type { SecretBox } from '../gateway/core/crypto';
import type { UploadSlots } from './lib/upload-slots';
import type { Config } from '../gateway/core/config';
import type { Logger } from '../gateway/core/log';
import type { Store } from '../gateway/store';
import type { Actor, LoginThrottle, PublicUser, Viewer } from '../gateway/accounts';
import type { DatabaseSessionStore } from './session-store';

export interface FlashMessage {
  type: 'success' | 'error' | 'info';
  text: string;
  /** The compose form (its send key) whose message this reports as taken, sent or queued: the browser drops its kept copy of the text. */
  sendKey?: string;
}

declare module 'express-session' {
  interface SessionData {
    userId?: string;
    /** When this session signed in (ms since the epoch): a password changed later ends it (middleware/auth.ts). */
    signedInAt?: number;
    csrfToken?: string;
    flash?: FlashMessage[];
  }
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The signed-in user (console) or the bearer token's user (API). */
      user?: PublicUser;
      viewer?: Viewer;
      actor?: Actor;
      /** The console person's time zone (admin/middleware/time-zone.ts); unset on the API. */
      timeZone?: string;
    }
  }
}

/** What every route factory gets: `(deps) => Router`. */
export interface AdminDeps {
  store: Store;
  log: Logger;
  config: Readonly<Config>;
  secretBox: SecretBox;
  clock: () => Date;
  sessions: DatabaseSessionStore;
  throttle: LoginThrottle;
  /** Large bodies (compose, API send) being received per user (admin/lib/upload-slots.ts). */
  uploadSlots: UploadSlots;
  /** IMAP Authenticate limit (15 s in production; tests shorten it). */
  imapTimeoutMs: number;
  /** Called after a quarantined message is released (CRM association). */
  afterRelease?: (messageId: import('mongoose').Types.ObjectId) => Promise<void>;
}
