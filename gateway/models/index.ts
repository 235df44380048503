import type { Connection, Model } from 'mongoose';
import { apiTokenSchema, type ApiTokenDoc } from './api-token';
import { auditEventSchema, type AuditEventDoc } from './audit';
import { backfillJobSchema, type BackfillJobDoc } from './backfill-job';
import { crmObjectSchema, linkSchema, type CrmObjectDoc, type LinkDoc } from './crm';
import { csvImportSchema, type CsvImportDoc } from './csv-import';
import { keyCheckSchema, type KeyCheckDoc } from './key-check';
import { mailAccountSchema, type MailAccountDoc } from './mail-account';
import { messageSchema, tombstoneSchema, type MessageDoc } from './message';
import { oauthRefreshLockSchema, type OAuthRefreshLockDoc } from './oauth-refresh-lock';
import { oauthStateSchema, type OAuthStateDoc } from './oauth-state';
import { outboxSchema, type OutboxDoc } from './outbox';
import { sendClaimSchema, type SendClaimDoc } from './send-claim';
import { businessSettingsSchema, type BusinessSettingsDoc } from './settings';
import { sessionSchema, type SessionDoc } from './session';
import { folderStateSchema, syncLeaseSchema, type FolderStateDoc } from './sync-state';
import { userSchema, type UserDoc } from './user';
import { webhookSchema, type WebhookDoc } from './webhook';
import { webhookDeliverySchema, type WebhookDeliveryDoc } from './webhook-delivery';

/**
 * Every model bound to one connection. Models are created per connection
 * (not on the mongoose singleton) so tests and processes pass them around
 * explicitly and several stores can coexist in one process.
 */
export function createModels(conn: Connection) {
  return {
    User: conn.model<UserDoc>('User', userSchema),
    MailAccount: conn.model<MailAccountDoc>('MailAccount', mailAccountSchema),
    Message: conn.model<MessageDoc>('Message', messageSchema),
    Tombstone: conn.model('Tombstone', tombstoneSchema),
    CrmObject: conn.model<CrmObjectDoc>('CrmObject', crmObjectSchema),
    Link: conn.model<LinkDoc>('Link', linkSchema),
    FolderState: conn.model<FolderStateDoc>('FolderState', folderStateSchema),
    SyncLease: conn.model('SyncLease', syncLeaseSchema),
    BusinessSettings: conn.model<BusinessSettingsDoc>('BusinessSettings', businessSettingsSchema),
    AuditEvent: conn.model<AuditEventDoc>('AuditEvent', auditEventSchema),
    ApiToken: conn.model<ApiTokenDoc>('ApiToken', apiTokenSchema),
    Session: conn.model<SessionDoc>('Session', sessionSchema),
    Webhook: conn.model<WebhookDoc>('Webhook', webhookSchema),
    WebhookDelivery: conn.model<WebhookDeliveryDoc>('WebhookDelivery', webhookDeliverySchema),
    BackfillJob: conn.model<BackfillJobDoc>('BackfillJob', backfillJobSchema),
    CsvImport: conn.model<CsvImportDoc>('CsvImport', csvImportSchema),
    OAuthState: conn.model<OAuthStateDoc>('OAuthState', oauthStateSchema),
    OAuthRefreshLock: conn.model<OAuthRefreshLockDoc>('OAuthRefreshLock', oauthRefreshLockSchema),
    Outbox: conn.model<OutboxDoc>('Outbox', outboxSchema),
    SendClaim: conn.model<SendClaimDoc>('SendClaim', sendClaimSchema),
    KeyCheck: conn.model<KeyCheckDoc>('KeyCheck', keyCheckSchema),
  };
}

export type Models = ReturnType<typeof createModels>;

/**
 * Create the collections and every declared index. Idempotent, run at each
 * process start (this is the "migration" step of an upgrade). Indexes are
 * declared in the schemas only; this is the one place that builds them.
 */
export async function ensureIndexes(models: Models): Promise<void> {
  for (const model of Object.values(models) as Array<Model<unknown>>) {
    await model.createCollection().catch((err: { codeName?: string; code?: number }) => {
      if (err.codeName !== 'NamespaceExists' && err.code !== 48) throw err;
    });
    await model.createIndexes();
    for (const name of RETIRED_INDEXES[model.collection.collectionName] ?? []) {
      await model.collection.dropIndex(name).catch((err: { codeName?: string; code?: number }) => {
        if (err.codeName !== 'IndexNotFound' && err.code !== 27) throw err;
      });
    }
  }
}

/**
 * Indexes earlier releases built that nothing reads any more: dropped at start, since every write still
 * pays for them (createIndexes never drops one).
 */
export const RETIRED_INDEXES: Readonly<Record<string, readonly string[]>> = {
  // Conversations and "In reply to" were looked up per mailbox; they are the owner's now.
  messages: ['mailboxKey_1_messageId_1', 'mailboxKey_1_references_1'],
};
