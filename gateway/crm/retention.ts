import type { Store } from '../store';

/**
 * How long the CRM's history is kept: webhook deliveries that are settled
 * (delivered, or failed after their 24 hours) and backfill jobs that are
 * finished. The console shows them as history (a webhook's delivery log,
 * an object's jobs); after this they only take space, and without a limit
 * they grow with every linked message for as long as the appliance runs.
 * Deleted by the CRM worker: FerretDB has no TTL indexes.
 */
export const CRM_HISTORY_DAYS = 30;

export async function pruneCrmHistory(store: Store, now = new Date()): Promise<{ deliveries: number; jobs: number }> {
  const before = new Date(now.getTime() - CRM_HISTORY_DAYS * 86_400_000);
  // By the last attempt, not creation: a delivery resent today is today's history.
  const deliveries = await store.models.WebhookDelivery.deleteMany({ status: { $in: ['delivered', 'failed'] }, lastAttemptAt: { $lt: before } });
  const jobs = await store.models.BackfillJob.deleteMany({ status: { $in: ['done', 'failed'] }, finishedAt: { $lt: before } });
  return { deliveries: deliveries.deletedCount, jobs: jobs.deletedCount };
}
