import express, { Router, type Request } from 'express';
import { parseObjectId } from '../../gateway/accounts';
import { isAppError, notFound } from '../../gateway/core/errors';
import { listJobs } from '../../gateway/crm/backfill';
import { MAX_IMPORT_BYTES, previewImport, saveUpload } from '../../gateway/crm/csv-import';
import { commitUploadOnce, discardUpload, importRunning } from '../../gateway/crm/import-once';
import { OBJECT_TYPE_NAMES } from '../../gateway/crm/object-input';
import type { ObjectServiceDeps } from '../../gateway/crm/objects';
import { contentTypeCharset, field, queryParam } from '../lib/forms';
import { flash, requireAdmin } from '../middleware/auth';
import type { AdminDeps } from '../types';

/** How many problem rows and sample rows a preview page lists (the counts cover the whole file). */
const SHOWN_ERRORS = 500;
const SHOWN_SAMPLES = 20;

/**
 * CSV import in the console (admins): upload → preview with per-row errors
 * → commit. The upload is kept in the store between the steps.
 *
 * Two ways in: a file picker whose JavaScript (static/objects.js) sends the
 * file as text/csv with the CSRF token in X-CSRF-Token (works for files up
 * to MAX_IMPORT_BYTES), and a paste box that works without JavaScript
 * within the console's form size limit.
 */
export function objectsImportRouter(deps: AdminDeps, crm: ObjectServiceDeps): Router {
  const router = Router();
  router.use('/objects/import', requireAdmin);

  router.get('/objects/import', (_req, res) => {
    res.render('objects/import', { title: 'Import objects', types: OBJECT_TYPE_NAMES, maxMb: MAX_IMPORT_BYTES / 1024 / 1024 });
  });

  // The file picker's script sends the file's bytes (decoded here: Excel writes Windows-1252 or UTF-16) and
  // reads a JSON answer: a redirect it followed would use up the flash message before the page it shows.
  router.post('/objects/import', express.raw({ type: ['text/csv', 'application/csv'], limit: MAX_IMPORT_BYTES }), async (req: Request, res) => {
    const raw = Buffer.isBuffer(req.body);
    const csv = raw ? (req.body as Buffer) : field(req, 'csv');
    const defaultType = raw ? queryParam(req, 'type') : field(req, 'type');
    const filename = raw ? queryParam(req, 'filename') : 'pasted text';
    try {
      const id = await saveUpload(deps.store, {
        csv,
        charset: raw ? contentTypeCharset(req) : undefined,
        filename,
        defaultType: (OBJECT_TYPE_NAMES as readonly string[]).includes(defaultType) ? defaultType : '',
        userId: req.viewer!.id,
      });
      if (raw) return res.json({ location: `/objects/import/${id.toString()}` });
      res.redirect(303, `/objects/import/${id.toString()}`);
    } catch (err) {
      if (!isAppError(err) || err.status >= 500) throw err;
      if (raw) return res.status(err.status).json({ error: { code: err.code, message: err.message } });
      flash(req, 'error', err.message);
      res.redirect(303, '/objects/import');
    }
  });

  async function loadUpload(req: Request) {
    const id = parseObjectId(String(req.params.id));
    const upload = id ? await deps.store.models.CsvImport.findById(id).lean() : null;
    if (!upload) throw notFound('import');
    return upload;
  }

  router.get('/objects/import/:id', async (req, res) => {
    const upload = await loadUpload(req);
    const options = { defaultType: upload.defaultType || undefined };
    if (upload.status === 'committed') {
      const jobs = (await listJobs(deps.store, { limit: 20 })).filter((job) => upload.jobIds.some((id) => id.toString() === job.id));
      return res.render('objects/import-done', { title: 'Import finished', upload, result: upload.result, jobs, jobsActive: jobs.some((j) => j.status === 'pending' || j.status === 'running') });
    }
    if (await importRunning(crm, upload._id, deps.clock())) return res.render('objects/import-running', { title: 'Importing', upload });
    let preview;
    try {
      preview = await previewImport(crm, upload.csv, options);
    } catch (err) {
      if (!isAppError(err) || err.status >= 500) throw err;
      flash(req, 'error', err.message);
      return res.redirect(303, '/objects/import');
    }
    const problems = preview.rows.filter((row) => row.action === 'skip');
    res.render('objects/import-preview', {
      title: 'Import preview',
      upload,
      preview,
      problems: problems.slice(0, SHOWN_ERRORS),
      moreProblems: Math.max(0, problems.length - SHOWN_ERRORS),
      samples: preview.rows.filter((row) => row.action !== 'skip').slice(0, SHOWN_SAMPLES),
    });
  });

  router.post('/objects/import/:id/commit', async (req, res) => {
    const upload = await loadUpload(req);
    // Pressed again while the first press imports: its page shows the running import, then the result.
    const commit = await commitUploadOnce(crm, upload._id, req.actor!, deps.clock);
    if (commit.imported) {
      const { creates, updates, invalid } = commit.result;
      flash(req, 'success', `Imported: ${creates} created, ${updates} updated${invalid ? `, ${invalid} rows skipped` : ''}.`);
    }
    res.redirect(303, `/objects/import/${upload._id.toString()}`);
  });

  router.post('/objects/import/:id/discard', async (req, res) => {
    const upload = await loadUpload(req);
    // An import under way (or done) is not discarded: its page says so.
    if (!(await discardUpload(crm, upload._id, deps.clock()))) return res.redirect(303, `/objects/import/${upload._id.toString()}`);
    flash(req, 'info', 'Import discarded; nothing was written.');
    res.redirect(303, '/objects');
  });

  return router;
}
