import mongoose from 'mongoose';
import { AppError, isDuplicateKeyError, notFound } from '../core/errors';
import { randomToken, SecretBoxError, type SecretBox } from '../core/crypto';
import type { Logger } from '../core/log';
import type { Store } from '../store';
import { recordAudit, SYSTEM_ACTOR, type Actor } from '../accounts/audit';
import { parseObjectId } from '../accounts/ids';
import type { LookupAll } from '../core/checked-host';
import { checkWebhookTarget, parseWebhookUrl } from './webhook-target';

type ObjectId = mongoose.Types.ObjectId;

/**
 * Webhook registrations and their outbox. Events are written to the
 * `webhook_deliveries` collection first (one row per webhook and event,
 * unique), and only the dispatcher (webhook-dispatch.ts) sends them, so a
 * crash never loses an event and a retry never duplicates a row.
 */

export const DEFAULT_DELIVERY_WINDOW_MS = 24 * 3600 * 1000;

export interface WebhookDeps {
  store: Store;
  log: Logger;
  /** SecretBox for purpose 'webhooks' (signing secrets are sealed at rest). */
  secretBox: SecretBox;
  /** Host resolution, injectable for tests; defaults to the system resolver. */
  lookup?: LookupAll;
}

export interface PublicWebhook {
  id: string;
  url: string;
  description: string;
  enabled: boolean;
  allowPrivate: boolean;
  events: string[];
  secretPrefix: string;
  lastDeliveryAt: Date | null;
  lastStatus: string;
  createdAt: Date | null;
}

type WebhookRow = {
  _id: ObjectId; url: string; urlEnc?: string | null; description?: string | null; enabled?: boolean | null; allowPrivate?: boolean | null; events?: string[] | null;
  secretPrefix?: string | null; lastDeliveryAt?: Date | null; lastStatus?: string | null; createdAt?: Date | null;
};

export function toPublicWebhook(row: WebhookRow): PublicWebhook {
  return {
    id: row._id.toString(),
    url: shownUrlOf(row),
    description: row.description ?? '',
    enabled: row.enabled !== false,
    allowPrivate: Boolean(row.allowPrivate),
    events: [...(row.events ?? [])],
    secretPrefix: row.secretPrefix ?? '',
    lastDeliveryAt: row.lastDeliveryAt ?? null,
    lastStatus: row.lastStatus ?? '',
    createdAt: row.createdAt ?? null,
  };
}

export const secretContext = (webhookId: ObjectId | string) => `webhook:${webhookId.toString()}`;
export const urlContext = (webhookId: ObjectId | string) => `webhook-url:${webhookId.toString()}`;

/**
 * A webhook URL as lists and the audit log show it: the site and a first path segment that is a word
 * ("services", "hooks"), "…" for the rest, which for many receivers (Slack, Teams, Zapier, Make) is the
 * credential: https://hooks.slack.com/services/…, https://hook.eu1.make.com/….
 */
export function shownWebhookUrl(url: string): string {
  const parsed = new URL(url);
  const segments = parsed.pathname.split('/').filter(Boolean);
  const first = segments[0] !== undefined && /^[a-z_-]{1,12}$/i.test(segments[0]) ? segments[0] : '';
  const cut = segments.length > (first ? 1 : 0) || parsed.search !== '';
  return `${parsed.origin}/${first}${cut ? (first ? '/…' : '…') : ''}`;
}

/** What lists show of a row's URL: `url` itself once sealed; a row from an earlier release holds the whole URL there. */
const shownUrlOf = (row: Pick<WebhookRow, 'url' | 'urlEnc'>) => (row.urlEnc ? row.url : shownWebhookUrl(row.url));

/** The whole URL a webhook delivers to (sealed at rest; a row from an earlier release still has it in `url`). */
export function webhookTargetUrl(row: Pick<WebhookRow, '_id' | 'url' | 'urlEnc'>, secretBox: SecretBox): string {
  return row.urlEnc ? secretBox.open(row.urlEnc, urlContext(row._id)) : row.url;
}

/** The whole URL for a change that keeps it; one sealed with a lost SECRET_KEY must be entered again. */
function currentUrl(deps: Pick<WebhookDeps, 'secretBox'>, row: Pick<WebhookRow, '_id' | 'url' | 'urlEnc'>): string {
  try {
    return webhookTargetUrl(row, deps.secretBox);
  } catch (err) {
    if (!(err instanceof SecretBoxError)) throw err;
    const message = 'cannot be read with this SECRET_KEY (it was sealed with a key since lost): enter the URL again';
    throw new AppError('VALIDATION_FAILED', `url ${message}`, { status: 400, fields: { url: message } });
  }
}

function sealedUrl(secretBox: SecretBox, webhookId: ObjectId, url: string): { url: string; urlEnc: string } {
  return { url: shownWebhookUrl(url), urlEnc: secretBox.seal(url, urlContext(webhookId)) };
}

/**
 * Seal the URLs of webhooks an earlier release stored in clear (at the admin's start; a handful of rows).
 * Idempotent: a row written in between is sealed already and left alone.
 */
export async function sealWebhookUrls(store: Store, secretBox: SecretBox, log: Logger): Promise<number> {
  const rows = await store.models.Webhook.find({}, { url: 1, urlEnc: 1 }).lean();
  let sealed = 0;
  for (const row of rows) {
    if (row.urlEnc) continue;
    // Matched by the clear URL: a row sealed meanwhile shows another `url` and is left alone.
    const written = await store.models.Webhook.updateOne({ _id: row._id, url: row.url }, { $set: sealedUrl(secretBox, row._id, row.url) });
    sealed += written.modifiedCount;
  }
  if (sealed > 0) log.info({ sealed }, 'webhook URLs stored in clear by an earlier release are now sealed');
  return sealed;
}

function newSecret(): string {
  return `whsec_${randomToken(24)}`;
}

export interface WebhookInput {
  url?: string;
  description?: string;
  enabled?: boolean;
  /** Only an admin may set this; the console shows it as a separate, explicit checkbox. */
  allowPrivate?: boolean;
}

async function validatedUrl(deps: WebhookDeps, url: string, allowPrivate: boolean): Promise<string> {
  const parsed = parseWebhookUrl(url);
  await checkWebhookTarget(parsed, { allowPrivate, lookup: deps.lookup });
  return parsed.toString();
}

const MAX_DESCRIPTION = 500;

/** The description as saved; too long is refused on create and edit alike (an edit used to cut it silently). */
function checkedDescription(input: string): string {
  const description = input.trim();
  if (description.length > MAX_DESCRIPTION) {
    throw new AppError('VALIDATION_FAILED', `description must be at most ${MAX_DESCRIPTION} characters`, { status: 400, fields: { description: `must be at most ${MAX_DESCRIPTION} characters` } });
  }
  return description;
}

/** How long the same Add form sent again (a double click) is answered with the webhook its first press made. */
const SAME_FORM_MS = 10 * 60_000;

/**
 * Register a webhook; the signing secret is returned once here and never again (rotate to get a new one).
 * With `id` (the console's Add form carries one), the same form sent twice (a double click) registers one
 * webhook, so each event is not sent twice (once signed with a secret nobody saw): the second press, by the
 * same admin with the same URL, is answered with the first's webhook and secret, which the browser then shows.
 */
export async function createWebhook(deps: WebhookDeps, input: WebhookInput, actor: Actor = SYSTEM_ACTOR, options: { id?: ObjectId } = {}): Promise<{ webhook: PublicWebhook; secret: string }> {
  const allowPrivate = input.allowPrivate === true;
  const url = await validatedUrl(deps, input.url ?? '', allowPrivate);
  const description = checkedDescription(input.description ?? '');
  const _id = options.id ?? new mongoose.Types.ObjectId();
  const secret = newSecret();
  let row;
  try {
    row = await deps.store.models.Webhook.create({
      _id,
      ...sealedUrl(deps.secretBox, _id, url),
      description,
      enabled: input.enabled !== false,
      allowPrivate,
      secretEnc: deps.secretBox.seal(secret, secretContext(_id)),
      secretPrefix: secret.slice(0, 10),
      createdBy: actor.id ?? null,
    });
  } catch (err) {
    if (!options.id || !isDuplicateKeyError(err)) throw err;
    const first = await deps.store.models.Webhook.findById(_id).lean();
    const sameForm = first && webhookTargetUrl(first as WebhookRow, deps.secretBox) === url && Boolean(actor.id && first.createdBy?.equals(actor.id)) && Date.now() - new Date(first.createdAt).getTime() < SAME_FORM_MS;
    if (!sameForm) throw new AppError('CONFLICT', 'this form was already used to add a webhook; open Webhooks again to add another', { status: 409 });
    return { webhook: toPublicWebhook(first as unknown as WebhookRow), secret: deps.secretBox.open(first.secretEnc, secretContext(_id)) };
  }
  await recordAudit(deps.store, actor, { action: 'webhook.create', targetType: 'webhook', targetId: _id.toString(), details: { url: shownWebhookUrl(url), allowPrivate } });
  return { webhook: toPublicWebhook(row.toObject() as WebhookRow), secret };
}

async function findWebhook(deps: WebhookDeps, id: string | ObjectId) {
  const _id = typeof id === 'string' ? parseObjectId(id) : id;
  const row = _id ? await deps.store.models.Webhook.findById(_id) : null;
  if (!row) throw notFound('webhook');
  return row;
}

export async function updateWebhook(deps: WebhookDeps, id: string | ObjectId, input: WebhookInput, actor: Actor = SYSTEM_ACTOR): Promise<PublicWebhook> {
  const row = await findWebhook(deps, id);
  const allowPrivate = input.allowPrivate ?? Boolean(row.allowPrivate);
  if (input.url !== undefined || input.allowPrivate !== undefined) {
    row.set(sealedUrl(deps.secretBox, row._id, await validatedUrl(deps, input.url ?? currentUrl(deps, row), allowPrivate)));
  }
  row.allowPrivate = allowPrivate;
  if (input.description !== undefined) row.description = checkedDescription(input.description);
  if (input.enabled !== undefined) row.enabled = input.enabled;
  await row.save();
  await recordAudit(deps.store, actor, { action: 'webhook.update', targetType: 'webhook', targetId: row._id.toString(), details: { url: shownUrlOf(row), allowPrivate, enabled: row.enabled } });
  return toPublicWebhook(row.toObject() as WebhookRow);
}

export async function rotateWebhookSecret(deps: WebhookDeps, id: string | ObjectId, actor: Actor = SYSTEM_ACTOR): Promise<{ webhook: PublicWebhook; secret: string }> {
  const row = await findWebhook(deps, id);
  const secret = newSecret();
  row.secretEnc = deps.secretBox.seal(secret, secretContext(row._id));
  row.secretPrefix = secret.slice(0, 10);
  await row.save();
  await recordAudit(deps.store, actor, { action: 'webhook.rotate-secret', targetType: 'webhook', targetId: row._id.toString(), details: { secretChanged: true } });
  return { webhook: toPublicWebhook(row.toObject() as WebhookRow), secret };
}

export async function deleteWebhook(deps: WebhookDeps, id: string | ObjectId, actor: Actor = SYSTEM_ACTOR): Promise<void> {
  const row = await findWebhook(deps, id);
  await deps.store.models.WebhookDelivery.deleteMany({ webhookId: row._id });
  await deps.store.models.Webhook.deleteOne({ _id: row._id });
  await recordAudit(deps.store, actor, { action: 'webhook.delete', targetType: 'webhook', targetId: row._id.toString(), details: { url: shownUrlOf(row) } });
}

export async function listWebhooks(store: Store): Promise<PublicWebhook[]> {
  const rows = await store.models.Webhook.find({}).sort({ _id: 1 }).lean();
  return rows.map((row) => toPublicWebhook(row as WebhookRow));
}

/**
 * One webhook for its page, with the whole URL (`targetUrl`) for the admin editing it; empty, with
 * `urlUnreadable`, when the SECRET_KEY that sealed it was lost (adopt-secret-key): it is entered again.
 */
export async function getWebhook(deps: Pick<WebhookDeps, 'store' | 'secretBox'>, id: string): Promise<PublicWebhook & { targetUrl: string; urlUnreadable: boolean }> {
  const _id = parseObjectId(id);
  const row = _id ? await deps.store.models.Webhook.findById(_id).lean() : null;
  if (!row) throw notFound('webhook');
  try {
    return { ...toPublicWebhook(row as WebhookRow), targetUrl: webhookTargetUrl(row as WebhookRow, deps.secretBox), urlUnreadable: false };
  } catch (err) {
    if (!(err instanceof SecretBoxError)) throw err;
    return { ...toPublicWebhook(row as WebhookRow), targetUrl: '', urlUnreadable: true };
  }
}

export interface WebhookEvent {
  id: string;
  type: string;
  createdAt: string;
  data: Record<string, unknown>;
}

export interface EnqueueOptions {
  now?: Date;
  windowMs?: number;
}

/**
 * Write one outbox row per enabled webhook subscribed to the event type.
 * Idempotent: the (webhook, event id) pair is unique, so calling it again
 * after a crash adds nothing twice.
 */
export async function enqueueEvents(store: Store, events: WebhookEvent[], options: EnqueueOptions = {}): Promise<number> {
  if (events.length === 0) return 0;
  const hooks = await store.models.Webhook.find({ enabled: true }).lean();
  const now = options.now ?? new Date();
  const expiresAt = new Date(now.getTime() + (options.windowMs ?? DEFAULT_DELIVERY_WINDOW_MS));
  const ops = [];
  for (const hook of hooks) {
    for (const event of events) {
      if (!(hook.events ?? []).includes(event.type) && event.type !== 'ping') continue;
      ops.push({
        updateOne: {
          filter: { webhookId: hook._id, eventId: event.id },
          update: {
            $setOnInsert: {
              webhookId: hook._id,
              eventId: event.id,
              eventType: event.type,
              payload: JSON.stringify(event),
              status: 'pending',
              attempts: 0,
              nextAttemptAt: now,
              expiresAt,
              lockedUntil: new Date(0),
              log: [],
              createdAt: now,
            },
          },
          upsert: true,
        },
      });
    }
  }
  if (ops.length === 0) return 0;
  const result = await store.models.WebhookDelivery.bulkWrite(ops, { ordered: false });
  return result.upsertedCount;
}

/** Queue a `ping` event to one webhook (the console's "send test event"). */
export async function sendTestEvent(deps: WebhookDeps, id: string, actor: Actor = SYSTEM_ACTOR): Promise<string> {
  const row = await findWebhook(deps, id);
  const eventId = `ping_${new mongoose.Types.ObjectId().toString()}`;
  const now = new Date();
  const event: WebhookEvent = { id: eventId, type: 'ping', createdAt: now.toISOString(), data: { webhookId: row._id.toString() } };
  await deps.store.models.WebhookDelivery.create({
    webhookId: row._id, eventId, eventType: 'ping', payload: JSON.stringify(event), status: 'pending', attempts: 0,
    nextAttemptAt: now, expiresAt: new Date(now.getTime() + DEFAULT_DELIVERY_WINDOW_MS), createdAt: now,
  });
  await recordAudit(deps.store, actor, { action: 'webhook.ping', targetType: 'webhook', targetId: row._id.toString() });
  return eventId;
}

export interface PublicDelivery {
  id: string;
  webhookId: string;
  eventId: string;
  eventType: string;
  status: string;
  attempts: number;
  nextAttemptAt: Date;
  expiresAt: Date;
  lastAttemptAt: Date | null;
  lastStatusCode: number;
  lastError: string;
  deliveredAt: Date | null;
  createdAt: Date;
  log: Array<{ at: Date; statusCode: number; error: string; durationMs: number }>;
}

type DeliveryRow = {
  _id: ObjectId; webhookId: ObjectId; eventId: string; eventType: string; status?: string | null; attempts?: number | null; nextAttemptAt: Date;
  expiresAt: Date; lastAttemptAt?: Date | null; lastStatusCode?: number | null; lastError?: string | null; deliveredAt?: Date | null; createdAt: Date;
  log?: Array<{ at: Date; statusCode?: number | null; error?: string | null; durationMs?: number | null }> | null;
};

export function toPublicDelivery(row: DeliveryRow): PublicDelivery {
  return {
    id: row._id.toString(),
    webhookId: row.webhookId.toString(),
    eventId: row.eventId,
    eventType: row.eventType,
    status: row.status ?? 'pending',
    attempts: row.attempts ?? 0,
    nextAttemptAt: row.nextAttemptAt,
    expiresAt: row.expiresAt,
    lastAttemptAt: row.lastAttemptAt ?? null,
    lastStatusCode: row.lastStatusCode ?? 0,
    lastError: row.lastError ?? '',
    deliveredAt: row.deliveredAt ?? null,
    createdAt: row.createdAt,
    log: (row.log ?? []).map((entry) => ({ at: entry.at, statusCode: entry.statusCode ?? 0, error: entry.error ?? '', durationMs: entry.durationMs ?? 0 })),
  };
}

/** Delivery log of one webhook, newest first (index webhookId+createdAt). */
export async function listDeliveries(store: Store, webhookId: string, options: { limit?: number; skip?: number } = {}): Promise<PublicDelivery[]> {
  const _id = parseObjectId(webhookId);
  if (!_id) throw notFound('webhook');
  const rows = await store.models.WebhookDelivery.find({ webhookId: _id })
    .sort({ createdAt: -1 })
    .skip(Math.max(0, options.skip ?? 0))
    .limit(Math.min(options.limit ?? 50, 200))
    .lean();
  return rows.map((row) => toPublicDelivery(row as DeliveryRow));
}

/** Send a delivery again now (whatever its state), with a fresh 24 h retry window. */
export async function resendDelivery(
  store: Store,
  deliveryId: string,
  actor: Actor = SYSTEM_ACTOR,
  options: EnqueueOptions & { webhookId?: string } = {},
): Promise<PublicDelivery> {
  const _id = parseObjectId(deliveryId);
  const webhookId = options.webhookId === undefined ? undefined : parseObjectId(options.webhookId);
  const now = options.now ?? new Date();
  const row = _id && webhookId !== null
    ? await store.models.WebhookDelivery.findOneAndUpdate(
        webhookId ? { _id, webhookId } : { _id },
        {
          $set: {
            status: 'pending',
            nextAttemptAt: now,
            expiresAt: new Date(now.getTime() + (options.windowMs ?? DEFAULT_DELIVERY_WINDOW_MS)),
            lockedUntil: new Date(0),
            deliveredAt: null,
          },
        },
        { returnDocument: 'after' },
      ).lean()
    : null;
  if (!row) throw notFound('delivery');
  await recordAudit(store, actor, { action: 'webhook.resend', targetType: 'webhook', targetId: row.webhookId.toString(), details: { eventId: row.eventId } });
  return toPublicDelivery(row as DeliveryRow);
}
