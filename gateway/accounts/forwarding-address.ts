import { randomAddressToken } from '../core/crypto';

/**
 * RFC 5321 §4.5.3.1.1: a local part is at most 64 octets. The token and its
 * dot take 17, so the readable part is cut to 47.
 */
const MAX_READABLE = 64 - 17;

/** `bob@acme.com` → `bob-acme-com`: every non-alphanumeric character becomes '-'. */
export function readablePart(email: string): string {
  return email.toLowerCase().replace(/[^a-z0-9]/g, '-').slice(0, MAX_READABLE);
}

/**
 * The forwarding address of a mailbox (shared contract):
 * `<readable>.<token>@<GATEWAY_DOMAIN>`, lower-case. The token is random and
 * unguessable (16 characters of a 32-letter alphabet, 80 bits), so nobody
 * can send into another user's mailbox by guessing its address.
 */
export function buildForwardingAddress(email: string, gatewayDomain: string, token: string = randomAddressToken(16)): { forwardingAddress: string; forwardingToken: string } {
  return {
    forwardingAddress: `${readablePart(email)}.${token}@${gatewayDomain}`.toLowerCase(),
    forwardingToken: token,
  };
}

/** The dropbox (BCC/MX) address of a user: `dropbox.<token>@<GATEWAY_DOMAIN>`. */
export function dropboxAddress(dropboxToken: string, gatewayDomain: string): string {
  return `dropbox.${dropboxToken}@${gatewayDomain}`.toLowerCase();
}
