// cookie 0.7 ships no types (1.x does; express and express-session use 0.7): the two functions Postroom calls.
declare module 'cookie' {
  export function parse(header: string): Record<string, string | undefined>;
  export function serialize(name: string, value: string, options?: { httpOnly?: boolean; secure?: boolean; sameSite?: 'lax' | 'strict' | 'none'; path?: string; maxAge?: number }): string;
}
