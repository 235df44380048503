import mongoose from 'mongoose';
import { decodeCursor, encodeCursor, NOT_A_CURSOR } from '../accounts/mailbox';
import { AppError } from '../core/errors';
import type { Store } from '../store';
import { loadCrmSettings, type CrmSettingsInput } from './settings';
import { objectsByIds, type PublicObject } from './objects';

type ObjectId = mongoose.Types.ObjectId;

/**
 * Who sees which linked mail. An employee's mail is visible to that
 * employee and to admins; other employees see it on an object's timeline
 * only when the message is shared or the business shares all linked mail.
 * The API applies the same rule for the token's user.
 */
export interface Viewer {
  id: ObjectId;
  role: 'admin' | 'employee' | string;
}

/** A Message filter for what `viewer` may see on object timelines. */
export function visibleMessagesFilter(viewer: Viewer, shareLinkedMail: boolean): Record<string, unknown> {
  if (viewer.role === 'admin' || shareLinkedMail) return {};
  return { $or: [{ ownerId: viewer.id }, { shared: true }] };
}

export function canSeeLinkedMessage(viewer: Viewer, message: { ownerId: ObjectId; shared?: boolean | null }, shareLinkedMail: boolean): boolean {
  return viewer.role === 'admin' || shareLinkedMail || Boolean(message.shared) || message.ownerId.equals(viewer.id);
}

export interface TimelineEntry {
  id: string;
  subject: string;
  from: { address: string; name: string } | null;
  to: Array<{ address: string; name: string }>;
  date: Date | null;
  receivedAt: Date;
  ownerId: string;
  shared: boolean;
  bulk: boolean;
  /**
   * How many stored copies of this mail the entry stands for: the same mail
   * in several employees' mailboxes (same Message-ID and content) is one
   * entry, the viewer's own copy when they have one.
   */
  copies: number;
  /** Why the message is linked to this object. */
  link: { rule: string; address: string; reasons: Array<{ address: string; rule: string; role: string; matched: string }>; createdAt: Date } | null;
}

export interface TimelinePage {
  entries: TimelineEntry[];
  /** Pass as `before` for the next (older) page; null at the end. */
  next: string | null;
}

/** Copies of one mail in several mailboxes share the Message-ID and the content hash (gateway/mail/dedupe.ts). */
export function sameMailKey(row: { _id: ObjectId; messageId?: string | null; contentHash?: string | null }): string {
  return row.contentHash ? `${row.messageId ?? ''}\u0000${row.contentHash}` : row._id.toString();
}

/**
 * An object's email timeline, newest first, paged by (receivedAt, _id)
 * through the {linkedObjectIds, receivedAt} index.
 */
export async function objectTimeline(
  deps: { store: Store; settings?: CrmSettingsInput },
  objectId: ObjectId,
  viewer: Viewer,
  options: { before?: string; limit?: number } = {},
): Promise<TimelinePage> {
  const { Message, Link } = deps.store.models;
  const settings = await loadCrmSettings(deps.store, deps.settings);
  const limit = Math.min(Math.max(options.limit ?? 25, 1), 200);
  const clauses: Array<Record<string, unknown>> = [{ linkedObjectIds: objectId, status: 'inbox' }];
  const privacy = visibleMessagesFilter(viewer, settings.shareLinkedMail);
  if (Object.keys(privacy).length > 0) clauses.push(privacy);
  if (options.before) {
    // Said, not ignored: a cursor that reads as "no cursor" would hand back the first page for ever.
    const cursor = decodeCursor(options.before);
    if (!cursor) throw new AppError('VALIDATION_FAILED', `before ${NOT_A_CURSOR}`, { status: 400, fields: { before: NOT_A_CURSOR } });
    clauses.push({ $or: [{ receivedAt: { $lt: cursor.receivedAt } }, { receivedAt: cursor.receivedAt, _id: { $lt: cursor.id } }] });
  }
  const rows = await Message.find(clauses.length === 1 ? clauses[0] : { $and: clauses }, {
    subject: 1, from: 1, to: 1, date: 1, receivedAt: 1, ownerId: 1, shared: 1, bulk: 1, messageId: 1, contentHash: 1,
  })
    .sort({ receivedAt: -1, _id: -1 })
    .limit(limit + 1)
    .lean();
  const page = rows.slice(0, limit);
  // One entry per mail: copies that arrive far apart may still fall on two pages, each then showing it once.
  const groups = new Map<string, typeof page>();
  for (const row of page) {
    const key = sameMailKey(row);
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  const shown = [...groups.values()]
    .map((copies) => ({ row: copies.find((c) => c.ownerId.equals(viewer.id)) ?? copies[0], copies: copies.length }))
    // The viewer's copy may have arrived later or earlier than the newest one: keep the page in its order.
    .sort((a, b) => b.row.receivedAt.getTime() - a.row.receivedAt.getTime() || b.row._id.toString().localeCompare(a.row._id.toString()));
  const links = await Link.find({ objectId, messageId: { $in: shown.map((s) => s.row._id) }, removedAt: null }).lean();
  const linkByMessage = new Map(links.map((l) => [l.messageId.toString(), l]));
  const entries = shown.map(({ row, copies }): TimelineEntry => {
    const link = linkByMessage.get(row._id.toString());
    return {
      id: row._id.toString(),
      subject: row.subject ?? '',
      from: row.from?.address ? { address: row.from.address, name: row.from.name ?? '' } : null,
      to: (row.to ?? []).map((t) => ({ address: t.address ?? '', name: t.name ?? '' })),
      date: row.date ?? null,
      receivedAt: row.receivedAt,
      ownerId: row.ownerId.toString(),
      shared: Boolean(row.shared),
      bulk: Boolean(row.bulk),
      copies,
      link: link
        ? {
            rule: link.rule,
            address: link.address,
            reasons: (link.reasons ?? []).map((r) => ({ address: r.address, rule: r.rule, role: r.role ?? '', matched: r.matched ?? '' })),
            createdAt: link.createdAt,
          }
        : null,
    };
  });
  const last = page[page.length - 1];
  return { entries, next: rows.length > limit && last ? encodeCursor(last.receivedAt, last._id) : null };
}

export interface MessageLinkView {
  object: PublicObject;
  rule: string;
  address: string;
  reasons: Array<{ address: string; rule: string; role: string; matched: string }>;
  createdAt: Date;
}

/** The objects a message is linked to, with why (message page). The caller checks the viewer may see the message. */
export async function messageLinks(store: Store, messageId: ObjectId): Promise<MessageLinkView[]> {
  const links = await store.models.Link.find({ messageId, removedAt: null }).lean();
  const objects = new Map((await objectsByIds(store, links.map((l) => l.objectId))).map((o) => [o.id, o]));
  const views: MessageLinkView[] = [];
  for (const link of links) {
    const object = objects.get(link.objectId.toString());
    if (!object) continue;
    views.push({
      object,
      rule: link.rule,
      address: link.address,
      reasons: (link.reasons ?? []).map((r) => ({ address: r.address, rule: r.rule, role: r.role ?? '', matched: r.matched ?? '' })),
      createdAt: link.createdAt,
    });
  }
  return views.sort((a, b) => a.object.name.localeCompare(b.object.name));
}
