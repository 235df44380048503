import type { Types } from 'mongoose';
import type { Store } from '../store';
import { parseObjectId } from './ids';

/** Who acts: a signed-in user, an API token's user, or the system (CLI, first start). */
export interface Actor {
  id?: Types.ObjectId | null;
  email?: string;
  ip?: string;
}

export const SYSTEM_ACTOR: Actor = { id: null, email: 'system' };

export interface AuditInput {
  action: string;
  targetType?: string;
  targetId?: string;
  /** Field names and non-secret values only; secret changes are recorded as `{passwordChanged: true}`. */
  details?: Record<string, unknown>;
}

/**
 * Append one audit event. Called after the change it records is stored, so
 * the log never claims a change that did not happen.
 */
export async function recordAudit(store: Store, actor: Actor, event: AuditInput, now: Date = new Date()): Promise<void> {
  await store.models.AuditEvent.create({
    at: now,
    actorId: actor.id ?? null,
    actorEmail: actor.email ?? '',
    action: event.action,
    targetType: event.targetType ?? '',
    targetId: event.targetId ?? '',
    details: event.details ?? {},
    ip: actor.ip ?? '',
  });
}

export interface AuditPage {
  events: Array<{ id: string; at: Date; actorEmail: string; action: string; targetType: string; targetId: string; details: Record<string, unknown>; ip: string }>;
  nextBefore: string | null;
}

export interface AuditFilter {
  /** Who acted: a user's email, 'cli' or 'system'. */
  actorEmail?: string;
  /** What was acted on: e.g. 'user' and the user's id (what happened to one user). */
  targetType?: string;
  targetId?: string;
  /** Events at or after this instant (the start of a day on the reader's clock). */
  from?: Date;
  /** Events before this instant. */
  until?: Date;
}

/** Newest first, 100 a page, paged by the `at` index (cursor = ISO time + id); optionally one actor's or one target's events (indexed too). */
export async function listAuditEvents(store: Store, options: { before?: string; limit?: number } & AuditFilter = {}): Promise<AuditPage> {
  const limit = Math.min(options.limit ?? 100, 500);
  const filter: Record<string, unknown> = {};
  if (options.actorEmail) filter.actorEmail = options.actorEmail.trim().toLowerCase();
  if (options.targetType && options.targetId) Object.assign(filter, { targetType: options.targetType, targetId: options.targetId });
  if (options.from || options.until) filter.at = { ...(options.from ? { $gte: options.from } : {}), ...(options.until ? { $lt: options.until } : {}) };
  const cursor = decodeAuditCursor(options.before);
  if (cursor) filter.$or = [{ at: { $lt: cursor.at } }, { at: cursor.at, _id: { $lt: cursor.id } }];
  const rows = await store.models.AuditEvent.find(filter).sort({ at: -1, _id: -1 }).limit(limit + 1).lean();
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    events: page.map((row) => ({
      id: row._id.toString(),
      at: row.at,
      actorEmail: row.actorEmail ?? '',
      action: row.action,
      targetType: row.targetType ?? '',
      targetId: row.targetId ?? '',
      details: (row.details ?? {}) as Record<string, unknown>,
      ip: row.ip ?? '',
    })),
    nextBefore: rows.length > limit && last ? `${last.at.toISOString()}_${last._id.toString()}` : null,
  };
}

function decodeAuditCursor(value: string | undefined): { at: Date; id: Types.ObjectId } | null {
  if (!value) return null;
  const match = /^(\d{4}-\d\d-\d\dT[\d:.]+Z)_([0-9a-f]{24})$/.exec(value);
  if (!match) return null;
  const at = new Date(match[1]);
  const id = parseObjectId(match[2]);
  if (Number.isNaN(at.getTime()) || !id) return null;
  return { at, id };
}
