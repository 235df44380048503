import fs from 'node:fs';
import express, { Router } from 'express';
import { fromRoot } from '../../../gateway/core/paths';
import { apiErrorHandler, apiNotFound } from '../../middleware/errors';
import type { AdminDeps } from '../../types';
import { accountsApi } from './accounts';
import { bearerAuth } from './bearer';
import { messagesApi } from './messages';
import { sendApi, sendBodyParser } from './send';
import { objectsApi } from './objects';
import { requireJsonBody, requireObjectBody } from './validate';

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
  router.use(accountsApi(deps));
  router.use(messagesApi(deps));
  router.use(sendApi(deps));
  router.use(objectsApi(deps));
  router.use(apiNotFound(documentedMethods()));
  router.use(apiErrorHandler(deps.log));
  return router;
}

/**
 * The methods each API path answers, from admin/openapi.json (a test keeps
 * it equal to the routes): a known path asked with another method is a 405.
 */
function documentedMethods(): (path: string) => string[] {
  const doc = JSON.parse(fs.readFileSync(fromRoot('admin', 'openapi.json'), 'utf8')) as { paths: Record<string, Record<string, unknown>> };
  const paths = Object.entries(doc.paths).map(([template, operations]) => ({
    pattern: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{\w+\}/g, '[^/]+')}/?$`),
    methods: Object.keys(operations).filter((key) => ['get', 'post', 'put', 'patch', 'delete'].includes(key)).map((key) => key.toUpperCase()),
  }));
  return (path) => paths.find((entry) => entry.pattern.test(path))?.methods ?? [];
}
