import type { Logger } from '../core/log';
import { attachedMessagesSearchText } from '../mail/attached-message';
import { clean } from '../mail/parse';
import type { Store } from '../store';
import type { ObjectId } from './ids';
import { attachedMessageBytes } from './attached-messages';

const BATCH = 50;

/**
 * Mail stored before search read attached messages (attachedText, filled by
 * ingest since) has none: after an upgrade, a mail forwarded as an
 * attachment is found by its words only if it came afterwards. This reads
 * the attached messages of the older ones once, from their stored bytes, as
 * ingest would have. Only messages with a message/rfc822 (or message/global)
 * part and no attachedText field are read; each gets the field, empty when
 * nothing can be read, so none is read twice. Returns how many it read.
 */
export async function backfillAttachedText(store: Store, log: Logger, options: { signal?: AbortSignal } = {}): Promise<number> {
  // Done once per store: ingest has written the field since, so the query below (a scan of the messages
  // collection: it has no index) would find nothing at every later start.
  const { BusinessSettings } = store.models;
  if ((await BusinessSettings.findById('business', { attachedTextBackfilledAt: 1 }).lean())?.attachedTextBackfilledAt) return 0;
  const filter = { attachedText: { $exists: false }, 'attachments.contentType': { $in: [/^\s*message\/rfc822\s*$/i, /^\s*message\/global\s*$/i] } };
  let read = 0;
  while (!options.signal?.aborted) {
    const rows = await store.models.Message.find(filter, { _id: 1, attachments: 1 }).limit(BATCH).lean<Array<{ _id: ObjectId; attachments?: Array<{ contentType?: string | null; size?: number | null; blobId?: ObjectId | null }> }>>();
    if (rows.length === 0) break;
    for (const row of rows) {
      if (options.signal?.aborted) break;
      let text = '';
      try {
        text = clean(await attachedMessagesSearchText((await attachedMessageBytes(store, row)).map(({ bytes }) => bytes)));
      } catch (err) {
        // Its bytes cannot be read (a blob gone): it stays a download, as at ingest. (The store down stops at the write.)
        log.warn({ err, id: row._id }, 'attached messages of a stored mail could not be read for search');
      }
      await store.models.Message.updateOne({ _id: row._id, attachedText: { $exists: false } }, { $set: { attachedText: text } });
      read++;
    }
  }
  if (read > 0) log.info({ messages: read }, 'attached messages of mail stored before an upgrade made searchable');
  if (!options.signal?.aborted) await BusinessSettings.updateOne({ _id: 'business' }, { $set: { attachedTextBackfilledAt: new Date() } }, { upsert: true });
  return read;
}
