// mailauth 4.x ships no TypeScript types; these cover the calls Postroom
// makes (verification in gateway/mail/auth-verdict.ts, signing and sealing
// in the tests). Shapes checked against mailauth 4.9.5 output.
declare module 'mailauth' {
  import type { Readable } from 'node:stream';

  export type MailauthResolver = (name: string, rrtype: string) => Promise<unknown>;

  export interface MailauthStatus {
    result: string;
    comment?: string;
    aligned?: string | false;
    /** DKIM: body bytes past the signature's l= limit. */
    underSized?: number;
    header?: Record<string, string>;
    shouldSeal?: boolean;
  }

  export interface MailauthDkimResult {
    signingDomain?: string;
    selector?: string;
    status: MailauthStatus;
    info?: string;
    /** The key record as published (also when it was unusable). */
    rr?: string;
  }

  export interface MailauthArcAuthResults {
    mta?: string;
    spf?: { result: string; smtp?: { mailfrom?: string; helo?: string } };
    dkim?: Array<{ result: string; header?: { i?: string; d?: string } }>;
    dmarc?: { result: string; header?: { from?: string } };
  }

  export interface MailauthArcChainLink {
    i: number;
    'arc-seal'?: { parsed?: { d?: { value?: string } } };
  }

  export interface MailauthArcResult {
    status: MailauthStatus;
    i?: number | false;
    signature?: { signingDomain?: string; status?: MailauthStatus } | false;
    authenticationResults?: MailauthArcAuthResults;
    /** Non-enumerable: the parsed chain, oldest first. */
    readonly chain?: MailauthArcChainLink[] | false;
  }

  export interface MailauthResult {
    dkim: { headerFrom?: string[]; envelopeFrom?: string | false; results?: MailauthDkimResult[] };
    spf: { domain?: string; status: MailauthStatus; info?: string; header?: string } | false;
    dmarc:
      | {
          status: MailauthStatus;
          domain?: string;
          policy?: string;
          p?: string;
          info?: string;
          rr?: string;
          /** The aligned domain per mechanism (false when none), as mailauth computed it. */
          alignment?: { spf?: { result?: string | false; strict?: boolean }; dkim?: { result?: string | false; strict?: boolean } };
        }
      | false;
    arc: MailauthArcResult | false;
    headers: string;
  }

  export interface SealOptions {
    signingDomain: string;
    selector: string;
    privateKey: string | Buffer;
    algorithm?: string;
  }

  export interface AuthenticateOptions {
    ip?: string;
    helo?: string;
    sender?: string;
    mta?: string;
    resolver?: MailauthResolver;
    minBitLength?: number;
    disableArc?: boolean;
    disableDmarc?: boolean;
    disableBimi?: boolean;
    trustReceived?: boolean;
    seal?: SealOptions;
  }

  export function authenticate(input: Readable | Buffer | string, options: AuthenticateOptions): Promise<MailauthResult>;

  /** Add an ARC set (RFC 8617) for results the sealer recorded itself: `authResults` is the ARC-Authentication-Results value after "i=N;". */
  export function sealMessage(input: Buffer | string, seal: SealOptions & { authResults: string; cv?: 'none' | 'pass' | 'fail'; signTime?: Date }): Promise<Buffer>;
}

declare module 'mailauth/lib/dkim/sign' {
  import type { Readable } from 'node:stream';

  export interface DkimSignOptions {
    canonicalization?: string;
    algorithm?: string;
    signTime?: Date;
    headerList?: string[];
    signatureData: Array<{ signingDomain: string; selector: string; privateKey: string | Buffer; algorithm?: string; canonicalization?: string }>;
  }

  export function dkimSign(input: Readable | Buffer | string, options: DkimSignOptions): Promise<{ signatures: string; errors: unknown[] }>;
}
