import express, { Router } from 'express';
import { apiErrorHandler, apiNotFound } from '../../middleware/errors';
import type { AdminDeps } from '../../types';
import { accountsApi } from './accounts';
import { bearerAuth } from './bearer';
import { messagesApi } from './messages';
import { sendApi, sendBodyParser } from './send';
import { objectsApi } from './objects';
import { requireObjectBody } from './validate';

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
  // Sending takes attachments in JSON: a larger limit for that one route, only once the token is checked.
  router.use(sendBodyParser(deps));
  // Not strict: valid JSON that is not an object is answered BAD_BODY (requireObjectBody), not BAD_JSON.
  router.use(express.json({ limit: '1mb', strict: false }));
  router.use(requireObjectBody);
  router.use(accountsApi(deps));
  router.use(messagesApi(deps));
  router.use(sendApi(deps));
  router.use(objectsApi(deps));
  router.use(apiNotFound());
  router.use(apiErrorHandler(deps.log));
  return router;
}
