/**
 * A real OAuth 2.0 / OpenID Connect authorisation server for tests: npm
 * `oidc-provider` (8.x: the last major that supports Node 20) over HTTPS on
 * 127.0.0.1 with the run's test certificate. It has
 *
 * - a confidential test client (`postroom`, client_secret_post, PKCE S256
 *   required, authorization_code + refresh_token) and a resource-server
 *   client (`dovecot`, client_secret_basic) for the introspection endpoint;
 * - test users with passwords and a real login + consent interaction (HTML
 *   forms a browser can walk; `authorize()` walks them with fetch);
 * - refresh tokens for `offline_access` (rotated on every use by default,
 *   like Microsoft's), short access-token lifetimes on demand, opaque
 *   access tokens for one mail resource whose introspection answer carries
 *   `username` (what Dovecot's oauth2 passdb matches the login name with);
 * - token revocation (RFC 7009) and server-side grant revocation
 *   (`revokeGrants(user)`: what "remove access" in a Google account does);
 * - per-endpoint request counters and fault injection for the token endpoint.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ensureTestCertificates } from './certs';

// oidc-provider is an ES module; Node 20.19+ can require() it.
const { Provider } = require('oidc-provider') as typeof import('oidc-provider');
type ProviderInstance = InstanceType<typeof Provider>;

/** The resource (RFC 8707) every access token is issued for: the test mail servers. */
export const MAIL_RESOURCE = 'urn:postroom-test:mail';
/** Scopes the mail resource knows: the test's own and the Google/Microsoft ones, so their defaults can point here. */
export const MAIL_SCOPES = ['imap', 'smtp', 'https://mail.google.com/', 'https://outlook.office.com/IMAP.AccessAsUser.All', 'https://outlook.office.com/SMTP.Send'];

export interface OidcServerOptions {
  /** Redirect URIs registered for the `postroom` client. */
  redirectUris: string[];
  /** login -> password. */
  users?: Record<string, string>;
  /** Access token lifetime in seconds (changeable later with setAccessTokenTtl). */
  accessTokenTtl?: number;
  /** Rotate the refresh token on every refresh (default true). */
  rotateRefreshTokens?: boolean;
  /**
   * Issue refresh tokens for every code exchange, as Microsoft does for
   * `offline_access` without prompt=consent (an OIDC server drops
   * offline_access unless prompt=consent, OIDC Core §11).
   */
  offlineAccessWithoutConsent?: boolean;
}

export interface FaultInjection {
  /** HTTP status to answer on the token endpoint instead of serving it. */
  status: number;
  /** JSON body (an OAuth error) or null for an empty non-JSON answer. */
  body: Record<string, string> | null;
}

export interface OidcServer {
  issuer: string;
  port: number;
  clientId: string;
  clientSecret: string;
  /** For Dovecot: the introspection endpoint and the resource server's credentials. */
  introspection: { url: string; clientId: string; clientSecret: string };
  tokenEndpoint: string;
  /** Requests seen per endpoint path ('/token', '/token/introspection', '/auth', …). */
  requests(path: string): number;
  /** Requests to the token endpoint per grant_type. */
  grants(grantType: string): number;
  addUser(login: string, password: string): void;
  setAccessTokenTtl(seconds: number): void;
  /** Make the token endpoint fail (null: serve normally again). */
  failTokenEndpoint(fault: FaultInjection | null): void;
  /** Revoke every grant of a user at the server: their tokens stop working, refreshes get invalid_grant. */
  revokeGrants(login: string): Promise<number>;
  /** Forget issued access tokens (not the grants): what a server does when a token expires early. */
  dropAccessTokens(login?: string): number;
  /** Ask the introspection endpoint about a token, as a resource server would. */
  introspect(token: string): Promise<Record<string, unknown>>;
  /**
   * Walk an authorization URL like a user would (follow redirects, fill the
   * login form, press Allow or Deny) and return the URL the server finally
   * redirects to (the client's redirect URI with code/state/iss or error).
   */
  authorize(url: string, as: { login: string; password: string; deny?: boolean }): Promise<URL>;
  stop(): Promise<void>;
}

const html = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title: string, prompt: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${html(title)}</title></head>`
    + `<body data-prompt="${prompt}"><h1>${html(title)}</h1>${body}</body></html>`;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** In-memory adapter (oidc-provider's storage interface) that tests can inspect and revoke through. */
function memoryAdapter(store: Map<string, { payload: Record<string, unknown>; expiresAt: number }>) {
  return class MemoryAdapter {
    constructor(private readonly name: string) {}
    private key(id: string) { return `${this.name}:${id}`; }
    async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number) {
      store.set(this.key(id), { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    }
    async find(id: string) {
      const entry = store.get(this.key(id));
      if (!entry || entry.expiresAt <= Date.now()) return undefined;
      return entry.payload;
    }
    async findByUid(uid: string) {
      for (const [key, entry] of store) if (key.startsWith(`${this.name}:`) && entry.payload.uid === uid && entry.expiresAt > Date.now()) return entry.payload;
      return undefined;
    }
    async findByUserCode() { return undefined; }
    async consume(id: string) {
      const entry = store.get(this.key(id));
      if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) { store.delete(this.key(id)); }
    async revokeByGrantId(grantId: string) {
      for (const [key, entry] of store) if (entry.payload.grantId === grantId) store.delete(key);
    }
  };
}

export async function startOidcServer(options: OidcServerOptions): Promise<OidcServer> {
  const certs = ensureTestCertificates();
  const users = new Map(Object.entries(options.users ?? {}));
  const counts = new Map<string, number>();
  const grantCounts = new Map<string, number>();
  const storage = new Map<string, { payload: Record<string, unknown>; expiresAt: number }>();
  let accessTokenTtl = options.accessTokenTtl ?? 3600;
  let fault: FaultInjection | null = null;
  const clientSecret = crypto.randomBytes(18).toString('base64url');
  const resourceServerSecret = crypto.randomBytes(18).toString('hex');

  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => { res.statusCode = 503; res.end(); };
  const server = https.createServer({ cert: fs.readFileSync(certs.certFile), key: fs.readFileSync(certs.keyFile) }, (req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `https://127.0.0.1:${port}`;

  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' };

  const provider: ProviderInstance = new Provider(issuer, {
    adapter: memoryAdapter(storage) as never,
    clients: [
      {
        client_id: 'postroom',
        client_secret: clientSecret,
        redirect_uris: options.redirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
      {
        client_id: 'dovecot',
        client_secret: resourceServerSecret,
        redirect_uris: [],
        grant_types: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [signingKey as never] },
    cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    scopes: ['openid', 'offline_access', 'email'],
    pkce: { required: () => true, methods: ['S256'] },
    async findAccount(_ctx, sub) {
      return { accountId: sub, async claims() { return { sub, email: sub, email_verified: true }; } };
    },
    // Introspection answers carry these (Dovecot's username_attribute).
    async extraTokenClaims(_ctx, token) {
      return 'accountId' in token && token.accountId ? { username: token.accountId } : undefined;
    },
    rotateRefreshToken: () => options.rotateRefreshTokens ?? true,
    async issueRefreshToken(_ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && (code.scopes.has('offline_access') || options.offlineAccessWithoutConsent === true);
    },
    ttl: {
      AccessToken: () => accessTokenTtl,
      AuthorizationCode: 60,
      Grant: 30 * 24 * 3600,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      RefreshToken: 30 * 24 * 3600,
    },
    features: {
      devInteractions: { enabled: false },
      introspection: {
        enabled: true,
        // The resource server may ask about any token; a client only about its own.
        allowedPolicy: async (_ctx, client, token) => client.clientId === 'dovecot' || token.clientId === client.clientId,
      },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => MAIL_RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async () => ({ scope: MAIL_SCOPES.join(' '), audience: MAIL_RESOURCE, accessTokenFormat: 'opaque', accessTokenTTL: accessTokenTtl }),
      },
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  });
  provider.on('server_error', (_ctx: unknown, err: Error) => process.stderr.write(`oidc test server error: ${err.stack}\n`));
  // Token endpoint requests by grant type, answered or refused.
  const countGrant = (ctx: { oidc?: { params?: Record<string, unknown> } }) => {
    const grantType = String(ctx.oidc?.params?.grant_type ?? '');
    grantCounts.set(grantType, (grantCounts.get(grantType) ?? 0) + 1);
  };
  provider.on('grant.success', countGrant);
  provider.on('grant.error', countGrant);
  const callback = provider.callback();

  async function interaction(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const [, , uid, action] = url.pathname.split('/');
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction mismatch');
    const send = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method === 'GET') {
      if (details.prompt.name === 'login') {
        return send(200, page('Sign in to the test provider', 'login', `<form method="post" action="/interaction/${uid}/login">`
          + '<label>Email <input name="login" autocomplete="username"></label> '
          + '<label>Password <input name="password" type="password" autocomplete="current-password"></label> '
          + '<button type="submit">Sign in</button></form>'));
      }
      const scopes = String(details.params.scope ?? '').split(' ').filter(Boolean);
      return send(200, page(`Allow ${String(details.params.client_id)} to access your mail?`, 'consent',
        `<ul>${scopes.map((scope) => `<li>${html(scope)}</li>`).join('')}</ul>`
        + `<form method="post" action="/interaction/${uid}/confirm"><button type="submit">Allow</button></form>`
        + `<form method="post" action="/interaction/${uid}/abort"><button type="submit">Deny</button></form>`));
    }
    const form = await readForm(req);
    if (action === 'login') {
      const login = (form.get('login') ?? '').trim().toLowerCase();
      if (!users.has(login) || users.get(login) !== form.get('password')) {
        return send(401, page('Sign in to the test provider', 'login', `<p role="alert">Wrong email or password.</p><form method="post" action="/interaction/${uid}/login">`
          + '<label>Email <input name="login"></label> <label>Password <input name="password" type="password"></label> <button type="submit">Sign in</button></form>'));
      }
      await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
      return;
    }
    if (action === 'confirm') {
      const { prompt: { details: missing }, params, session } = details;
      const grant = details.grantId
        ? (await provider.Grant.find(details.grantId))!
        : new provider.Grant({ accountId: session!.accountId, clientId: String(params.client_id) });
      if (missing.missingOIDCScope) grant.addOIDCScope((missing.missingOIDCScope as string[]).join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims as string[]);
      if (missing.missingResourceScopes) {
        for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes as Record<string, string[]>)) grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
      return;
    }
    if (action === 'abort') {
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'The user denied access' }, { mergeWithLastSubmission: false });
      return;
    }
    send(404, page('Not found', 'error', ''));
  }

  handler = (req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    counts.set(url.pathname, (counts.get(url.pathname) ?? 0) + 1);
    if (url.pathname.startsWith('/interaction/')) {
      interaction(req, res, url).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`interaction failed: ${err.message}`);
      });
      return;
    }
    if (url.pathname === '/token' && req.method === 'POST' && fault) {
      const injected = fault;
      readForm(req).then((form) => {
        const grantType = form.get('grant_type') ?? '';
        grantCounts.set(grantType, (grantCounts.get(grantType) ?? 0) + 1);
        res.writeHead(injected.status, { 'content-type': injected.body ? 'application/json' : 'text/plain', 'cache-control': 'no-store' });
        res.end(injected.body ? JSON.stringify(injected.body) : 'unavailable');
      }, () => res.destroy());
      return;
    }
    callback(req, res);
  };

  async function revokeGrants(login: string): Promise<number> {
    const grantIds = [...storage.entries()]
      .filter(([key, entry]) => key.startsWith('Grant:') && entry.payload.accountId === login)
      .map(([key]) => key.slice('Grant:'.length));
    for (const grantId of grantIds) {
      for (const [key, entry] of storage) if (entry.payload.grantId === grantId || key === `Grant:${grantId}`) storage.delete(key);
    }
    return grantIds.length;
  }

  function dropAccessTokens(login?: string): number {
    let dropped = 0;
    for (const [key, entry] of storage) {
      if (key.startsWith('AccessToken:') && (!login || entry.payload.accountId === login)) {
        storage.delete(key);
        dropped += 1;
      }
    }
    return dropped;
  }

  async function introspect(token: string): Promise<Record<string, unknown>> {
    const res = await fetch(`${issuer}/token/introspection`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`dovecot:${resourceServerSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token }),
    });
    return (await res.json()) as Record<string, unknown>;
  }

  async function authorize(start: string, as: { login: string; password: string; deny?: boolean }): Promise<URL> {
    const jar = new Map<string, { value: string; path: string }>();
    const cookieHeader = (url: URL) => [...jar.entries()].filter(([, c]) => url.pathname.startsWith(c.path)).map(([name, c]) => `${name}=${c.value}`).join('; ');
    const remember = (res: Response) => {
      for (const line of res.headers.getSetCookie()) {
        const [pair, ...attrs] = line.split(';');
        const eq = pair.indexOf('=');
        const name = pair.slice(0, eq).trim();
        const value = pair.slice(eq + 1).trim();
        const pathAttr = attrs.map((a) => a.trim()).find((a) => a.toLowerCase().startsWith('path='));
        const expired = attrs.some((a) => /^expires=Thu, 01 Jan 1970/i.test(a.trim())) || value === '';
        if (expired) jar.delete(name);
        else jar.set(name, { value, path: pathAttr ? pathAttr.slice(5) : '/' });
      }
    };
    let next = new URL(start);
    let method = 'GET';
    let body: URLSearchParams | undefined;
    for (let step = 0; step < 20; step += 1) {
      if (!next.href.startsWith(issuer)) return next; // left the server: the client's redirect URI
      const res = await fetch(next, {
        method, body, redirect: 'manual',
        headers: { cookie: cookieHeader(next), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      });
      remember(res);
      method = 'GET';
      body = undefined;
      if (res.status >= 300 && res.status < 400) {
        next = new URL(res.headers.get('location')!, next);
        await res.arrayBuffer();
        continue;
      }
      const text = await res.text();
      const prompt = /data-prompt="(\w+)"/.exec(text)?.[1];
      const uid = /action="\/interaction\/([^/"]+)\//.exec(text)?.[1];
      if (res.status === 401) throw new Error(`test provider refused the login of ${as.login}`);
      if (!prompt || !uid || res.status !== 200) throw new Error(`unexpected page from the test provider (${res.status}): ${text.slice(0, 300)}`);
      method = 'POST';
      if (prompt === 'login') {
        next = new URL(`/interaction/${uid}/login`, issuer);
        body = new URLSearchParams({ login: as.login, password: as.password });
      } else {
        next = new URL(`/interaction/${uid}/${as.deny ? 'abort' : 'confirm'}`, issuer);
        body = new URLSearchParams();
      }
    }
    throw new Error('authorize(): too many redirects');
  }

  return {
    issuer,
    port,
    clientId: 'postroom',
    clientSecret,
    introspection: { url: `${issuer}/token/introspection`, clientId: 'dovecot', clientSecret: resourceServerSecret },
    tokenEndpoint: `${issuer}/token`,
    requests: (path) => counts.get(path) ?? 0,
    grants: (grantType) => grantCounts.get(grantType) ?? 0,
    addUser: (login, password) => { users.set(login.toLowerCase(), password); },
    setAccessTokenTtl: (seconds) => { accessTokenTtl = seconds; },
    failTokenEndpoint: (next) => { fault = next; },
    revokeGrants,
    dropAccessTokens,
    introspect,
    authorize,
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
