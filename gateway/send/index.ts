/**
 * Sending mail through an account's own provider: SMTP settings from the
 * preset or the user, a real login check (Authenticate SMTP), composition
 * with nodemailer's MailComposer, reply/forward threading, a persistent
 * outbox with retries, the Sent-folder copy and the stored copy (ingest,
 * source 'sent'). Processes call these; none of it knows about HTTP.
 */
export * from './addresses';
export * from './authenticate';
export * from './compose';
export * from './deliver';
export * from './deps';
export * from './oauth';
export * from './outbox';
export * from './own-addresses';
export * from './rate-limit';
export * from './reply';
export * from './send';
export * from './send-once';
export * from './sent-folder';
export * from './settings';
export * from './smtp-errors';
export * from './transport';
export * from './worker';
