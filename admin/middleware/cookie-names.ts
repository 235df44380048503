/**
 * The console's cookie names. Over HTTPS they carry the `__Host-` prefix
 * (RFC 6265bis §4.1.3.2): a browser keeps such a cookie only when it came
 * with Secure, Path=/ and no Domain, so a sibling subdomain of the console
 * (a marketing site, a tenant's page under the same parent domain) cannot
 * plant one — neither a session of the attacker's own (login CSRF) nor an
 * anonymous form cookie whose signed token the attacker knows. Plain HTTP
 * (a console tried on localhost) cannot set Secure cookies, so the names stay
 * plain there.
 */
export interface ConsoleCookies {
  secure: boolean;
  session: string;
  anonymousForms: string;
}

export function consoleCookies(publicUrl: string): ConsoleCookies {
  const secure = publicUrl.startsWith('https:');
  const name = (base: string) => (secure ? `__Host-${base}` : base);
  return { secure, session: name('postroom.sid'), anonymousForms: name('postroom.csrf') };
}
