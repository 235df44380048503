import { Router, type Request, type Response } from 'express';
import { Types } from 'mongoose';
import { parseObjectId } from '../../gateway/accounts';
import { AppError, isAppError, notFound } from '../../gateway/core/errors';
import { displayAddressOrDomain } from '../../gateway/crm/address';
import { listJobs } from '../../gateway/crm/backfill';
import { unlinkAsViewer } from '../../gateway/crm/link';
import { OBJECT_TYPE_NAMES, type ObjectInput } from '../../gateway/crm/object-input';
import {
  createObject, deleteObject, getObject, searchObjects, updateObject, type ChangeResult, type ObjectServiceDeps, type PublicObject,
} from '../../gateway/crm/objects';
import { builtinFreemailDomains } from '../../gateway/crm/freemail';
import { loadCrmSettings, updateCrmSettings } from '../../gateway/crm/settings';
import { objectTimeline } from '../../gateway/crm/timeline';
import { deletedByViewer } from '../lib/already-deleted';
import { checkbox, field, queryParam } from '../lib/forms';
import { flash, requireAdmin, requireUser } from '../middleware/auth';
import type { AdminDeps } from '../types';
import { objectsImportRouter } from './objects-import';
import { objectsWebhooksRouter } from './objects-webhooks';

const PAGE_SIZE = 50;

export interface ObjectForm {
  type: string;
  name: string;
  emails: string;
  domains: string;
  company: string;
  customer: string;
  externalId: string;
  linkBulk: boolean;
  neverLink: string;
}

function formFrom(object: PublicObject | null, customerLabel = ''): ObjectForm {
  return {
    type: object?.type ?? 'contact',
    name: object?.name ?? '',
    // As people write them (Unicode domains); saving normalises them again.
    emails: (object?.emails ?? []).map(displayAddressOrDomain).join('\n'),
    domains: (object?.domains ?? []).map(displayAddressOrDomain).join('\n'),
    company: object?.company ?? '',
    customer: customerLabel,
    externalId: object && !object.externalId.startsWith('local:') ? object.externalId : '',
    linkBulk: object?.rules.linkBulk ?? false,
    neverLink: (object?.rules.neverLink ?? []).map(displayAddressOrDomain).join('\n'),
  };
}

function formFromRequest(req: Request): ObjectForm {
  return {
    type: field(req, 'type'),
    name: field(req, 'name'),
    emails: field(req, 'emails'),
    domains: field(req, 'domains'),
    company: field(req, 'company'),
    customer: field(req, 'customer').trim(),
    externalId: field(req, 'externalId').trim(),
    linkBulk: checkbox(req, 'linkBulk'),
    neverLink: field(req, 'neverLink'),
  };
}

const FORM_FIELDS = ['type', 'name', 'emails', 'domains', 'company', 'customer', 'externalId', 'linkBulk', 'neverLink'] as const;
type FormField = (typeof FORM_FIELDS)[number];
const FIELD_LABELS: Record<FormField, string> = {
  type: 'Type', name: 'Name', emails: 'Email addresses', domains: 'Domains', company: 'Company', customer: 'Customer',
  externalId: 'External id', linkBulk: 'Also link newsletters', neverLink: 'Never link',
};

/** A field's value as compared between versions of the form (browsers send text areas' lines with CRLF). */
function comparable(value: string | boolean): string {
  return typeof value === 'boolean' ? String(value) : value.replace(/\r\n?/g, '\n').trim();
}

/**
 * The edit form carries the record as it was shown (`base`), so a Save writes only the fields this user
 * changed: two people editing one record at once (one adds an address, the other fixes the name) no longer
 * undo each other's change with the stale values of their form.
 */
function encodeBase(form: ObjectForm): string {
  return Buffer.from(JSON.stringify(form), 'utf8').toString('base64url');
}

function decodeBase(value: string): ObjectForm | null {
  if (!value) return null;
  try {
    const parsed = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as Record<string, unknown>;
    const valid = FORM_FIELDS.every((key) => (key === 'linkBulk' ? typeof parsed[key] === 'boolean' : typeof parsed[key] === 'string'));
    return valid ? (parsed as unknown as ObjectForm) : null;
  } catch {
    return null;
  }
}

function shown(value: string | boolean): string {
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  const text = value.split('\n').map((line) => line.trim()).filter(Boolean).join(', ');
  if (!text) return '(empty)';
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

/** A contact's customer, typed as an id, an external id or the exact name. */
async function resolveCustomer(deps: AdminDeps, ref: string): Promise<string | null> {
  if (!ref) return null;
  const { CrmObject } = deps.store.models;
  const id = parseObjectId(ref);
  const byId = id ? await CrmObject.findOne({ _id: id, type: 'customer' }, { _id: 1 }).lean() : null;
  if (byId) return byId._id.toString();
  const byExternal = await CrmObject.findOne({ type: 'customer', externalId: ref }, { _id: 1 }).lean();
  if (byExternal) return byExternal._id.toString();
  const byName = await CrmObject.find({ type: 'customer', nameLower: ref.toLowerCase() }, { _id: 1 }).limit(2).lean();
  if (byName.length === 1) return byName[0]._id.toString();
  throw new AppError('VALIDATION_FAILED', `customer ${byName.length > 1 ? 'name is ambiguous: use the external id' : 'not found'}`, {
    status: 400, fields: { customer: byName.length > 1 ? 'several customers have this name: enter the external id' : 'no customer with this id, external id or name' },
  });
}

function inputFrom(form: ObjectForm, customerId: string | null): ObjectInput {
  return {
    type: form.type,
    name: form.name,
    emails: form.emails,
    domains: form.type === 'customer' ? form.domains : '',
    company: form.company,
    customerId: form.type === 'contact' ? customerId : null,
    externalId: form.externalId || undefined,
    rules: { linkBulk: form.linkBulk, neverLink: form.neverLink },
  };
}

/** Of a whole form's input, the fields the user changed (a changed type rewrites the record: all of them). */
function changedInput(input: ObjectInput, changed: ReadonlySet<FormField>): ObjectInput {
  if (changed.has('type')) return input;
  const rules: NonNullable<ObjectInput['rules']> = {};
  if (changed.has('linkBulk')) rules.linkBulk = input.rules?.linkBulk;
  if (changed.has('neverLink')) rules.neverLink = input.rules?.neverLink;
  return {
    ...(changed.has('name') ? { name: input.name } : {}),
    ...(changed.has('emails') ? { emails: input.emails } : {}),
    ...(changed.has('domains') ? { domains: input.domains } : {}),
    ...(changed.has('company') ? { company: input.company } : {}),
    ...(changed.has('customer') ? { customerId: input.customerId } : {}),
    ...(changed.has('externalId') ? { externalId: input.externalId } : {}),
    ...(Object.keys(rules).length > 0 ? { rules } : {}),
  };
}

/** A word about addresses another record holds too (often a duplicate): mail to them links both. */
function flashSharedAddresses(req: Request, shared: ChangeResult['sharedAddresses']): void {
  for (const other of shared) {
    flash(req, 'info', `${other.emails.map(displayAddressOrDomain).join(', ')} ${other.emails.length === 1 ? 'is' : 'are'} also on ${other.name} (${other.type}): mail to ${other.emails.length === 1 ? 'it' : 'them'} is linked to both. If that is the same person, delete the duplicate.`);
  }
}

/**
 * Console pages for CRM objects: list and search, create, edit, delete,
 * the object's email timeline (with why each message is linked, unlink and
 * "never link this address"), background job progress; CSV import and
 * webhooks live in objects-import.ts and objects-webhooks.ts.
 */
export function objectsRouter(deps: AdminDeps): Router {
  const router = Router();
  const crm: ObjectServiceDeps = { store: deps.store, log: deps.log, settings: { businessDomains: deps.config.businessDomains } };
  router.use('/objects', requireUser);

  router.get('/objects', async (req, res) => {
    const q = queryParam(req, 'q').trim();
    const type = (OBJECT_TYPE_NAMES as readonly string[]).includes(queryParam(req, 'type')) ? queryParam(req, 'type') : '';
    const page = /^\d{1,5}$/.test(queryParam(req, 'page')) ? Math.max(1, Number(queryParam(req, 'page'))) : 1;
    const result = await searchObjects(deps.store, { q, type, limit: PAGE_SIZE, skip: (page - 1) * PAGE_SIZE });
    res.render('objects/index', { title: 'Objects', q, type, page, result, types: OBJECT_TYPE_NAMES });
  });

  // Sub-pages with fixed names come before /objects/:id.
  router.use(objectsImportRouter(deps, crm));
  router.use(objectsWebhooksRouter(deps));

  async function renderSettings(res: Response, status = 200, extra: Record<string, unknown> = {}) {
    const settings = await loadCrmSettings(deps.store, crm.settings);
    res.status(status).render('objects/settings', {
      title: 'Matching settings',
      builtinCount: builtinFreemailDomains().size,
      form: { freemailDomains: settings.freemailDomains.join('\n'), stripSubaddress: settings.stripSubaddress, shareLinkedMail: settings.shareLinkedMail },
      businessDomains: settings.businessDomains,
      errors: {},
      ...extra,
    });
  }

  router.get('/objects/settings', requireAdmin, (_req, res) => renderSettings(res));

  router.post('/objects/settings', requireAdmin, async (req, res) => {
    const form = { freemailDomains: field(req, 'freemailDomains'), stripSubaddress: checkbox(req, 'stripSubaddress'), shareLinkedMail: checkbox(req, 'shareLinkedMail') };
    try {
      await updateCrmSettings(deps.store, form, req.actor!, crm.settings);
    } catch (err) {
      if (isAppError(err) && err.status < 500) return renderSettings(res, err.status, { form, errors: err.fields ?? { freemailDomains: err.message } });
      throw err;
    }
    flash(req, 'success', 'Matching settings saved. They apply to mail linked from now on.');
    res.redirect(303, '/objects/settings');
  });

  function renderForm(res: Response, status: number, locals: { object: PublicObject | null; form: ObjectForm; base?: ObjectForm; newId?: string; errors: Record<string, string>; conflict?: boolean }) {
    const { base, newId, ...rest } = locals;
    res.status(status).render('objects/form', {
      title: locals.object ? `Edit ${locals.object.name}` : 'New object', types: OBJECT_TYPE_NAMES, conflict: false, ...rest,
      base: base ? encodeBase(base) : '', newId: newId ?? new Types.ObjectId().toHexString(),
    });
  }

  router.get('/objects/new', (req, res) => {
    const form = formFrom(null);
    if ((OBJECT_TYPE_NAMES as readonly string[]).includes(queryParam(req, 'type'))) form.type = queryParam(req, 'type');
    renderForm(res, 200, { object: null, form, errors: {} });
  });

  router.post('/objects', async (req, res) => {
    const form = formFromRequest(req);
    // The id the New form was given: a second press of Create (a double click) finds the record the first made.
    const newId = parseObjectId(field(req, 'newId')) ?? undefined;
    try {
      const customerId = form.type === 'contact' ? await resolveCustomer(deps, form.customer) : null;
      const { object, jobIds, sharedAddresses } = await createObject(crm, inputFrom(form, customerId), req.actor!, undefined, { id: newId });
      flash(req, 'success', `${object.name} created.${jobIds.length ? ' Existing mail is being linked in the background.' : ''}`);
      flashSharedAddresses(req, sharedAddresses);
      res.redirect(303, `/objects/${object.id}`);
    } catch (err) {
      if (isAppError(err) && err.status < 500) return renderForm(res, err.status, { object: null, form, newId: newId?.toHexString(), errors: err.fields ?? { name: err.message } });
      throw err;
    }
  });

  async function loadObject(req: Request): Promise<PublicObject> {
    const id = parseObjectId(String(req.params.id));
    if (!id) throw notFound('object');
    return getObject(deps.store, id);
  }

  router.get('/objects/:id', async (req, res) => {
    const object = await loadObject(req);
    const objectId = parseObjectId(object.id)!;
    const before = queryParam(req, 'before') || undefined;
    const [timeline, jobs, customer] = await Promise.all([
      objectTimeline(crm, objectId, req.viewer!, { before, limit: 25 }),
      listJobs(deps.store, { objectId, limit: 5 }),
      object.customerId ? deps.store.models.CrmObject.findById(object.customerId, { name: 1 }).lean() : null,
    ]);
    const contacts = object.type === 'customer'
      ? await deps.store.models.CrmObject.find({ customerId: objectId }, { name: 1, type: 1 }).sort({ nameLower: 1 }).limit(100).lean()
      : [];
    res.render('objects/show', {
      title: object.name,
      object,
      customer,
      contacts,
      timeline,
      firstPage: !before,
      jobs,
      jobsActive: jobs.some((job) => job.status === 'pending' || job.status === 'running'),
      viewer: req.viewer!,
    });
  });

  /** The edit form of a record as stored now. */
  async function storedForm(object: PublicObject): Promise<ObjectForm> {
    const customer = object.customerId ? await deps.store.models.CrmObject.findById(object.customerId, { externalId: 1, name: 1 }).lean() : null;
    return formFrom(object, customer ? (customer.externalId.startsWith('local:') ? customer.name : customer.externalId) : '');
  }

  router.get('/objects/:id/edit', async (req, res) => {
    const object = await loadObject(req);
    const form = await storedForm(object);
    renderForm(res, 200, { object, form, base: form, errors: {} });
  });

  router.post('/objects/:id', async (req, res) => {
    const object = await loadObject(req);
    const form = formFromRequest(req);
    const base = decodeBase(field(req, 'base'));
    // Without the form's base (a page from an earlier release), every field counts as changed, as it did then.
    const changed = new Set<FormField>(FORM_FIELDS.filter((key) => !base || comparable(form[key]) !== comparable(base[key])));
    // A new type rewrites the record from the whole form: every field counts as this user's.
    if (changed.has('type')) for (const key of FORM_FIELDS) changed.add(key);
    let latest: { object: PublicObject; form: ObjectForm } | null = null;
    const check = async (current: PublicObject) => {
      if (!base) return;
      const now = await storedForm(current);
      // Someone else saved a field this user changed too, to another value: theirs is not silently replaced.
      const clashes = [...changed].filter((key) => comparable(now[key]) !== comparable(base[key]) && comparable(now[key]) !== comparable(form[key]));
      if (clashes.length === 0) return;
      latest = { object: current, form: now };
      const fields = Object.fromEntries(clashes.map((key) => [key, `was changed by someone else after you opened this form, to: ${shown(now[key])}. Save again to replace it with yours.`]));
      throw new AppError('EDIT_CONFLICT', `${clashes.map((key) => FIELD_LABELS[key]).join(', ')} changed meanwhile`, { status: 409, fields });
    };
    try {
      const customerId = form.type === 'contact' ? await resolveCustomer(deps, form.customer) : null;
      const input = changedInput(inputFrom(form, customerId), changed);
      const { jobIds, sharedAddresses } = await updateObject(crm, object.id, input, req.actor!, undefined, { check });
      flash(req, 'success', `Saved.${jobIds.length ? ' Links are being updated in the background.' : ''}`);
      flashSharedAddresses(req, sharedAddresses);
      res.redirect(303, `/objects/${object.id}`);
    } catch (err) {
      const clash = latest as { object: PublicObject; form: ObjectForm } | null;
      if (isAppError(err) && err.code === 'EDIT_CONFLICT' && clash) {
        // The fields this user changed keep their values; the others show what is stored now. Saving again
        // writes theirs over the marked fields, knowingly.
        const merged = Object.fromEntries(FORM_FIELDS.map((key) => [key, changed.has(key) ? form[key] : clash.form[key]])) as unknown as ObjectForm;
        return renderForm(res, 409, { object: clash.object, form: merged, base: clash.form, errors: err.fields ?? {}, conflict: true });
      }
      if (isAppError(err) && err.status < 500) return renderForm(res, err.status, { object, form, base: base ?? undefined, errors: err.fields ?? { name: err.message } });
      throw err;
    }
  });

  router.post('/objects/:id/delete', requireAdmin, async (req, res) => {
    const id = String(req.params.id);
    if (!(await deps.store.models.CrmObject.exists({ _id: parseObjectId(id) })) && await deletedByViewer(deps.store, req, { type: 'crm-object', id, action: 'crm.object.delete' })) {
      flash(req, 'info', 'This record is already deleted.');
      return res.redirect(303, '/objects');
    }
    const object = await loadObject(req);
    await deleteObject(crm, object.id, req.actor!);
    flash(req, 'success', `${object.name} deleted with its links.`);
    res.redirect(303, '/objects');
  });

  router.post('/objects/:id/unlink', async (req, res) => {
    const object = await loadObject(req);
    const messageId = parseObjectId(field(req, 'messageId'));
    if (!messageId) throw notFound('link');
    const result = await unlinkAsViewer(crm, req.viewer!, { messageId, objectId: parseObjectId(object.id)! }, { neverLink: checkbox(req, 'neverLink') });
    flash(req, 'success', result.neverLink.length
      ? `Unlinked. ${result.neverLink.join(', ')} will not be linked to ${object.name} again; its other links are being removed.`
      : 'Unlinked. This message will not be linked to this object again.');
    res.redirect(303, field(req, 'returnTo') === 'message' ? `/messages/${messageId.toString()}` : `/objects/${object.id}`);
  });

  return router;
}
