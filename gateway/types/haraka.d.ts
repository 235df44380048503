// haraka-dsn and haraka-constants ship no TypeScript types; these cover
// what the Postroom plugins use (haraka-dsn 1.2, haraka-constants 1.0).
declare module 'haraka-dsn' {
  class DSN {
    code: number;
    msg: string;
    reply: string;
    /** The enhanced status code's class, subject and detail (RFC 3463): `${cls}.${sub}.${det}`. */
    cls: number;
    sub: number;
    det: number;
    /** code e.g. 550; subject/detail form the enhanced status code class.subject.detail (RFC 3463). */
    static create(code: number, msg: string, subject?: number, detail?: number): DSN;
  }
  export = DSN;
}

declare module 'haraka-constants' {
  export const cont: number;
  export const stop: number;
  export const deny: number;
  export const denysoft: number;
  export const denydisconnect: number;
  export const disconnect: number;
  export const ok: number;
  export const denysoftdisconnect: number;
  export function translate(value: number): string;
  /** Haraka's connection states (connection.state). */
  export const connection: { state: Record<'CMD' | 'LOOP' | 'DATA' | 'PAUSE' | 'PAUSE_SMTP' | 'PAUSE_DATA' | 'DISCONNECTING' | 'DISCONNECTED', number> };
}
