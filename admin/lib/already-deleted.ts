import type { Request } from 'express';
import type { Store } from '../../gateway/store';

/**
 * Whether the signed-in user already deleted this (its audit event says so): a double click on Delete sends
 * the form twice, the first press deletes, and the browser shows the answer to the second. That answer is
 * the list with "already deleted", not a "not found" page. Someone else's deletion, or an id never deleted,
 * stays a 404.
 */
export async function deletedByViewer(store: Store, req: Request, target: { type: string; id: string; action: string }): Promise<{ details: Record<string, unknown> } | null> {
  const actorId = req.viewer?.id;
  if (!actorId || !/^[0-9a-f]{24}$/i.test(target.id)) return null;
  const event = await store.models.AuditEvent.findOne({ targetType: target.type, targetId: target.id.toLowerCase(), action: target.action, actorId }, { details: 1 }).lean();
  return event ? { details: (event.details ?? {}) as Record<string, unknown> } : null;
}
