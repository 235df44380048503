/**
 * When a message reached the mailbox, as stored in `receivedAt`: what the inbox is sorted by, the day
 * search and the chart count, and retention deletes by.
 *
 * The IMAP server's INTERNALDATE (RFC 9051 §2.3.3) is the best answer, but it is whatever the server was
 * given: a migrated mailbox or an APPEND with a made-up date carries 1970-01-01 (a zero timestamp) or a
 * date years ahead. Taken as is, a message "from 2099" stays on top of the inbox for ever and is never
 * expired, and one "from 1970" sinks below years of mail and is deleted by the next retention pass right
 * after it arrived.
 */

/** Before this no mail was sent (RFC 561, 1973, is the first mail header standard); a zero timestamp is "not set". */
const EARLIEST_MAIL = Date.UTC(1971, 0, 1);

/**
 * `reported` when it can be true; else the message's own Date header when that can be; else `now` (the
 * time it was stored). A reported time ahead of now is now: the mail is here, so it has arrived.
 */
export function arrivalTime(reported: Date | undefined, headerDate: Date | null, now: Date): Date {
  const time = (date: Date | null | undefined) => (date instanceof Date ? date.getTime() : Number.NaN);
  const plausible = (date: Date | null | undefined): date is Date => time(date) >= EARLIEST_MAIL && time(date) <= now.getTime();
  if (plausible(reported)) return reported;
  if (time(reported) > now.getTime()) return now;
  if (plausible(headerDate)) return headerDate;
  return now;
}
