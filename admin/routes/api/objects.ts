import express, { Router, type Request } from 'express';
import { z } from 'zod';
import { describeFields, parseObjectId } from '../../../gateway/accounts';
import { AppError, notFound } from '../../../gateway/core/errors';
import { listJobs } from '../../../gateway/crm/backfill';
import { OBJECT_TYPES } from '../../../gateway/models/crm';
import { commitImport, previewImport, MAX_IMPORT_BYTES } from '../../../gateway/crm/csv-import';
import { unlinkAsViewer } from '../../../gateway/crm/link';
import {
  createObject, deleteObject, getObject, searchObjects, updateObject, upsertObjectByExternalId, type ObjectServiceDeps,
} from '../../../gateway/crm/objects';
import { objectTimeline } from '../../../gateway/crm/timeline';
import type { AdminDeps } from '../../types';
import { contentTypeCharset } from '../../lib/forms';
import { checkQuery, oneOfParam, parseBody, wholeNumberParam } from './validate';

const objectFields = {
  type: z.string().optional(),
  name: z.string().optional(),
  emails: z.array(z.string()).max(1000).optional(),
  domains: z.array(z.string()).max(1000).optional(),
  company: z.string().optional(),
  customerId: z.string().nullable().optional(),
  externalId: z.string().optional(),
  rules: z.object({ linkBulk: z.boolean().optional(), neverLink: z.array(z.string()).max(1000).optional() }).strict().optional(),
  // Read-only fields a client may send back unchanged from a GET (OpenAPI readOnly): accepted and ignored, as on accounts.
  id: z.unknown().optional(),
  createdAt: z.unknown().optional(),
  updatedAt: z.unknown().optional(),
};
const objectBody = z.object(objectFields).strict();

/** A parsed body without the read-only fields, for the CRM layer. */
function writable<T extends { id?: unknown; createdAt?: unknown; updatedAt?: unknown }>(body: T): Omit<T, 'id' | 'createdAt' | 'updatedAt'> {
  const { id: _id, createdAt: _createdAt, updatedAt: _updatedAt, ...fields } = body;
  return fields;
}

const BOOLEAN_WORDS = ['true', 'false'] as const;

function requireAdminApi(req: Request): void {
  if (req.viewer?.role !== 'admin') throw new AppError('FORBIDDEN', 'only admins can do this', { status: 403 });
}

function objectIdParam(value: unknown) {
  const id = parseObjectId(String(value));
  if (!id) throw notFound('object');
  return id;
}

/**
 * /api/v1/objects: CRM customers, contacts and leads — search, create,
 * read, update, delete, upsert by external id (what a CRM pushes), the
 * object's email timeline (with the privacy rule for the token's user),
 * unlinking, background job progress and CSV import.
 */
export function objectsApi(deps: AdminDeps): Router {
  const router = Router();
  const crm: ObjectServiceDeps = { store: deps.store, log: deps.log, settings: { businessDomains: deps.config.businessDomains } };

  router.get('/objects', async (req, res) => {
    const query = checkQuery(req.query as Record<string, unknown>, ['q', 'type', 'limit', 'skip']);
    const result = await searchObjects(deps.store, { q: query.q, type: oneOfParam(query.type, 'type', OBJECT_TYPES), limit: wholeNumberParam(query.limit, 'limit', 1, 500), skip: wholeNumberParam(query.skip, 'skip', 0, 100000) });
    res.json(result);
  });

  router.post('/objects', async (req, res) => {
    const body = writable(parseBody(objectBody, req.body));
    const result = await createObject(crm, body, req.actor!);
    res.status(201).location(`/api/v1/objects/${result.object.id}`).json(result);
  });

  // Upsert by the CRM's id: PUT is idempotent, the same body twice leaves one record.
  router.put('/objects/by-external-id/:type/:externalId', async (req, res) => {
    // The body is a CrmObjectInput like any other: type and externalId may be in it too, but only as the path has them.
    const { type, externalId, ...body } = writable(parseBody(objectBody, req.body));
    const fields: Record<string, string> = {};
    if (type !== undefined && type !== req.params.type) fields.type = `must be ${String(req.params.type)}, as in the path, or left out`;
    if (externalId !== undefined && externalId !== req.params.externalId) fields.externalId = 'must be the external id in the path, or left out';
    if (Object.keys(fields).length > 0) throw new AppError('VALIDATION_FAILED', describeFields(fields), { status: 400, fields });
    const result = await upsertObjectByExternalId(crm, String(req.params.type), String(req.params.externalId), body, req.actor!);
    res.status(result.created ? 201 : 200).location(`/api/v1/objects/${result.object.id}`).json(result);
  });

  // Bytes, decoded by the charset parameter, a byte-order mark, or else as UTF-8 / Windows-1252 (csv-text.ts).
  router.post('/objects/import', express.raw({ type: ['text/csv', 'text/plain', 'application/csv'], limit: MAX_IMPORT_BYTES }), async (req, res) => {
    requireAdminApi(req);
    const query = checkQuery(req.query as Record<string, unknown>, ['commit', 'type']);
    if (!Buffer.isBuffer(req.body)) throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'Send the CSV file as the request body with Content-Type: text/csv.', { status: 415 });
    const options = { defaultType: oneOfParam(query.type, 'type', OBJECT_TYPES), charset: contentTypeCharset(req) };
    if (oneOfParam(query.commit, 'commit', BOOLEAN_WORDS) === 'true') res.json(await commitImport(crm, req.body, options, req.actor!));
    else res.json(await previewImport(crm, req.body, options));
  });

  router.get('/objects/:id', async (req, res) => {
    res.json(await getObject(deps.store, objectIdParam(req.params.id)));
  });

  router.patch('/objects/:id', async (req, res) => {
    const body = writable(parseBody(objectBody, req.body));
    res.json(await updateObject(crm, objectIdParam(req.params.id), body, req.actor!));
  });

  router.delete('/objects/:id', async (req, res) => {
    requireAdminApi(req);
    await deleteObject(crm, objectIdParam(req.params.id), req.actor!);
    res.status(204).end();
  });

  router.get('/objects/:id/messages', async (req, res) => {
    const query = checkQuery(req.query as Record<string, unknown>, ['before', 'limit']);
    const objectId = objectIdParam(req.params.id);
    await getObject(deps.store, objectId);
    res.json(await objectTimeline(crm, objectId, req.viewer!, { before: query.before, limit: wholeNumberParam(query.limit, 'limit', 1, 200) }));
  });

  router.delete('/objects/:id/messages/:messageId', async (req, res) => {
    const query = checkQuery(req.query as Record<string, unknown>, ['neverLink']);
    const messageId = parseObjectId(String(req.params.messageId));
    if (!messageId) throw notFound('link');
    const result = await unlinkAsViewer(crm, req.viewer!, { messageId, objectId: objectIdParam(req.params.id) }, { neverLink: oneOfParam(query.neverLink, 'neverLink', BOOLEAN_WORDS) === 'true' });
    res.json({ neverLink: result.neverLink, jobIds: result.pruneJobId ? [result.pruneJobId.toString()] : [] });
  });

  router.get('/objects/:id/jobs', async (req, res) => {
    const objectId = objectIdParam(req.params.id);
    await getObject(deps.store, objectId);
    res.json({ jobs: await listJobs(deps.store, { objectId }) });
  });

  return router;
}
