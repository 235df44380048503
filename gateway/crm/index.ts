/**
 * CRM objects and automatic association: what processes wire in.
 *
 * - ingest: `associate: crmAssociator(crmDeps)` (IngestDeps)
 * - admin: `afterRelease: crmAfterRelease(crmDeps)` (quarantine release)
 * - one process (or several): `startCrmWorker(crmDeps, {secretBox})` runs
 *   backfill jobs, the crash-recovery sweep and webhook delivery
 *
 * where `crmDeps = {store, log, settings: {businessDomains: config.businessDomains}}`.
 */
export { normalizeAddress, normalizeDomain } from './address';
export { detectBulk } from './bulk';
export { builtinFreemailDomains, freemailChecker } from './freemail';
export { planAssociation, messageParticipants, matchKeys } from './rules';
export { loadCrmSettings, type CrmSettings, type CrmSettingsInput } from './settings';
export {
  crmAfterRelease, crmAssociator, linkMessage, linkMessageById, unlinkAsViewer, unlinkMessage, type CrmDeps, type LinkResult,
} from './link';
export { createJob, listJobs, runPendingJobs, sweep } from './backfill';
export { createObject, deleteObject, getObject, searchObjects, updateObject, upsertObjectByExternalId } from './objects';
export { commitImport, previewImport, saveUpload } from './csv-import';
export { commitUploadOnce, discardUpload, importRunning } from './import-once';
export { objectTimeline, messageLinks, visibleMessagesFilter, canSeeLinkedMessage } from './timeline';
export { createWebhook, deleteWebhook, listDeliveries, listWebhooks, resendDelivery, rotateWebhookSecret, sealWebhookUrls, updateWebhook } from './webhooks';
export { dispatchDueDeliveries, startWebhookDispatcher, defaultBackoffMs } from './webhook-dispatch';
export { signatureHeader, verifySignature, SIGNATURE_HEADER } from './webhook-signature';
export { startCrmWorker, type CrmWorker } from './worker';
