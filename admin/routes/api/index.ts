import fs from 'node:fs';
import express, { Router, type RequestHandler } from 'express';
import { fromRoot } from '../../../gateway/core/paths';
import { apiErrorHandler, apiNotFound } from '../../middleware/errors';
import type { AdminDeps } from '../../types';
import { accountsApi } from './accounts';
import { bearerAuth } from './bearer';
import { messagesApi } from './messages';
import { sendApi, sendBodyParser } from './send';
import { objectsApi } from './objects';
import { checkQuery, requireJsonBody, requireObjectBody } from './validate';

/**
 * The JSON API under /api/v1 (documented in admin/openapi.json; a test keeps
 * the two in step). Every answer is JSON, errors as {error:{code,message}}.
 * Sub-routers are mounted without a path so route paths stay absolute to
 * /api/v1 (the OpenAPI test walks them).
 */
export function apiRouter(deps: AdminDeps): Router {
  const router = Router();
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  router.use(bearerAuth(deps));
  router.use(requireJsonBody);
  // Sending takes attachments in JSON: a larger limit for that one route, only once the token is checked.
  router.use(sendBodyParser(deps));
  // Not strict: valid JSON that is not an object is answered BAD_BODY (requireObjectBody), not BAD_JSON.
  router.use(express.json({ limit: '1mb', strict: false }));
  router.use(requireObjectBody);
  const operations = documentedOperations();
  const allowed = allowedMethods(operations);
  router.use(refuseUndocumentedQuery(operations));
  // Middleware, not a route: the OpenAPI test walks the routes, and OPTIONS is no documented operation.
  router.use((req, res, next) => {
    const methods = req.method === 'OPTIONS' ? allowed(req.path) : [];
    if (methods.length === 0) return next();
    res.set('Allow', [...methods, 'OPTIONS'].join(', ')).status(204).end();
  });
  router.use(accountsApi(deps));
  router.use(messagesApi(deps));
  router.use(sendApi(deps));
  router.use(objectsApi(deps));
  router.use(apiNotFound(allowed));
  router.use(apiErrorHandler(deps.log));
  return router;
}

interface DocumentedPath {
  pattern: RegExp;
  /** METHOD → the names of its query parameters (the path's own and the operation's). */
  methods: Record<string, string[]>;
}

type Parameter = { name: string; in: string };

/**
 * The operations of admin/openapi.json (a test keeps it equal to the
 * routes), by request path: a known path asked with another method is a 405,
 * and a query parameter an operation does not document is a 400.
 */
function documentedOperations(): (path: string) => DocumentedPath[] {
  const doc = JSON.parse(fs.readFileSync(fromRoot('admin', 'openapi.json'), 'utf8')) as {
    paths: Record<string, Record<string, { parameters?: Parameter[] }> & { parameters?: Parameter[] }>;
  };
  const queryNames = (parameters: Parameter[] = []) => parameters.filter((p) => p.in === 'query').map((p) => p.name);
  // Case-insensitive, as Express routes are: /Messages is /messages.
  const paths: DocumentedPath[] = Object.entries(doc.paths).map(([template, item]) => ({
    pattern: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{\w+\}/g, '[^/]+')}/?$`, 'i'),
    methods: Object.fromEntries(Object.entries(item)
      .filter(([key]) => ['get', 'post', 'put', 'patch', 'delete'].includes(key))
      .map(([key, operation]) => [key.toUpperCase(), [...queryNames(item.parameters), ...queryNames((operation as { parameters?: Parameter[] }).parameters)]])),
  }));
  return (path) => paths.filter((entry) => entry.pattern.test(path));
}

/** The methods a path answers, for Allow: the documented ones, and HEAD wherever GET is (Express answers it). */
function allowedMethods(operations: (path: string) => DocumentedPath[]): (path: string) => string[] {
  return (path) => [...new Set(operations(path).flatMap((entry) => Object.keys(entry.methods)))]
    .flatMap((method) => (method === 'GET' ? ['GET', 'HEAD'] : [method]));
}

/**
 * Unknown query parameters are a 400 on every operation, as the document
 * says: a guessed `?dryRun=true` on a send, or a misspelt filter, must not be
 * ignored. Paths and methods that do not exist are left to the 404/405.
 */
function refuseUndocumentedQuery(operations: (path: string) => DocumentedPath[]): RequestHandler {
  return (req, _res, next) => {
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const names = operations(req.path).find((entry) => entry.methods[method])?.methods[method];
    if (names) checkQuery(req.query as Record<string, unknown>, names);
    next();
  };
}
