import type mongoose from 'mongoose';
import type { Store } from '../store';

/**
 * Why a running pass must stop because of what the user did to the account
 * meanwhile: deleted it, disabled it (or an admin disabled its owner), turned IMAP Support off, or changed
 * where or as whom it signs in (host, port, TLS, user name, password,
 * OAuth2). The scheduler picks an account only in that state, but a first
 * sync of a big mailbox runs for minutes; without this check the pass went
 * on fetching the whole mailbox after "Disable" said sync pauses, and kept
 * storing mail (and writing folder cursors) for an account already deleted.
 */
export type AccountStopReason = 'deleted' | 'disabled' | 'owner-disabled' | 'imap-off' | 'settings-changed';

/** The fields whose change voids the pass (what it connected with). */
const WATCHED = { ownerId: 1, enabled: 1, 'imap.enabled': 1, 'imap.host': 1, 'imap.port': 1, 'imap.tls': 1, 'imap.username': 1, 'imap.passwordEnc': 1, 'oauth.provider': 1 } as const;

interface WatchedAccount {
  ownerId?: mongoose.Types.ObjectId | null;
  enabled?: boolean | null;
  imap?: { enabled?: boolean | null; host?: string | null; port?: number | null; tls?: string | null; username?: string | null; passwordEnc?: string | null } | null;
  oauth?: { provider?: string | null } | null;
}

const signInOf = (doc: WatchedAccount) =>
  [doc.imap?.host ?? '', doc.imap?.port ?? 0, doc.imap?.tls ?? '', doc.imap?.username ?? '', doc.imap?.passwordEnc ?? '', doc.oauth?.provider ?? ''].join('\n');

export interface AccountCheck {
  /** Aborted once a check found a reason to stop. */
  readonly signal: AbortSignal;
  /** The reason, once found. */
  readonly reason: AccountStopReason | undefined;
  /**
   * Read the account again (one findOne by _id) and abort `signal` when the
   * pass must stop. Called between batches and folders, so the pass stops at
   * a batch boundary with its cursor exact. A store error is not a reason:
   * the writes of the batch will meet it and stop the pass as a store error.
   */
  check(): Promise<void>;
}

export function accountCheck(store: Store, account: WatchedAccount & { _id: mongoose.Types.ObjectId }): AccountCheck {
  const controller = new AbortController();
  const connectedWith = signInOf(account);
  let reason: AccountStopReason | undefined;
  const stop = (why: AccountStopReason) => {
    reason ??= why;
    controller.abort(why);
  };
  return {
    signal: controller.signal,
    get reason() {
      return reason;
    },
    async check() {
      if (reason) return;
      let now: WatchedAccount | null;
      try {
        now = await store.models.MailAccount.findById(account._id, WATCHED).lean<WatchedAccount>();
      } catch {
        return;
      }
      if (!now) stop('deleted');
      else if (now.enabled === false) stop('disabled');
      else if (!now.imap?.enabled) stop('imap-off');
      else if (signInOf(now) !== connectedWith) stop('settings-changed');
      else if (now.ownerId) {
        // An admin disabled the owner (someone who left): their mailbox is not read any further.
        const owner = await store.models.User.findById(now.ownerId, { disabled: 1 }).lean().catch(() => null);
        if (owner?.disabled) stop('owner-disabled');
      }
    },
  };
}
