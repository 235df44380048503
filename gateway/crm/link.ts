import mongoose from 'mongoose';
import { AppError, notFound, isDuplicateKeyError } from '../core/errors';
import type { Logger } from '../core/log';
import type { Associator, PlannedAssociation } from '../mail/ingest';
import type { MessageDoc } from '../models/message';
import type { Store } from '../store';
import { groupInsert } from '../store/group-insert';
import { normalizeAddress } from './address';
import { candidateObjectsById, findCandidateObjects, type CandidateObject } from './candidates';
import { detectBulk } from './bulk';
import { messageParticipants, matchKeys, planAssociation, type AssociationContext, type LinkReason, type MatchableObject, type PlannedLink } from './rules';
import { loadCrmSettings, type CrmSettings, type CrmSettingsInput } from './settings';
import { enqueueEvents, type WebhookEvent } from './webhooks';

type ObjectId = mongoose.Types.ObjectId;

/**
 * The impure side of association: load what the rules need, write Link
 * documents (unique per message+object, idempotent upserts), keep
 * Message.linkedObjectIds in step, and queue link.created webhook events.
 *
 * Called by the ingest pipeline after an inbox message is acknowledged, by
 * quarantine release, by backfill jobs and by the worker's sweep of inbox
 * messages whose association never ran (a crash right after storing).
 */

export interface CrmDeps {
  store: Store;
  log: Logger;
  /** Defaults for unsaved business settings (e.g. {businessDomains: config.businessDomains}). */
  settings?: CrmSettingsInput;
  /** Told when webhook events were queued (the dispatcher's kick) so they leave at once. */
  onEventsQueued?: () => void;
}

/** What linkMessage reads from a message (a lean MessageDoc, or what ingest just wrote). */
export type LinkableMessage = Partial<MessageDoc> & {
  _id: ObjectId;
  ownerId: ObjectId;
  receivedAt: Date;
};

/** Per-run caches so a backfill over thousands of messages loads settings and owners once. */
export interface LinkContextCache {
  settings?: CrmSettings;
  ownAddresses: Map<string, string[]>;
  /** Whether an enabled webhook subscribes to link.created (ingest's associator). */
  linkEventsWanted?: boolean;
}

export function newLinkCache(settings?: CrmSettings): LinkContextCache {
  return { settings, ownAddresses: new Map() };
}

export interface LinkResult {
  /** Links the message has to objects after this call (kept or made). */
  links: number;
  /** Of those, how many are new. */
  created: number;
  /** The objects the message is linked to after this call (kept or made), as hex ids. */
  objectIds: string[];
  internal: boolean;
  bulk: boolean;
}

/** The owner's own addresses: their user email, their mailboxes and those mailboxes' forwarding addresses. */
async function ownAddressesOf(store: Store, ownerId: ObjectId, cache: LinkContextCache): Promise<string[]> {
  const key = ownerId.toString();
  const cached = cache.ownAddresses.get(key);
  if (cached) return cached;
  const [user, accounts] = await Promise.all([
    store.models.User.findById(ownerId, { email: 1 }).lean(),
    store.models.MailAccount.find({ ownerId }, { email: 1, forwardingAddress: 1 }).lean(),
  ]);
  const addresses = [user?.email, ...accounts.flatMap((a) => [a.email, a.forwardingAddress])].filter((a): a is string => Boolean(a));
  cache.ownAddresses.set(key, addresses);
  return addresses;
}

export function toMatchable(row: CandidateObject): MatchableObject {
  return {
    id: row._id.toString(),
    type: row.type as MatchableObject['type'],
    emails: row.emails ?? [],
    domains: row.domains ?? [],
    rules: { linkBulk: Boolean(row.rules?.linkBulk), neverLink: row.rules?.neverLink ?? [] },
  };
}

async function associationContext(deps: CrmDeps, message: LinkableMessage, cache: LinkContextCache): Promise<AssociationContext> {
  cache.settings ??= await loadCrmSettings(deps.store, deps.settings);
  const settings = cache.settings;
  return {
    ownAddresses: await ownAddressesOf(deps.store, message.ownerId, cache),
    businessDomains: settings.businessDomains,
    isFreemail: settings.isFreemail,
    stripSubaddress: settings.stripSubaddress,
    bulk: Boolean(message.bulk) || detectBulk(message.headers ?? []).bulk,
  };
}

/**
 * Plan the links of one message. `restrictTo` limits matching to the given
 * objects (prune re-checks one object); otherwise candidate objects are
 * loaded through the emails/domains indexes (gateway/crm/candidates.ts).
 */
export async function planForMessage(deps: CrmDeps, message: LinkableMessage, cache: LinkContextCache, restrictTo?: CandidateObject[]) {
  const context = await associationContext(deps, message, cache);
  const participants = messageParticipants(message);
  const keys = matchKeys(participants, context);
  let objects: CandidateObject[] = [];
  if (restrictTo) {
    objects = restrictTo;
  } else if (!keys.internal) {
    objects = await findCandidateObjects(deps.store, keys);
  }
  const plan = planAssociation(participants, objects.map(toMatchable), context);
  return { plan, objects };
}


/**
 * Write one planned link. Returns 'created', 'updated' or 'suppressed'
 * (the user unlinked this pair: a tombstone with removedAt holds the
 * unique key, so the upsert's insert fails and nothing is revived).
 */
async function upsertLink(store: Store, message: LinkableMessage, planned: PlannedLink, now: Date): Promise<'created' | 'updated' | 'suppressed'> {
  const objectId = new mongoose.Types.ObjectId(planned.objectId);
  const primary = planned.reasons[0];
  const filter = { messageId: message._id, objectId, removedAt: null };
  const set = { reasons: planned.reasons, address: primary.address, rule: primary.rule };
  try {
    const result = await store.models.Link.updateOne(
      filter,
      { $set: set, $setOnInsert: { ownerId: message.ownerId, receivedAt: message.receivedAt, createdAt: now, eventQueuedAt: null, removedBy: null } },
      { upsert: true },
    );
    return result.upsertedCount > 0 ? 'created' : 'updated';
  } catch (err) {
    if (!isDuplicateKeyError(err)) throw err;
    // Either a tombstone holds the key, or a concurrent call inserted it first.
    const retry = await store.models.Link.updateOne(filter, { $set: set });
    return retry.matchedCount > 0 ? 'updated' : 'suppressed';
  }
}

/** The link.created event body (also documented for receivers in gateway/crm/WEBHOOKS.md). */
export function linkEvent(
  link: { _id: ObjectId; objectId: ObjectId; rule: string; address: string; reasons?: LinkReason[] | null; createdAt: Date },
  object: { _id: ObjectId; type: string; name: string; externalId: string } | undefined,
  message: LinkableMessage,
): WebhookEvent {
  const summary = (entry?: { address?: string | null; name?: string | null } | null) => (entry?.address ? { address: entry.address, name: entry.name ?? '' } : null);
  return {
    id: `link_${link._id.toString()}`,
    type: 'link.created',
    createdAt: link.createdAt.toISOString(),
    data: {
      link: {
        id: link._id.toString(),
        rule: link.rule,
        address: link.address,
        reasons: (link.reasons ?? []).map((r) => ({ address: r.address, rule: r.rule, role: r.role, matched: r.matched })),
      },
      object: object
        ? { id: object._id.toString(), type: object.type, name: object.name, externalId: object.externalId }
        : { id: link.objectId.toString() },
      message: {
        id: message._id.toString(),
        messageId: message.messageId ?? '',
        subject: message.subject ?? '',
        from: summary(message.from),
        to: (message.to ?? []).map(summary).filter(Boolean),
        cc: (message.cc ?? []).map(summary).filter(Boolean),
        date: message.date ? new Date(message.date).toISOString() : null,
        receivedAt: new Date(message.receivedAt).toISOString(),
        ownerId: message.ownerId.toString(),
        accountId: message.accountId ? message.accountId.toString() : null,
        bulk: Boolean(message.bulk),
      },
    },
  };
}

/**
 * Queue link.created events for this message's links that have none yet,
 * then mark them. A crash between the two re-queues on the next call (or
 * the worker's sweep); the outbox's unique key makes that harmless.
 */
export async function queueLinkEvents(deps: CrmDeps, message: LinkableMessage, objects: CandidateObject[]): Promise<number> {
  const { Link, CrmObject } = deps.store.models;
  const pending = await Link.find({ messageId: message._id, removedAt: null, eventQueuedAt: null }).lean();
  if (pending.length === 0) return 0;
  const byId = new Map(objects.map((o) => [o._id.toString(), o]));
  const missing = pending.filter((l) => !byId.has(l.objectId.toString())).map((l) => l.objectId);
  if (missing.length > 0) {
    for (const row of (await CrmObject.find({ _id: { $in: missing } }, { type: 1, name: 1, externalId: 1 }).lean()) as CandidateObject[]) byId.set(row._id.toString(), row);
  }
  const events = pending.map((link) => linkEvent(link as Parameters<typeof linkEvent>[0], byId.get(link.objectId.toString()), message));
  const queued = await enqueueEvents(deps.store, events);
  await Link.updateMany({ _id: { $in: pending.map((l) => l._id) }, eventQueuedAt: null }, { $set: { eventQueuedAt: new Date() } });
  if (queued > 0) deps.onEventsQueued?.();
  return queued;
}

/**
 * Link one stored message to the CRM objects it concerns. Only inbox mail
 * is linked (quarantined mail waits for release). Idempotent: calling it
 * again updates reasons and adds what is new; it never removes links and
 * never revives a pair a user unlinked.
 */
export async function linkMessage(deps: CrmDeps, message: LinkableMessage, cache: LinkContextCache = newLinkCache()): Promise<LinkResult> {
  const status = message.status ?? 'inbox';
  if (status !== 'inbox') return { links: 0, created: 0, objectIds: [], internal: false, bulk: Boolean(message.bulk) };
  const { plan, objects } = await planForMessage(deps, message, cache);
  const now = new Date();
  let created = 0;
  const active: ObjectId[] = [];
  for (const planned of plan.links) {
    const outcome = await upsertLink(deps.store, message, planned, now);
    if (outcome === 'suppressed') continue;
    if (outcome === 'created') created++;
    active.push(new mongoose.Types.ObjectId(planned.objectId));
  }
  await markLinked(deps.store, message, active, created, now);
  if (active.length > 0) await queueLinkEvents(deps, message, objects);
  logAssociation(deps, message, active.length, created, plan.skipped);
  return { links: active.length, created, objectIds: active.map(String), internal: plan.internal, bulk: plan.bulk };
}

/**
 * The crash marker last: a message whose association was cut short keeps
 * linkedAt null and the worker's sweep links it again. A message already
 * marked, listing every active link and gaining none is not written again: a relink job
 * (after each CSV import) passes over all stored mail, and most of it
 * gains nothing.
 */
async function markLinked(store: Store, message: LinkableMessage, active: ObjectId[], created: number, now: Date): Promise<void> {
  const listed = new Set((message.linkedObjectIds ?? []).map((id) => id.toString()));
  if (created === 0 && message.linkedAt && active.every((id) => listed.has(id.toString()))) return;
  const update: Record<string, unknown> = { $set: { linkedAt: now } };
  if (active.length > 0) update.$addToSet = { linkedObjectIds: { $each: active } };
  await store.models.Message.updateOne({ _id: message._id }, update);
}

function logAssociation(deps: CrmDeps, message: LinkableMessage, links: number, created: number, skipped: unknown[]): void {
  if (links > 0 || skipped.length > 0) {
    deps.log.debug({ component: 'crm-link', messageId: message._id, links, created, skipped }, 'message associated');
  }
}

/** How long ingest's association reuses business settings and owners' addresses (a change takes effect within this). */
const INGEST_CACHE_MS = 5000;

/** An ingest association plan (gateway/mail/ingest.ts Associator) with what CRM needs to write it. */
interface CrmPlannedAssociation extends PlannedAssociation {
  links: PlannedLink[];
  objects: CandidateObject[];
  skipped: unknown[];
}

function linkDocument(message: LinkableMessage, planned: PlannedLink, now: Date, eventQueuedAt: Date | null) {
  const primary = planned.reasons[0];
  return {
    _id: new mongoose.Types.ObjectId(),
    messageId: message._id,
    objectId: new mongoose.Types.ObjectId(planned.objectId),
    ownerId: message.ownerId,
    receivedAt: message.receivedAt,
    reasons: planned.reasons,
    address: primary.address,
    rule: primary.rule,
    createdAt: now,
    removedAt: null,
    removedBy: null,
    eventQueuedAt,
  };
}

/**
 * Insert the links of a message (in one command shared with concurrent
 * messages' links: gateway/store/group-insert.ts). Pairs that exist already (a
 * repaired duplicate, or a pair the user unlinked: its tombstone holds the
 * unique key) are left as they are; the rest are returned as inserted.
 */
async function insertLinks(store: Store, docs: Array<ReturnType<typeof linkDocument>>): Promise<Array<ReturnType<typeof linkDocument>>> {
  const outcomes = await Promise.allSettled(docs.map((doc) => groupInsert(store.models.Link, doc)));
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected' && !isDuplicateKeyError(o.reason));
  if (failed) throw failed.reason;
  return docs.filter((_doc, index) => outcomes[index].status === 'fulfilled');
}

/**
 * Association for THE ingest pipeline (IngestDeps.associate). A message
 * being ingested is new: it has no links and nobody can have unlinked it,
 * so its links are planned before the message is written (the document
 * carries linkedObjectIds from its first write) and inserted with one
 * write after it, already marked as having no webhook event to queue
 * unless a webhook subscribes to link.created. No query reads existing
 * links: on a store without secondary indexes (FerretDB) each would read
 * the whole collection. Settings, owners' addresses and whether a webhook
 * wants link events are reused for a few seconds (INGEST_CACHE_MS): they
 * are the same for every message of a burst, so a webhook added or enabled
 * receives the events of mail stored from a few seconds later on.
 */
export function crmAssociator(deps: CrmDeps): Associator {
  let cache = newLinkCache();
  let loadedAt = Date.now();
  const freshCache = () => {
    if (Date.now() - loadedAt > INGEST_CACHE_MS) {
      cache = newLinkCache();
      loadedAt = Date.now();
    }
    return cache;
  };

  const write = async (message: LinkableMessage, links: PlannedLink[], objects: CandidateObject[]): Promise<number> => {
    if (links.length === 0) return 0;
    const now = new Date();
    const cached = freshCache();
    cached.linkEventsWanted ??= Boolean(await deps.store.models.Webhook.exists({ enabled: true, events: 'link.created' }));
    const subscribed = cached.linkEventsWanted;
    const inserted = await insertLinks(deps.store, links.map((planned) => linkDocument(message, planned, now, subscribed ? null : now)));
    if (subscribed && inserted.length > 0) {
      const byId = new Map(objects.map((o) => [o._id.toString(), o]));
      const queued = await enqueueEvents(deps.store, inserted.map((link) => linkEvent(link, byId.get(link.objectId.toString()), message)));
      // A crash before this mark re-queues from the sweep; the outbox's unique key makes that harmless.
      await deps.store.models.Link.updateMany({ _id: { $in: inserted.map((d) => d._id) }, eventQueuedAt: null }, { $set: { eventQueuedAt: new Date() } });
      if (queued > 0) deps.onEventsQueued?.();
    }
    return inserted.length;
  };

  return {
    async plan(raw) {
      const message = raw as unknown as LinkableMessage;
      const { plan, objects } = await planForMessage(deps, message, freshCache());
      const planned: CrmPlannedAssociation = {
        objectIds: plan.links.map((l) => new mongoose.Types.ObjectId(l.objectId)),
        links: plan.links,
        objects,
        skipped: plan.skipped,
      };
      return planned;
    },
    async commit(raw, planned) {
      const message = raw as unknown as LinkableMessage;
      const { links, objects, skipped } = planned as CrmPlannedAssociation;
      const created = await write(message, links, objects);
      logAssociation(deps, message, links.length, created, skipped);
    },
    async repair(raw) {
      // The links the stored document lists, re-planned with their reasons; existing pairs are kept as they are.
      const message = raw as unknown as LinkableMessage;
      const listed = (message.linkedObjectIds ?? []).map((id) => id.toString());
      if (listed.length === 0) return;
      const { plan, objects } = await planForMessage(deps, message, freshCache(), await candidateObjectsById(deps.store, listed));
      const created = await write(message, plan.links.filter((l) => listed.includes(l.objectId)), objects);
      if (created > 0) deps.log.info({ component: 'crm-link', messageId: message._id, created }, 'links of an interrupted ingest repaired');
    },
  };
}

/** An ingest caller's association: the one it was given, none for null (tests of a component alone), else crmAssociator. */
export function associatorOrDefault(given: Associator | null | undefined, deps: CrmDeps): Associator | undefined {
  return given === null ? undefined : (given ?? crmAssociator(deps));
}

export interface UnlinkOptions {
  /** Also add a "never link" rule to the object: true = the addresses this link was made through; or explicit addresses/domains. */
  neverLink?: boolean | string[];
  actorId?: ObjectId | null;
}

/**
 * A user removes a link. The link stays as a tombstone (removedAt) so
 * association never re-creates it; with `neverLink` the object also stops
 * matching those addresses (existing links through them are re-checked by a
 * prune job the caller receives).
 */
export async function unlinkMessage(
  deps: CrmDeps,
  input: { messageId: ObjectId; objectId: ObjectId },
  options: UnlinkOptions = {},
): Promise<{ neverLink: string[]; pruneJobId: ObjectId | null }> {
  const { Link, Message, CrmObject, BackfillJob } = deps.store.models;
  const link = await Link.findOneAndUpdate(
    { messageId: input.messageId, objectId: input.objectId },
    { $set: { removedAt: new Date(), removedBy: options.actorId ?? null } },
    { returnDocument: 'after' },
  ).lean();
  if (!link) throw notFound('link');
  await Message.updateOne({ _id: input.messageId }, { $pull: { linkedObjectIds: input.objectId } });

  let rules: string[] = [];
  if (options.neverLink === true) {
    const settings = await loadCrmSettings(deps.store, deps.settings);
    rules = (link.reasons ?? []).map((r) => normalizeAddress(r.address, { stripSubaddress: settings.stripSubaddress })).filter((a): a is string => Boolean(a));
    if (rules.length === 0 && link.address) rules = [link.address];
  } else if (Array.isArray(options.neverLink)) {
    rules = options.neverLink.map((entry) => entry.trim().toLowerCase()).filter(Boolean);
  }
  rules = [...new Set(rules)];
  let pruneJobId: ObjectId | null = null;
  if (rules.length > 0) {
    await CrmObject.updateOne({ _id: input.objectId }, { $addToSet: { 'rules.neverLink': { $each: rules } } });
    const job = await BackfillJob.create({
      kind: 'prune',
      objectId: input.objectId,
      emails: rules.filter((r) => r.includes('@')),
      domains: rules.filter((r) => !r.includes('@')),
      createdBy: options.actorId ?? null,
      createdAt: new Date(),
    });
    pruneJobId = job._id;
  }
  return { neverLink: rules, pruneJobId };
}

/**
 * Unlink on behalf of a console/API user: the message's owner or an admin
 * may unlink it; anyone else gets 404, as if the message did not exist.
 * The copies of the same mail in other mailboxes that the viewer may unlink
 * (an admin: all) are unlinked with it: the timeline shows them as one entry.
 */
export async function unlinkAsViewer(
  deps: CrmDeps,
  viewer: { id: ObjectId; role: string },
  input: { messageId: ObjectId; objectId: ObjectId },
  options: { neverLink?: boolean | string[] } = {},
): Promise<{ neverLink: string[]; pruneJobId: ObjectId | null }> {
  const { Message } = deps.store.models;
  const mayUnlink = (m: { ownerId: ObjectId }) => viewer.role === 'admin' || m.ownerId.equals(viewer.id);
  const message = await Message.findById(input.messageId, { ownerId: 1, messageId: 1, contentHash: 1 }).lean();
  if (!message || !mayUnlink(message)) throw notFound('link');
  const result = await unlinkMessage(deps, input, { ...options, actorId: viewer.id });
  const copies = await Message.find(
    { linkedObjectIds: input.objectId, messageId: message.messageId ?? '', contentHash: message.contentHash, _id: { $ne: message._id } },
    { ownerId: 1 },
  ).lean();
  for (const copy of copies.filter(mayUnlink)) {
    await unlinkMessage(deps, { messageId: copy._id, objectId: input.objectId }, { actorId: viewer.id }).catch((err: unknown) => {
      // Unlinked meanwhile: nothing left to do for that copy.
      if (!(err instanceof AppError && err.status === 404)) throw err;
    });
  }
  return result;
}

/** Load a stored message and link it (quarantine release, tools). */
export async function linkMessageById(deps: CrmDeps, messageId: ObjectId): Promise<LinkResult> {
  const message = (await deps.store.models.Message.findById(messageId, { text: 0, html: 0, attachments: 0 }).lean()) as unknown as LinkableMessage | null;
  if (!message) throw notFound('message');
  return linkMessage(deps, message);
}

/**
 * The console's quarantine-release hook (CreateAppOptions.afterRelease):
 * `afterRelease: crmAfterRelease(crmDeps)`. Should it never run, the CRM
 * worker's sweep links released mail within minutes anyway (linkedAt null).
 */
export function crmAfterRelease(deps: CrmDeps) {
  return async (messageId: ObjectId): Promise<void> => {
    await linkMessageById(deps, messageId);
  };
}
