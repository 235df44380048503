/**
 * OAuth2 for mailboxes that cannot (Microsoft 365) or should not (Gmail)
 * sign in with a password: the provider registry, the authorization-code
 * flow with PKCE, sealed tokens with single-flight refresh, and the IMAP
 * login helper. Processes call these; none of it knows about HTTP.
 */
export * from './authorize';
export * from './connect-account';
export { clearDiscoveryCache } from './client';
export { DEFAULT_OAUTH_TUNING, OAUTH_CALLBACK_PATH, redirectUri, type OAuthDeps, type OAuthTuning } from './deps';
export * from './imap';
export * from './providers';
export * from './revoke';
export * from './settings';
export * from './tokens';
