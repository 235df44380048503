import crypto from 'node:crypto';
import path from 'node:path';
import ejs from 'ejs';
import express, { type Express } from 'express';
import session from 'express-session';
import { LoginThrottle } from '../gateway/accounts';
import type { Config } from '../gateway/core/config';
import { AppError } from '../gateway/core/errors';
import type { SecretBox } from '../gateway/core/crypto';
import type { Logger } from '../gateway/core/log';
import { fromRoot } from '../gateway/core/paths';
import type { Store } from '../gateway/store';
import { UploadSlots } from './lib/upload-slots';
import * as helpers from './lib/view-helpers';
import { loadSessionUser } from './middleware/auth';
import { csrfProtection } from './middleware/csrf';
import { apiErrorHandler, htmlErrorHandler, htmlNotFound } from './middleware/errors';
import { requestMetrics } from './middleware/request-metrics';
import { noStore, securityHeaders } from './middleware/security';
import { viewerTimeZoneLocals } from './middleware/time-zone';
import { consoleCookies } from './middleware/cookie-names';
import { apiRouter } from './routes/api';
import { auditRouter } from './routes/audit';
import { authRouter } from './routes/auth';
import { composeRouter, composeUploads } from './routes/compose';
import { emailsRouter } from './routes/emails';
import { healthRouter } from './routes/health';
import { objectsRouter } from './routes/objects';
import { oauthRouter } from './routes/oauth';
import { preferencesEmailRouter } from './routes/preferences-email';
import { preferencesRouter } from './routes/preferences';
import { preferencesSmtpRouter } from './routes/preferences-smtp';
import { tokensRouter } from './routes/tokens';
import { usersRouter } from './routes/users';
import { DatabaseSessionStore } from './session-store';
import type { AdminDeps } from './types';

export interface CreateAppOptions {
  store: Store;
  log: Logger;
  config: Readonly<Config>;
  secretBox: SecretBox;
  clock?: () => Date;
  /** Signs the session cookie; derive it from the master key (purpose 'sessions'). Random when omitted (sessions end on restart). */
  sessionSecret?: string | Buffer;
  imapTimeoutMs?: number;
  throttle?: LoginThrottle;
  afterRelease?: AdminDeps['afterRelease'];
}

export type AdminApp = Express & { locals: { deps: AdminDeps } };

const VIEWS = fromRoot('admin', 'views');
const LAYOUT = path.join(VIEWS, 'layout.ejs');

/**
 * Build the console + API app (no listening: server.ts does that, and
 * supertest drives this directly).
 */
export function createApp(options: CreateAppOptions): AdminApp {
  const clock = options.clock ?? (() => new Date());
  const log = options.log.child({ component: 'admin' });
  const sessions = new DatabaseSessionStore(options.store, log, clock);
  const deps: AdminDeps = {
    store: options.store,
    log,
    config: options.config,
    secretBox: options.secretBox,
    clock,
    sessions,
    throttle: options.throttle ?? new LoginThrottle(clock),
    uploadSlots: new UploadSlots(),
    imapTimeoutMs: options.imapTimeoutMs ?? 15000,
    afterRelease: options.afterRelease,
  };
  const cookies = consoleCookies(options.config.publicUrl);
  const https = cookies.secure;
  const production = options.config.nodeEnv === 'production';

  const app = express() as AdminApp;
  app.locals.deps = deps;
  app.disable('x-powered-by');
  // One hop: the address the reverse proxy appended to X-Forwarded-For, not the left-most one, which
  // is whatever the client sent (`true` would let anyone pick the IP the login throttle and audit see).
  app.set('trust proxy', options.config.trustProxy ? 1 : false);
  app.set('views', VIEWS);
  app.set('view engine', 'ejs');
  if (production) app.set('view cache', true);
  // Every view is rendered into layout.ejs unless it sets `layout: false`.
  app.engine('ejs', (file, options, callback) => {
    const locals = options as Record<string, unknown>;
    const opts = { cache: production, filename: file };
    ejs.renderFile(file, locals, opts, (err, body) => {
      if (err) return callback(err);
      if (locals.layout === false) return callback(null, body);
      ejs.renderFile(LAYOUT, { ...locals, body }, { cache: production, filename: LAYOUT }, callback);
    });
  });
  Object.assign(app.locals, helpers, { publicUrl: options.config.publicUrl, gatewayDomain: options.config.gatewayDomain, features: { objects: false } });

  app.use(requestMetrics());
  app.use(securityHeaders({ https }));
  app.use('/static', express.static(fromRoot('admin', 'public'), { maxAge: production ? '1h' : 0, index: false }));
  // Browsers ask for /favicon.ico on their own; answer before the session layer so it never touches one.
  app.get('/favicon.ico', (_req, res) => res.redirect(301, '/static/favicon.svg'));
  app.use(healthRouter(deps));

  // The API's description, for client generators and for installs without the source at hand: no token
  // needed, as it says nothing about this appliance's data.
  app.get('/api/v1/openapi.json', (_req, res) => res.sendFile(fromRoot('admin', 'openapi.json')));
  // The JSON API authenticates with bearer tokens: no cookies, no CSRF.
  app.use('/api/v1', apiRouter(deps));
  // Any other /api path (no version, a version that does not exist) answers JSON too, pointing at v1.
  app.use('/api', (req: express.Request, _res: express.Response, next: express.NextFunction) => next(new AppError('NOT_FOUND', `no API at ${req.baseUrl}${req.path}: the JSON API is under /api/v1`, { status: 404 })), apiErrorHandler(log));

  const sessionSecret = options.sessionSecret ?? crypto.randomBytes(32);
  app.use(
    session({
      name: cookies.session,
      secret: sessionSecret.toString('hex'),
      store: sessions,
      resave: false,
      saveUninitialized: false,
      rolling: true,
      cookie: { httpOnly: true, sameSite: 'lax', secure: https, maxAge: 12 * 3600 * 1000, path: '/' },
    }),
  );
  // express-session saves a changed session while the response ends, after the headers went out;
  // a browser follows a 303 as soon as it sees the headers, so the next page could read the session
  // before the flash message (or other change) is stored. Save first, then redirect.
  app.use((req, res, next) => {
    const redirect = res.redirect.bind(res) as (...args: unknown[]) => void;
    res.redirect = ((...args: unknown[]) => {
      // A session holding nothing (an anonymous visitor sent to sign in) is not stored: saving it explicitly
      // would store one for every such request (saveUninitialized is off for that reason).
      if (!req.session || Object.keys(req.session).every((key) => key === 'cookie')) return redirect(...args);
      req.session.save((err) => (err ? next(err) : redirect(...args)));
    }) as typeof res.redirect;
    next();
  });
  app.use(noStore);
  app.use(express.urlencoded({ extended: false, limit: '100kb', parameterLimit: 200 }));
  // Compose is multipart (attachments): parsed before the CSRF check reads its _csrf field.
  app.use(composeUploads(deps));
  app.use(csrfProtection({ secret: sessionSecret, cookies }));
  app.use(loadSessionUser(deps));
  app.use(viewerTimeZoneLocals(deps));
  app.use((req, res, next) => {
    // Flash messages leave the session only when a page shows them (the layout calls takeFlash);
    // redirects, error pages and requests the browser makes on its own never swallow one.
    res.locals.takeFlash = () => {
      const messages = req.session.flash ?? [];
      if (req.session.flash) delete req.session.flash;
      return messages;
    };
    res.locals.currentPath = req.path;
    res.locals.now = clock();
    // A page that refuses what was sent (a form with its errors) says so in its title, the first thing a
    // screen reader reads after the reload (WCAG 3.3.1); the layout asks when it renders.
    res.locals.refused = () => res.statusCode === 400 || res.statusCode === 409 || res.statusCode === 413;
    next();
  });

  app.use(authRouter(deps));
  app.use(emailsRouter(deps));
  app.use(composeRouter(deps));
  // Before the Preferences routers: it adds the "Sign in with …" locals to their pages.
  app.use(oauthRouter(deps));
  // Before preferences-email: it adds the Sending (SMTP) panel's locals to the account page.
  app.use(preferencesSmtpRouter(deps));
  app.use(preferencesEmailRouter(deps));
  app.use(preferencesRouter(deps));
  app.use(usersRouter(deps));
  app.use(tokensRouter(deps));
  app.use(auditRouter(deps));
  // CRM object pages (admin/routes/objects*): objects, CSV import, webhooks.
  app.use(objectsRouter(deps));
  app.locals.features.objects = true;

  app.use(htmlNotFound());
  app.use(htmlErrorHandler(log));
  return app;
}
