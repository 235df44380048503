import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { CRM_HISTORY_DAYS } from '../../gateway/crm/retention';
import { startCrmWorker } from '../../gateway/crm/worker';
import { openTestStore } from '../support/store';
import { testLog } from './support';

/**
 * Settled webhook deliveries and finished jobs are history: kept
 * CRM_HISTORY_DAYS for the console, then deleted by the CRM worker, so the
 * collections do not grow for as long as the appliance runs. Anything still
 * to do is never deleted, however old.
 */
describe('CRM history retention', function () {
  this.timeout(60_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  before(async () => {
    store = await openTestStore('crm_retention');
  });
  after(async () => store.drop());

  it('the worker deletes deliveries settled and jobs finished longer ago than the keeping time, and nothing else', async () => {
    const day = 86_400_000;
    const old = new Date(Date.now() - (CRM_HISTORY_DAYS + 1) * day);
    const recent = new Date(Date.now() - (CRM_HISTORY_DAYS - 1) * day);
    const webhookId = new mongoose.Types.ObjectId();
    const delivery = (eventId: string, status: string, createdAt: Date, lastAttemptAt: Date | null) => ({
      webhookId, eventId, eventType: 'link.created', payload: '{}', status, nextAttemptAt: createdAt, expiresAt: new Date(createdAt.getTime() + day), createdAt, lastAttemptAt,
    });
    await store.models.WebhookDelivery.insertMany([
      delivery('old-delivered', 'delivered', old, old),
      delivery('old-failed', 'failed', old, old),
      delivery('old-but-resent-lately', 'delivered', old, recent),
      delivery('recent-delivered', 'delivered', recent, recent),
      delivery('old-pending', 'pending', old, null),
    ]);
    // Named by their one address; the worker may run the unfinished ones meanwhile (they then finish now, and stay).
    const job = (label: string, status: string, finishedAt: Date | null) => ({ kind: 'backfill', status, createdAt: old, finishedAt, emails: [`${label}@x.test`] });
    await store.models.BackfillJob.insertMany([
      job('old-done', 'done', old), job('old-failed', 'failed', old), job('recent-done', 'done', recent), job('old-running', 'running', null), job('old-pending', 'pending', null),
    ]);

    const worker = startCrmWorker({ store, log: testLog }, { intervalMs: 50 });
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      await worker.idle();
    } finally {
      await worker.stop();
    }
    const deliveries = (await store.models.WebhookDelivery.find({ webhookId }, { eventId: 1 }).lean()).map((d) => d.eventId).sort();
    assert.deepEqual(deliveries, ['old-but-resent-lately', 'old-pending', 'recent-delivered']);
    const jobs = (await store.models.BackfillJob.find({}, { emails: 1 }).lean()).map((j) => j.emails[0]).sort();
    assert.deepEqual(jobs, ['old-pending@x.test', 'old-running@x.test', 'recent-done@x.test']);
  });
});
