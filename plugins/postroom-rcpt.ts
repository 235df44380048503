import DSN from 'haraka-dsn';
import * as constants from 'haraka-constants';
import type { DeliverableRecipient } from '../gateway/mail/inbound';
import type { HarakaAddress, HarakaConnection, HarakaPlugin, HarakaTransaction, Next } from './haraka-types';
import { replyAfterErrorDelay } from './postroom-limits';
import { logRefusal } from './refusal-log';
import { gatewayRuntime } from './runtime';
import { smtpReply } from './smtp-reply';

/**
 * RCPT TO: accept only forwarding addresses of enabled mail accounts and
 * users' dropbox addresses; everything else is refused here, before any
 * data is sent. There is no AUTH and no relaying: a recipient outside the
 * gateway domain is `550 5.7.1` whoever asks (an open relay is never
 * acceptable, RFC 5321 §3.9 / RFC 2505). Every refusal is logged once at
 * info (refusal-log.ts): relay attempts and bounced forwarders are what an
 * operator looks for.
 */

export interface PostroomNotes {
  recipients: DeliverableRecipient[];
  /** Recipients refused with 452 because the transaction already had SMTP_MAX_RECIPIENTS. */
  overshoot?: number;
}

/**
 * Recipients past the limit a client may send before each further one counts
 * as an error (Postfix's smtpd_recipient_overshoot_limit, with its default):
 * a pipelining MTA sends its whole list and takes the 452s, a client sending
 * thousands is abusing the session.
 */
export const RECIPIENT_OVERSHOOT_LIMIT = 1000;

export function transactionNotes(txn: HarakaTransaction): PostroomNotes {
  const notes = txn.notes as { postroom?: PostroomNotes };
  notes.postroom ??= { recipients: [] };
  return notes.postroom;
}

export function register(this: HarakaPlugin): void {
  gatewayRuntime();
}

export function hook_rcpt(this: HarakaPlugin, next: Next, connection: HarakaConnection, params: [HarakaAddress]): void {
  const runtime = gatewayRuntime();
  const txn = connection.transaction;
  if (!txn) return next();
  const notes = transactionNotes(txn);
  const address = params[0].address ?? '';
  const log = runtime.log.child({ queueId: txn.uuid, remoteIp: connection.remote.ip });
  const refuse = (action: number, dsn: DSN, reason: string) => {
    logRefusal(connection, dsn, { sender: txn.mail_from.isNull() ? '' : txn.mail_from.address, rcpt: address, reason });
    // A permanent refusal is the client's error (postroom-limits: a guesser is slowed, then disconnected); 452 is not.
    if (dsn.code >= 500) connection.errors++;
    replyAfterErrorDelay(connection, () => next(action, dsn));
  };

  // RCPT TO:<> names no mailbox at all: a syntax error (RFC 5321 §4.1.1.3 forward-path; RFC 3463 X.1.3), not a relay attempt.
  if (params[0].isNull()) return refuse(constants.deny, DSN.create(501, 'Bad destination mailbox address syntax: the null path <> is not a recipient', 1, 3), 'null recipient');

  // RFC 6531 §3.5: a non-ASCII address needs SMTPUTF8 on MAIL FROM (postroom-limits notes it); Haraka accepts it regardless.
  if (params[0].is_utf8 && txn.notes.smtputf8 !== true) {
    return refuse(constants.deny, DSN.create(553, 'Non-ASCII recipient address requires the SMTPUTF8 parameter on MAIL FROM', 6, 7), 'non-ASCII address without SMTPUTF8');
  }

  // RFC 5321 §4.5.3.1.10: "452 too many recipients"; the sender sends the rest in another transaction.
  if (notes.recipients.length >= runtime.settings.maxRecipients) {
    notes.overshoot = (notes.overshoot ?? 0) + 1;
    if (notes.overshoot > RECIPIENT_OVERSHOOT_LIMIT) connection.errors++;
    return refuse(constants.denysoft, DSN.create(452, `Too many recipients (at most ${runtime.settings.maxRecipients} per message)`, 5, 3), 'too many recipients');
  }

  runtime
    .services()
    .then(({ recipients }) => recipients.resolve(address))
    .then((recipient) => {
      switch (recipient.kind) {
        case 'foreign':
          return refuse(constants.deny, DSN.create(550, `Relaying denied: this server only accepts mail for ${runtime.settings.gatewayDomain} addresses`, 7, 1), 'relaying denied');
        case 'unknown':
          return refuse(constants.deny, DSN.create(550, 'No such forwarding address', 1, 1), 'unknown recipient');
        case 'disabled':
          return recipient.what === 'account'
            ? refuse(constants.deny, DSN.create(550, 'Mailbox disabled: forwarding to this address is turned off', 2, 1), 'account disabled')
            : refuse(constants.deny, DSN.create(550, 'Mailbox disabled: its owner is disabled', 2, 1), 'owner disabled');
        default:
          if (!notes.recipients.some((r) => r.address === recipient.address)) notes.recipients.push(recipient);
          return next(constants.ok);
      }
    })
    .catch((err: unknown) => {
      const reply = smtpReply(err);
      log[reply.unexpected ? 'error' : 'warn']({ err, rcpt: address, code: reply.code, tag: reply.tag }, 'recipient lookup failed');
      next(reply.action, reply.dsn);
    });
}
