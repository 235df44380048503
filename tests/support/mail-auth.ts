/**
 * Sender-side authentication for gateway tests: DKIM keys generated at run
 * time and published in the test DNS, messages signed with mailauth's
 * signer, and "provider forwarding" simulated the way Gmail does it
 * (authenticate on arrival, then add an ARC set sealed with the provider's
 * key) — all real signatures verified by the real code path.
 */
import crypto from 'node:crypto';
import dns from 'node:dns';
import { authenticate } from 'mailauth';
import { dkimSign } from 'mailauth/lib/dkim/sign';
import type { TestDns } from './dns';

export interface DkimKey {
  privateKey: string;
  /** TXT value for <selector>._domainkey.<domain>. */
  record: string;
}

export function generateDkimKey(): DkimKey {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    record: `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`,
  };
}

export const SELECTOR = 's1';

/** Publish the key for every domain as s1._domainkey.<domain>. */
export function publishDkim(testDns: TestDns, key: DkimKey, domains: string[]): void {
  for (const domain of domains) testDns.setTxt(`${SELECTOR}._domainkey.${domain}`, key.record);
}

/** `maxBodyLength` signs only that many bytes of the (canonicalized) body: the DKIM l= tag, RFC 6376 §3.5. */
export async function signMessage(raw: Buffer | string, key: DkimKey, domain: string, options: { maxBodyLength?: number } = {}): Promise<Buffer> {
  const message = Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
  const { signatures } = await dkimSign(message, {
    // Without a sign time mailauth computes t= twice (Math.round(Date.now() / 1000)): once for the
    // signed hash, once for the header it writes. When the RSA signing in between straddles a
    // half-second boundary the two differ and the signature is "bad" (a CI run under load failed so).
    signTime: new Date(),
    canonicalization: 'relaxed/relaxed',
    signatureData: [{ signingDomain: domain, selector: SELECTOR, privateKey: key.privateKey, ...(options.maxBodyLength === undefined ? {} : { maxBodyLength: options.maxBodyLength }) }],
  });
  return Buffer.concat([Buffer.from(signatures), message]);
}

export function testResolver(testDns: TestDns): (name: string, rrtype: string) => Promise<unknown> {
  const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([testDns.address]);
  return (name, rrtype) => resolver.resolve(name, rrtype) as Promise<unknown>;
}

/**
 * What a forwarding provider does to a message it received from `originIp`
 * (e.g. the customer's server): authenticate it, then prepend its
 * Authentication-Results and an ARC set (RFC 8617) sealed as `sealer`.
 */
export async function forwardLikeProvider(
  raw: Buffer,
  options: { testDns: TestDns; key: DkimKey; sealer: string; originIp: string; originSender: string; mta?: string },
): Promise<Buffer> {
  const result = await authenticate(raw, {
    ip: options.originIp,
    helo: 'mx.origin.test',
    sender: options.originSender,
    mta: options.mta ?? `mx.${options.sealer}`,
    resolver: testResolver(options.testDns),
    disableBimi: true,
    seal: { signingDomain: options.sealer, selector: SELECTOR, privateKey: options.key.privateKey },
  });
  return Buffer.concat([Buffer.from(result.headers), raw]);
}

/** A plain RFC 5322 message with CRLF line ends. */
export function plainMessage(options: { from: string; to: string; subject: string; body?: string; messageId?: string; date?: string; extraHeaders?: string[] }): Buffer {
  const lines = [
    `From: ${options.from}`,
    `To: ${options.to}`,
    `Subject: ${options.subject}`,
    `Date: ${options.date ?? new Date().toUTCString()}`,
    `Message-ID: <${options.messageId ?? `${crypto.randomUUID()}@test.example`}>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    ...(options.extraHeaders ?? []),
    '',
    options.body ?? `Hello, this is ${options.subject}.`,
    '',
  ];
  return Buffer.from(lines.join('\r\n'));
}

/** Gmail's forwarding confirmation text part (English). */
export function gmailConfirmationText(requester: string, code: string, forwardingAddress: string, link: string): string {
  return [
    `${requester} has requested to automatically forward mail to your email`,
    `address ${forwardingAddress}.`,
    `Confirmation code: ${code}`,
    '',
    `To allow ${requester} to automatically forward mail to your address,`,
    'please click the link below to confirm the request:',
    '',
    link,
    '',
    'If you click the link and it appears to be broken, please copy and paste it',
    "into a new browser window. If you aren't able to access the link, you can",
    `send the confirmation code ${code} to ${requester}.`,
    '',
    'Thanks for using Gmail!',
    '',
    'The Gmail Team',
    '',
    'To learn more about why you might have received this message, please visit:',
    'http://support.google.com/mail/bin/answer.py?answer=184973.',
  ].join('\r\n');
}
