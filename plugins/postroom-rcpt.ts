import DSN from 'haraka-dsn';
import * as constants from 'haraka-constants';
import type { DeliverableRecipient } from '../gateway/mail/inbound';
import type { HarakaAddress, HarakaConnection, HarakaPlugin, HarakaTransaction, Next } from './haraka-types';
import { gatewayRuntime } from './runtime';
import { smtpReply } from './smtp-reply';

/**
 * RCPT TO: accept only forwarding addresses of enabled mail accounts and
 * users' dropbox addresses; everything else is refused here, before any
 * data is sent. There is no AUTH and no relaying: a recipient outside the
 * gateway domain is `550 5.7.1` whoever asks (an open relay is never
 * acceptable, RFC 5321 §3.9 / RFC 2505).
 */

export interface PostroomNotes {
  recipients: DeliverableRecipient[];
}

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

  // RFC 5321 §4.5.3.1.10: "452 too many recipients"; the sender sends the rest in another transaction.
  if (notes.recipients.length >= runtime.settings.maxRecipients) {
    return next(constants.denysoft, DSN.create(452, `Too many recipients (at most ${runtime.settings.maxRecipients} per message)`, 5, 3));
  }

  runtime
    .services()
    .then(({ recipients }) => recipients.resolve(address))
    .then((recipient) => {
      switch (recipient.kind) {
        case 'foreign':
          log.debug({ rcpt: address }, 'relaying denied');
          return next(constants.deny, DSN.create(550, `Relaying denied: this server only accepts mail for ${runtime.settings.gatewayDomain} addresses`, 7, 1));
        case 'unknown':
          log.debug({ rcpt: address }, 'unknown recipient');
          return next(constants.deny, DSN.create(550, 'No such forwarding address', 1, 1));
        case 'disabled':
          return next(
            constants.deny,
            DSN.create(550, recipient.what === 'account' ? 'Mailbox disabled: forwarding to this address is turned off' : 'Mailbox disabled: its owner is disabled', 2, 1),
          );
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
