import { parseNetworkList, type NetworkList } from './network-list';

/**
 * Where Postroom must never connect as the client of a mailbox's own IMAP or
 * SMTP server. The host in a mail account is typed by any employee, and
 * Authenticate reports what it found there ("refused", "did not greet",
 * a TLS error): pointed at this machine or the cloud's metadata service,
 * the form would be a port scanner run from inside. Private ranges are not
 * in the default because an on-prem Exchange or Dovecot lives there.
 */
export const DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS = [
  '127.0.0.0/8', '::1/128', // loopback: the appliance's own services
  '0.0.0.0/8', '::/128', // "this host"
  '169.254.0.0/16', 'fe80::/10', // link-local, including 169.254.169.254 (AWS, GCP, Azure metadata)
  'fd00:ec2::254/128', // AWS metadata over IPv6
  '168.63.129.16/32', // Azure's host endpoint
  '224.0.0.0/4', 'ff00::/8', // multicast
].join(',');

let current: NetworkList | undefined;

/**
 * The blocked networks of this process: MAIL_SERVER_BLOCKED_NETWORKS as
 * loadConfigOrExit validated and set it at start (a bad value stops the
 * process there); code run without an entry point (tests) reads the
 * environment itself.
 */
export function blockedMailServerNetworks(): NetworkList {
  current ??= parseNetworkList(process.env.MAIL_SERVER_BLOCKED_NETWORKS?.trim() || DEFAULT_BLOCKED_MAIL_SERVER_NETWORKS);
  return current;
}

/** Set the list for this process (loadConfigOrExit; tests); undefined reads the environment again. */
export function setBlockedMailServerNetworks(text: string | undefined): void {
  current = text === undefined ? undefined : parseNetworkList(text);
}
