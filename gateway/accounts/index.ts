/**
 * The account & user domain: users and passwords, invites, mail accounts
 * and their forwarding addresses, IMAP login checks, API tokens, business
 * settings, the audit log and the mailbox queries the console and API share.
 * Processes (admin, CLI, syncer) call these; none of it knows about HTTP.
 */
export * from './attached-messages';
export * from './audit';
export * from './api-tokens';
export * from './business-settings';
export * from './email-address';
export * from './forwarding-address';
export * from './ids';
export * from './imap-login';
export * from './conversation';
export * from './invite';
export * from './login-throttle';
export * from './mail-accounts';
export * from './mail-retention';
export * from './mailbox';
export * from './passwords';
export * from './presets';
export * from './read-state';
export * from './secret-key-check';
export * from './secret-key-rotation';
export * from './users';
export * from './viewer-time-zone';
export { backfillAttachedText } from './attached-text-backfill';
