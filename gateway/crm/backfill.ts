import mongoose from 'mongoose';
import type { Store } from '../store';
import { claimUnderLease, newHolderId } from '../sync/lease';
import { splitAddress, unicodeDomain } from './address';
import { loadCrmSettings } from './settings';
import { linkMessage, newLinkCache, planForMessage, queueLinkEvents, type CrmDeps, type LinkableMessage, type LinkResult } from './link';
import { escapeRegex } from '../core/regex';

type ObjectId = mongoose.Types.ObjectId;

/**
 * Background CRM jobs (BackfillJob documents): progress is written after
 * every batch together with a cursor, so the console shows it and a job
 * whose process died is resumed by any worker once its lease expires.
 */

const BATCH = 200;
const LEASE_MS = 120_000;
const RETRY_AFTER_MS = 60_000;
export const MAX_JOB_ATTEMPTS = 5;


export type JobKind = 'backfill' | 'prune' | 'relink';

export async function createJob(
  store: Store,
  input: { kind: JobKind; objectId?: ObjectId | null; emails?: string[]; domains?: string[]; createdBy?: ObjectId | null },
): Promise<ObjectId> {
  const job = await store.models.BackfillJob.create({
    kind: input.kind,
    objectId: input.objectId ?? null,
    emails: input.emails ?? [],
    domains: input.domains ?? [],
    createdBy: input.createdBy ?? null,
    createdAt: new Date(),
  });
  return job._id;
}

/**
 * Message.addresses holds addresses as received, lower-cased: the domain may
 * be Unicode or A-label, the local part composed or decomposed Unicode, and
 * it may carry a sub-address. Match
 * every form of the object's addresses and domains.
 */
export function messageAddressFilter(emails: readonly string[], domains: readonly string[], stripSubaddress: boolean): Array<Record<string, unknown>> {
  const exact = new Set<string>();
  const patterns: string[] = [];
  for (const email of emails) {
    const parts = splitAddress(email);
    if (!parts) continue;
    const domainForms = [...new Set([parts.domain, unicodeDomain(parts.domain)])];
    // Stored as received: a Unicode local part may be decomposed (NFD) there.
    const localForms = [...new Set([parts.local, parts.local.normalize('NFD')])];
    for (const local of localForms) for (const domain of domainForms) exact.add(`${local}@${domain}`);
    // Anchored at the start, so MongoDB bounds the index scan by the prefix.
    if (stripSubaddress) {
      for (const local of localForms) patterns.push(`^${escapeRegex(local)}\\+[^@]*@(?:${domainForms.map(escapeRegex).join('|')})$`);
    }
  }
  for (const domain of domains) {
    const forms = [...new Set([domain, unicodeDomain(domain)])];
    patterns.push(`@(?:[^@]+\\.)?(?:${forms.map(escapeRegex).join('|')})$`);
  }
  const or: Array<Record<string, unknown>> = [];
  if (exact.size > 0) or.push({ addresses: { $in: [...exact] } });
  for (const pattern of patterns) or.push({ addresses: { $regex: pattern } });
  return or;
}

type JobRow = {
  _id: ObjectId; kind: JobKind; objectId?: ObjectId | null; emails?: string[] | null; domains?: string[] | null;
  processed?: number | null; linked?: number | null; removed?: number | null; total?: number | null; cursor?: ObjectId | null;
  attempts?: number | null;
};

interface Progress {
  processed: number;
  linked: number;
  removed: number;
  cursor: ObjectId | null;
}

async function saveProgress(store: Store, jobId: ObjectId, progress: Progress): Promise<void> {
  await store.models.BackfillJob.updateOne(
    { _id: jobId },
    { $set: { ...progress, lockedUntil: new Date(Date.now() + LEASE_MS) } },
  );
}

/**
 * What one message adds to a job's "linked" count. An object's job counts
 * the messages now linked to that object, whoever made the link: linking a
 * message links it to every object it matches, so a customer's job may link
 * mail to a contact created a moment later (whose own job then finds the
 * link there). Counting per message, not per link made, also keeps the
 * count right when a job resumes from its cursor and meets links it made
 * before it was interrupted. A relink job, about no object, counts the links
 * it made.
 */
function linkedByJob(job: JobRow, result: LinkResult): number {
  if (!job.objectId) return result.created;
  return result.objectIds.includes(job.objectId.toString()) ? 1 : 0;
}

async function runBackfill(deps: CrmDeps, job: JobRow, progress: Progress): Promise<void> {
  const { Message, BackfillJob } = deps.store.models;
  const cache = newLinkCache();
  const settings = (cache.settings = await loadCrmSettings(deps.store, deps.settings));
  const or =
    job.kind === 'relink'
      ? null
      : messageAddressFilter(job.emails ?? [], job.domains ?? [], settings.stripSubaddress);
  if (or && or.length === 0) return;
  const base: Record<string, unknown> = { status: 'inbox' };
  if (or) base.$or = or;
  if (!job.total && progress.processed === 0) {
    await BackfillJob.updateOne({ _id: job._id }, { $set: { total: await Message.countDocuments(base) } });
  }
  for (;;) {
    const filter = progress.cursor ? { ...base, _id: { $gt: progress.cursor } } : base;
    const batch = (await Message.find(filter, { text: 0, html: 0, attachments: 0 }).sort({ _id: 1 }).limit(BATCH).lean()) as unknown as LinkableMessage[];
    if (batch.length === 0) break;
    for (const message of batch) {
      const result = await linkMessage(deps, message, cache);
      progress.linked += linkedByJob(job, result);
      progress.processed++;
      progress.cursor = message._id;
    }
    await saveProgress(deps.store, job._id, progress);
  }
}

/**
 * Re-check an object's links that were made through removed addresses or
 * domains (or all of its links when none are named): keep a link that
 * other addresses still support (with its reasons updated), delete the rest.
 */
async function runPrune(deps: CrmDeps, job: JobRow, progress: Progress): Promise<void> {
  const { Link, Message, CrmObject } = deps.store.models;
  const object = job.objectId ? await CrmObject.findById(job.objectId).lean() : null;
  if (!object) return; // deleted: deleteObject removed its links
  const emails = job.emails ?? [];
  const domains = job.domains ?? [];
  const base: Record<string, unknown> = { objectId: object._id, removedAt: null };
  if (emails.length > 0 || domains.length > 0) {
    const or: Array<Record<string, unknown>> = [
      { 'reasons.matched': { $in: [...emails, ...domains] } },
      { 'reasons.address': { $in: emails } },
    ];
    for (const email of emails) {
      const parts = splitAddress(email);
      if (parts) or.push({ 'reasons.address': { $regex: `^${escapeRegex(parts.local)}\\+[^@]*@${escapeRegex(parts.domain)}$` } });
    }
    // A domain blocked below the customer's own (neverLink eu.globex.com for globex.com) matched nothing above:
    // its links name globex.com. Look for the addresses at that domain or under it.
    for (const domain of domains) or.push({ 'reasons.address': { $regex: `@(?:[^@]+\\.)?${escapeRegex(domain)}$` } });
    base.$or = or;
  }
  const cache = newLinkCache();
  for (;;) {
    const filter = progress.cursor ? { ...base, _id: { $gt: progress.cursor } } : base;
    const batch = await Link.find(filter).sort({ _id: 1 }).limit(BATCH).lean();
    if (batch.length === 0) break;
    for (const link of batch) {
      progress.processed++;
      progress.cursor = link._id;
      const message = (await Message.findById(link.messageId, { text: 0, html: 0, attachments: 0 }).lean()) as unknown as LinkableMessage | null;
      const planned = message ? (await planForMessage(deps, message, cache, [object as never])).plan.links[0] : undefined;
      if (message && planned) {
        await Link.updateOne({ _id: link._id, removedAt: null }, { $set: { reasons: planned.reasons, address: planned.reasons[0].address, rule: planned.reasons[0].rule } });
        continue;
      }
      await Link.deleteOne({ _id: link._id, removedAt: null });
      await Message.updateOne({ _id: link.messageId }, { $pull: { linkedObjectIds: object._id } });
      progress.removed++;
    }
    await saveProgress(deps.store, job._id, progress);
  }
}

/**
 * Claim the oldest runnable job (pending, or running with an expired lock).
 * The job's lease (sync/lease.ts claimUnderLease) decides between workers of
 * several processes: on FerretDB a findAndModify alone let two of them run
 * the same job.
 */
async function claimJob(store: Store, holder: string): Promise<JobRow | null> {
  const { BackfillJob } = store.models;
  const now = new Date();
  const runnable = { status: { $in: ['pending' as const, 'running' as const] }, lockedUntil: { $lte: now } };
  const candidate = await BackfillJob.findOne(runnable, { _id: 1 }).sort({ createdAt: 1 }).lean();
  if (!candidate) return null;
  return (await claimUnderLease(store, `crm-job:${candidate._id.toHexString()}`, holder, LEASE_MS, () =>
    BackfillJob.findOneAndUpdate(
      { _id: candidate._id, ...runnable },
      { $set: { status: 'running', lockedUntil: new Date(now.getTime() + LEASE_MS) } },
      { returnDocument: 'after' },
    ).lean(), now)) as JobRow | null;
}

/** Run one job to the end, recording progress, completion or the error. */
export async function runJob(deps: CrmDeps, job: JobRow): Promise<void> {
  const { BackfillJob } = deps.store.models;
  const log = deps.log.child({ component: 'crm-jobs', jobId: job._id, kind: job.kind });
  const progress: Progress = { processed: job.processed ?? 0, linked: job.linked ?? 0, removed: job.removed ?? 0, cursor: job.cursor ?? null };
  await BackfillJob.updateOne({ _id: job._id, startedAt: null }, { $set: { startedAt: new Date() } });
  try {
    if (job.kind === 'prune') await runPrune(deps, job, progress);
    else await runBackfill(deps, job, progress);
    await BackfillJob.updateOne({ _id: job._id }, { $set: { ...progress, status: 'done', finishedAt: new Date(), lockedUntil: new Date(0) } });
    log.info({ ...progress, cursor: undefined }, 'CRM job done');
  } catch (err) {
    // A store hiccup should not end a job for good: retry from the cursor a minute later, a few times.
    const attempts = (job.attempts ?? 0) + 1;
    const giveUp = attempts >= MAX_JOB_ATTEMPTS;
    await BackfillJob.updateOne({ _id: job._id }, {
      $set: {
        ...progress, attempts, error: (err as Error).message.slice(0, 500),
        ...(giveUp ? { status: 'failed', finishedAt: new Date(), lockedUntil: new Date(0) } : { status: 'pending', lockedUntil: new Date(Date.now() + RETRY_AFTER_MS) }),
      },
    });
    log.error({ err, attempts }, giveUp ? 'CRM job failed; giving up' : 'CRM job failed; will retry');
  }
}

/** Run runnable jobs until none is left (or `max` ran). Returns how many ran. */
export async function runPendingJobs(deps: CrmDeps, max = 100): Promise<number> {
  const holder = newHolderId();
  let ran = 0;
  while (ran < max) {
    const job = await claimJob(deps.store, holder);
    if (!job) break;
    await runJob(deps, job);
    ran++;
  }
  return ran;
}

/**
 * Recover from crashes between steps: inbox messages whose association
 * never ran (stored, then the process died; or released from quarantine by
 * code that did not link), and links whose webhook events were not queued.
 */
export async function sweep(deps: CrmDeps, options: { olderThanMs?: number; limit?: number } = {}): Promise<{ messages: number; events: number }> {
  const { Message, Link } = deps.store.models;
  const cutoff = new Date(Date.now() - (options.olderThanMs ?? 60_000));
  const limit = options.limit ?? 500;
  const cache = newLinkCache();
  const unlinked = (await Message.find({ status: 'inbox', linkedAt: null, createdAt: { $lt: cutoff } }, { text: 0, html: 0, attachments: 0 })
    .limit(limit)
    .lean()) as unknown as LinkableMessage[];
  for (const message of unlinked) {
    // One message that cannot be linked must not stop the others; it is retried next pass.
    await linkMessage(deps, message, cache).catch((err: Error) => deps.log.error({ err, component: 'crm-sweep', messageId: message._id }, 'association failed; will retry'));
  }

  const stale = await Link.find({ eventQueuedAt: null, removedAt: null, createdAt: { $lt: cutoff } }, { messageId: 1 }).limit(limit).lean();
  const messageIds = [...new Set(stale.map((l) => l.messageId.toString()))].map((id) => new mongoose.Types.ObjectId(id));
  let events = 0;
  for (const messageId of messageIds) {
    const message = (await Message.findById(messageId, { text: 0, html: 0, attachments: 0 }).lean()) as unknown as LinkableMessage | null;
    if (message) events += await queueLinkEvents(deps, message, []);
    else await Link.updateMany({ messageId, eventQueuedAt: null }, { $set: { eventQueuedAt: new Date() } });
  }
  return { messages: unlinked.length, events };
}

export interface PublicJob {
  id: string;
  kind: JobKind;
  objectId: string | null;
  status: string;
  total: number;
  processed: number;
  linked: number;
  removed: number;
  error: string;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export function toPublicJob(row: JobRow & { status?: string | null; error?: string | null; createdAt: Date; startedAt?: Date | null; finishedAt?: Date | null }): PublicJob {
  return {
    id: row._id.toString(),
    kind: row.kind,
    objectId: row.objectId ? row.objectId.toString() : null,
    status: row.status ?? 'pending',
    total: row.total ?? 0,
    processed: row.processed ?? 0,
    linked: row.linked ?? 0,
    removed: row.removed ?? 0,
    error: row.error ?? '',
    createdAt: row.createdAt,
    startedAt: row.startedAt ?? null,
    finishedAt: row.finishedAt ?? null,
  };
}

/** Jobs of one object (newest first) or the latest jobs overall, for the console. */
export async function listJobs(store: Store, options: { objectId?: ObjectId; limit?: number } = {}): Promise<PublicJob[]> {
  const filter = options.objectId ? { objectId: options.objectId } : {};
  const rows = await store.models.BackfillJob.find(filter).sort({ createdAt: -1 }).limit(options.limit ?? 20).lean();
  return rows.map((row) => toPublicJob(row as never));
}
