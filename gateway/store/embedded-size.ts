import type { Logger } from '../core/log';
import type { Store } from '.';

/** Past this many stored messages the embedded store's full reads make the inbox take seconds (README: the embedded store). */
export const EMBEDDED_STORE_COMFORTABLE_MESSAGES = 3000;

/**
 * The embedded FerretDB reads the whole collection for every inbox page and
 * search: fine while trying Postroom, seconds per page once a business's mail
 * piles up. Said once at start, with what to do, so an operator who outgrew
 * it learns why pages are slow before users complain. Returns the count.
 */
export async function warnIfEmbeddedStoreOutgrown(store: Store, log: Logger, limit = EMBEDDED_STORE_COMFORTABLE_MESSAGES): Promise<number | null> {
  if (!store.embedded) return null;
  const messages = await store.models.Message.estimatedDocumentCount();
  if (messages > limit) {
    log.warn(
      { messages, limit },
      `the embedded store holds ${messages} messages; it reads every message for each inbox page and search, so pages take seconds at this size and longer as mail grows. Run Postroom on MongoDB 7 for a business's mail: stop it, copy this store with npm run cli -- copy-store --to <mongodb uri>, then start with MONGODB_URI set to it`,
    );
  }
  return messages;
}
