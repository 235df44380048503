import mongoose from 'mongoose';
import { AppError, notFound, isDuplicateKeyError } from '../core/errors';
import { recordAudit, SYSTEM_ACTOR, type Actor } from '../accounts/audit';
import { parseObjectId } from '../accounts/ids';
import type { Store } from '../store';
import { normalizeAddress, normalizeDomain } from './address';
import { createJob } from './backfill';
import type { CrmDeps } from './link';
import { normalizeObjectInput, searchTermsFor, type FieldErrors, type NormalizedObject, type ObjectInput, type ObjectTypeName } from './object-input';
import { loadCrmSettings, type CrmSettings } from './settings';
import { escapeRegex } from '../core/regex';
import { runExclusive } from '../sync/lease';

type ObjectId = mongoose.Types.ObjectId;

/**
 * The CRM object service: create, update, delete, upsert by external id,
 * get and search. Every change that affects association queues a
 * background job (backfill for what was added, prune for what was removed)
 * and returns its id so the console can show progress.
 */

export interface ObjectServiceDeps extends CrmDeps {
  /** Called after jobs were queued (a worker's kick), so they start at once. */
  onJobsQueued?: () => void;
}

export interface PublicObject {
  id: string;
  type: ObjectTypeName;
  name: string;
  emails: string[];
  domains: string[];
  company: string;
  customerId: string | null;
  externalId: string;
  rules: { linkBulk: boolean; neverLink: string[] };
  createdAt: Date | null;
  updatedAt: Date | null;
}

export type ObjectRow = {
  _id: ObjectId; type: string; name: string; emails?: string[] | null; domains?: string[] | null; company?: string | null;
  customerId?: ObjectId | null; externalId: string; rules?: { linkBulk?: boolean | null; neverLink?: string[] | null } | null;
  createdAt?: Date | null; updatedAt?: Date | null;
};

export function toPublicObject(row: ObjectRow): PublicObject {
  return {
    id: row._id.toString(),
    type: row.type as ObjectTypeName,
    name: row.name,
    emails: [...(row.emails ?? [])],
    domains: [...(row.domains ?? [])],
    company: row.company ?? '',
    customerId: row.customerId ? row.customerId.toString() : null,
    externalId: row.externalId,
    rules: { linkBulk: Boolean(row.rules?.linkBulk), neverLink: [...(row.rules?.neverLink ?? [])] },
    createdAt: row.createdAt ?? null,
    updatedAt: row.updatedAt ?? null,
  };
}

export function validationError(errors: FieldErrors): AppError {
  const message = Object.entries(errors).map(([field, problem]) => `${field} ${problem}`).join('; ');
  return new AppError('VALIDATION_FAILED', message, { status: 400, fields: errors });
}


async function checkCustomer(store: Store, customerId: string | null | undefined, errors: FieldErrors): Promise<ObjectId | null | undefined> {
  if (customerId === undefined) return undefined;
  if (customerId === null) return null;
  const id = new mongoose.Types.ObjectId(customerId);
  const exists = await store.models.CrmObject.exists({ _id: id, type: 'customer' });
  if (!exists) errors.customerId = 'no customer with this id';
  return id;
}

export interface ChangeResult {
  object: PublicObject;
  /** Background jobs queued by the change (backfill/prune). */
  jobIds: string[];
  created?: boolean;
  /**
   * Other records holding an address this change added: mail to it links
   * them all. Allowed (a shared mailbox, the same person as contact and
   * lead), but worth a word to whoever typed it — it is often a duplicate.
   */
  sharedAddresses: Array<{ id: string; type: ObjectTypeName; name: string; emails: string[] }>;
}

const SHARED_SHOWN = 5;

async function objectsSharing(store: Store, objectId: ObjectId, added: readonly string[]): Promise<ChangeResult['sharedAddresses']> {
  if (added.length === 0) return [];
  const rows = (await store.models.CrmObject.find({ emails: { $in: [...added] }, _id: { $ne: objectId } }, { type: 1, name: 1, emails: 1 })
    .sort({ nameLower: 1 }).limit(SHARED_SHOWN).lean()) as ObjectRow[];
  return rows.map((row) => ({ id: row._id.toString(), type: row.type as ObjectTypeName, name: row.name, emails: (row.emails ?? []).filter((e) => added.includes(e)) }));
}

const diff = (before: readonly string[], after: readonly string[]) => ({
  added: after.filter((x) => !before.includes(x)),
  removed: before.filter((x) => !after.includes(x)),
});

/** Queue the jobs an object change needs. */
async function queueJobsFor(deps: ObjectServiceDeps, before: ObjectRow | null, after: ObjectRow, actor: Actor): Promise<string[]> {
  const jobIds: ObjectId[] = [];
  const b = {
    emails: before?.emails ?? [], domains: before?.type === 'customer' ? before?.domains ?? [] : [],
    linkBulk: Boolean(before?.rules?.linkBulk), neverLink: before?.rules?.neverLink ?? [],
  };
  const a = {
    emails: after.emails ?? [], domains: after.type === 'customer' ? after.domains ?? [] : [],
    linkBulk: Boolean(after.rules?.linkBulk), neverLink: after.rules?.neverLink ?? [],
  };
  const emails = diff(b.emails, a.emails);
  const domains = diff(b.domains, a.domains);
  const neverLink = diff(b.neverLink, a.neverLink);
  const createdBy = actor.id ?? null;
  const objectId = after._id;

  // Something now matches more mail: look for it (everything when bulk mail or blocked addresses became linkable).
  if (before && (neverLink.removed.length > 0 || (!b.linkBulk && a.linkBulk))) {
    if (a.emails.length + a.domains.length > 0) jobIds.push(await createJob(deps.store, { kind: 'backfill', objectId, emails: a.emails, domains: a.domains, createdBy }));
  } else if (emails.added.length + domains.added.length > 0) {
    jobIds.push(await createJob(deps.store, { kind: 'backfill', objectId, emails: emails.added, domains: domains.added, createdBy }));
  }
  // Something matches less: re-check the links that depended on it (all links when bulk mail stopped counting).
  if (before && b.linkBulk && !a.linkBulk) {
    jobIds.push(await createJob(deps.store, { kind: 'prune', objectId, createdBy }));
  } else if (before && emails.removed.length + domains.removed.length + neverLink.added.length > 0) {
    const blockedEmails = neverLink.added.filter((e) => e.includes('@'));
    const blockedDomains = neverLink.added.filter((e) => !e.includes('@'));
    jobIds.push(await createJob(deps.store, {
      kind: 'prune', objectId, emails: [...emails.removed, ...blockedEmails], domains: [...domains.removed, ...blockedDomains], createdBy,
    }));
  }
  if (jobIds.length > 0) deps.onJobsQueued?.();
  return jobIds.map((id) => id.toString());
}

function documentFields(value: NormalizedObject, customerId: ObjectId | null | undefined): Record<string, unknown> {
  const set: Record<string, unknown> = {};
  for (const key of ['type', 'name', 'nameLower', 'emails', 'domains', 'company', 'externalId'] as const) {
    if (value[key] !== undefined) set[key] = value[key];
  }
  if (customerId !== undefined) set.customerId = customerId;
  if (value.linkBulk !== undefined) set['rules.linkBulk'] = value.linkBulk;
  if (value.neverLink !== undefined) set['rules.neverLink'] = value.neverLink;
  return set;
}

/**
 * Create an object. Duplicate (type, externalId) → 409 EXTERNAL_ID_TAKEN. With `id` (the console's New
 * form carries one), the same form sent twice (a double click on Create) creates one record: the second
 * finds it under that id and answers with it (`created: false`).
 */
export async function createObject(
  deps: ObjectServiceDeps, input: ObjectInput, actor: Actor = SYSTEM_ACTOR, settings?: CrmSettings, options: { id?: ObjectId } = {},
): Promise<ChangeResult> {
  settings ??= await loadCrmSettings(deps.store, deps.settings);
  const { value, errors } = normalizeObjectInput(input, { partial: false, settings });
  const customerId = await checkCustomer(deps.store, value.customerId, errors);
  if (Object.keys(errors).length > 0) throw validationError(errors);
  const _id = options.id ?? new mongoose.Types.ObjectId();
  const fields = {
    _id,
    ...documentFields(value, customerId),
    externalId: value.externalId ?? `local:${_id.toString()}`,
    rules: { linkBulk: value.linkBulk ?? false, neverLink: value.neverLink ?? [] },
    createdBy: actor.id ?? null,
  } as Record<string, unknown>;
  delete fields['rules.linkBulk'];
  delete fields['rules.neverLink'];
  fields.searchTerms = searchTermsFor(fields as never);
  let row: ObjectRow;
  try {
    row = (await deps.store.models.CrmObject.create(fields)).toObject() as ObjectRow;
  } catch (err) {
    if (!isDuplicateKeyError(err)) throw err;
    const already = options.id ? ((await deps.store.models.CrmObject.findById(options.id).lean()) as ObjectRow | null) : null;
    if (already) return { object: toPublicObject(already), jobIds: [], created: false, sharedAddresses: [] };
    throw new AppError('EXTERNAL_ID_TAKEN', `a ${value.type} with external id "${value.externalId}" already exists`, { status: 409, fields: { externalId: 'is already used by another record of this type' } });
  }
  const jobIds = await queueJobsFor(deps, null, row, actor);
  await recordAudit(deps.store, actor, { action: 'crm.object.create', targetType: 'crm-object', targetId: _id.toString(), details: { type: row.type, name: row.name } });
  return { object: toPublicObject(row), jobIds, created: true, sharedAddresses: await objectsSharing(deps.store, _id, row.emails ?? []) };
}

async function findRow(store: Store, id: string | ObjectId): Promise<ObjectRow> {
  const _id = typeof id === 'string' ? parseObjectId(id) : id;
  const row = _id ? ((await store.models.CrmObject.findById(_id).lean()) as ObjectRow | null) : null;
  if (!row) throw notFound('object');
  return row;
}

export async function getObject(store: Store, id: string | ObjectId): Promise<PublicObject> {
  return toPublicObject(await findRow(store, id));
}

export interface UpdateOptions {
  /**
   * Runs with the record as it is just before the change, while no other change of it can start (the
   * console's check that nobody changed the fields being saved since the form was shown); throwing stops it.
   */
  check?: (current: PublicObject) => void | Promise<void>;
}

const OBJECT_LEASE_MS = 30_000;
/** How long a change waits for another change of the same record (each takes a few store round trips). */
const OBJECT_WAIT_MS = 10_000;

/**
 * Run `change` while no other change of record `id` runs (a lease, sync/lease.ts: FerretDB applies
 * conditional updates as a read then a write). A change computes what it writes (search terms, link jobs)
 * from the record as it read it: two changes at once, say a new name and a new address, each left out the
 * other's part.
 */
function oneChangeAtATime<T>(store: Store, id: ObjectId, change: () => Promise<T>): Promise<T> {
  return runExclusive(store, `crm-object:${id.toHexString()}`, {
    ttlMs: OBJECT_LEASE_MS,
    waitMs: OBJECT_WAIT_MS,
    busy: () => new AppError('BUSY', 'this record is being changed by someone else; try again', { status: 409 }),
  }, change);
}

function objectIdOf(id: string | ObjectId): ObjectId {
  const _id = typeof id === 'string' ? parseObjectId(id) : id;
  if (!_id) throw notFound('object');
  return _id;
}

/** Update the fields present in `input` (absent fields are kept). */
export async function updateObject(
  deps: ObjectServiceDeps, id: string | ObjectId, input: ObjectInput, actor: Actor = SYSTEM_ACTOR, settings?: CrmSettings, options: UpdateOptions = {},
): Promise<ChangeResult> {
  const crmSettings = settings ?? await loadCrmSettings(deps.store, deps.settings);
  return oneChangeAtATime(deps.store, objectIdOf(id), () => updateNow(deps, id, input, actor, crmSettings, options));
}

async function updateNow(deps: ObjectServiceDeps, id: string | ObjectId, input: ObjectInput, actor: Actor, settings: CrmSettings, options: UpdateOptions): Promise<ChangeResult> {
  const before = await findRow(deps.store, id);
  await options.check?.(toPublicObject(before));
  // The record's own external id sent back unchanged (a GET document, `local:<id>` included) is no change, not a new id to check.
  if (input.externalId !== undefined && input.externalId === before.externalId) input = { ...input, externalId: undefined };
  const { value, errors } = normalizeObjectInput(input, { partial: true, currentType: before.type as ObjectTypeName, settings });
  const type = value.type ?? (before.type as ObjectTypeName);
  // A type change drops fields the new type does not have.
  if (type !== 'customer' && value.domains === undefined && (before.domains ?? []).length > 0) value.domains = [];
  if (type !== 'contact' && value.customerId === undefined && before.customerId) value.customerId = null;
  if (value.customerId && value.customerId === before._id.toString()) errors.customerId = 'cannot be the record itself';
  const customerId = await checkCustomer(deps.store, value.customerId, errors);
  if (Object.keys(errors).length > 0) throw validationError(errors);
  const set = documentFields(value, customerId);
  const merged = {
    name: value.name ?? before.name,
    company: value.company ?? before.company,
    emails: value.emails ?? before.emails,
    domains: value.domains ?? before.domains,
    externalId: value.externalId ?? before.externalId,
  };
  set.searchTerms = searchTermsFor(merged);
  let after: ObjectRow | null;
  try {
    after = (await deps.store.models.CrmObject.findOneAndUpdate({ _id: before._id }, { $set: set }, { returnDocument: 'after' }).lean()) as ObjectRow | null;
  } catch (err) {
    if (isDuplicateKeyError(err)) throw new AppError('EXTERNAL_ID_TAKEN', `a ${type} with external id "${value.externalId}" already exists`, { status: 409, fields: { externalId: 'is already used by another record of this type' } });
    throw err;
  }
  if (!after) throw notFound('object');
  // A customer that becomes a contact or lead has no contacts any more: they keep existing without it, as on delete.
  if (before.type === 'customer' && after.type !== 'customer') await deps.store.models.CrmObject.updateMany({ customerId: after._id }, { $set: { customerId: null } });
  const jobIds = await queueJobsFor(deps, before, after, actor);
  const changed = Object.keys(set).filter((key) => key !== 'searchTerms' && key !== 'nameLower');
  await recordAudit(deps.store, actor, { action: 'crm.object.update', targetType: 'crm-object', targetId: after._id.toString(), details: { changed } });
  const added = diff(before.emails ?? [], after.emails ?? []).added;
  return { object: toPublicObject(after), jobIds, sharedAddresses: await objectsSharing(deps.store, after._id, added) };
}

/**
 * Create or update by (type, externalId): what a CRM calls to push its
 * records. Idempotent — the same call twice leaves one record and queues
 * no job the second time (nothing changed).
 */
export async function upsertObjectByExternalId(
  deps: ObjectServiceDeps,
  type: string,
  externalId: string,
  input: ObjectInput,
  actor: Actor = SYSTEM_ACTOR,
): Promise<ChangeResult> {
  const settings = await loadCrmSettings(deps.store, deps.settings);
  const key = { type: String(type).trim().toLowerCase() as ObjectTypeName, externalId: String(externalId ?? '').trim() };
  const errors: FieldErrors = {};
  if (!['customer', 'contact', 'lead'].includes(key.type)) errors.type = 'must be customer, contact or lead';
  if (!key.externalId) errors.externalId = 'is required';
  else if (key.externalId.startsWith('local:')) errors.externalId = 'must not start with "local:" (reserved for records made in Postroom)';
  if (Object.keys(errors).length > 0) throw validationError(errors);
  for (let attempt = 0; attempt < 2; attempt++) {
    const existing = await deps.store.models.CrmObject.findOne(key, { _id: 1 }).lean();
    if (existing) {
      const { type: _t, externalId: _e, ...rest } = input;
      return { ...(await updateObject(deps, existing._id, rest, actor, settings)), created: false };
    }
    try {
      return await createObject(deps, { ...input, ...key }, actor, settings);
    } catch (err) {
      // A concurrent upsert created it between our read and insert: update instead.
      if (!(err instanceof AppError && err.code === 'EXTERNAL_ID_TAKEN') || attempt > 0) throw err;
    }
  }
  throw new AppError('CONFLICT', 'the record changed concurrently; retry', { status: 409 });
}

/**
 * Delete an object with its links; contacts that belonged to it (a customer)
 * keep existing without it. The object itself goes last: a deletion cut
 * short (a store failure, a restart) leaves it in place to be deleted again,
 * rather than links and message references to a record nobody can open.
 */
export async function deleteObject(deps: ObjectServiceDeps, id: string | ObjectId, actor: Actor = SYSTEM_ACTOR): Promise<void> {
  await oneChangeAtATime(deps.store, objectIdOf(id), () => deleteNow(deps, id, actor));
}

async function deleteNow(deps: ObjectServiceDeps, id: string | ObjectId, actor: Actor): Promise<void> {
  const row = await findRow(deps.store, id);
  const { CrmObject, Link, Message, BackfillJob } = deps.store.models;
  await BackfillJob.updateMany({ objectId: row._id, status: { $in: ['pending', 'running'] } }, { $set: { status: 'done', error: 'object deleted', finishedAt: new Date() } });
  await Link.deleteMany({ objectId: row._id });
  await Message.updateMany({ linkedObjectIds: row._id }, { $pull: { linkedObjectIds: row._id } });
  await CrmObject.updateMany({ customerId: row._id }, { $set: { customerId: null } });
  await CrmObject.deleteOne({ _id: row._id });
  await recordAudit(deps.store, actor, { action: 'crm.object.delete', targetType: 'crm-object', targetId: row._id.toString(), details: { type: row.type, name: row.name, externalId: row.externalId } });
}


/** How a search word is written into a term: addresses and domains in normalised form (IDN → A-label). */
function normalizeQueryWord(word: string): string {
  // "@globex.com" is how people write "everyone at globex.com": the domain is the term.
  const lower = word.toLowerCase().replace(/^@+(?=[^@])/, '');
  if (lower.includes('@')) {
    const at = lower.lastIndexOf('@');
    const domainPart = lower.slice(at + 1);
    const domain = domainPart ? normalizeDomain(domainPart) : '';
    if (domain) return normalizeAddress(lower) ?? `${lower.slice(0, at)}@${domain}`;
    return lower;
  }
  if (lower.includes('.') && /[^\x00-\x7f]/.test(lower)) return normalizeDomain(lower) ?? lower;
  return lower;
}

export interface SearchOptions {
  q?: string;
  type?: string;
  limit?: number;
  skip?: number;
}

/**
 * Find objects by name, email or domain: every query word must prefix-match
 * one of the object's search terms (multikey index on searchTerms; a
 * prefix-anchored regex is an index range, and FerretDB has no $text).
 */
export async function searchObjects(store: Store, options: SearchOptions = {}): Promise<{ objects: PublicObject[]; more: boolean }> {
  const filter: Record<string, unknown> = {};
  if (options.type && ['customer', 'contact', 'lead'].includes(options.type)) filter.type = options.type;
  const words = (options.q ?? '').trim().split(/\s+/).filter(Boolean).slice(0, 8).map(normalizeQueryWord);
  if (words.length === 1) filter.searchTerms = { $regex: `^${escapeRegex(words[0])}` };
  else if (words.length > 1) filter.$and = words.map((word) => ({ searchTerms: { $regex: `^${escapeRegex(word)}` } }));
  const limit = Math.min(Math.max(options.limit ?? 50, 1), 500);
  const rows = (await store.models.CrmObject.find(filter)
    .sort({ nameLower: 1, _id: 1 })
    .skip(Math.max(0, options.skip ?? 0))
    .limit(limit + 1)
    .lean()) as ObjectRow[];
  return { objects: rows.slice(0, limit).map(toPublicObject), more: rows.length > limit };
}

/** Objects by id (message page: "linked to"). */
export async function objectsByIds(store: Store, ids: readonly ObjectId[]): Promise<PublicObject[]> {
  if (ids.length === 0) return [];
  const rows = (await store.models.CrmObject.find({ _id: { $in: ids } }).lean()) as ObjectRow[];
  return rows.map(toPublicObject);
}
