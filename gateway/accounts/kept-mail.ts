import type { Model } from 'mongoose';
import { isDuplicateKeyError } from '../core/errors';
import type { Store } from '../store';
import { canonicalMailbox } from './email-address';
import { parseObjectId, type ObjectId } from './ids';

/**
 * Mail kept from a deleted account goes back to the mailbox when its owner
 * adds the same address again.
 *
 * A deleted account's mail stays (shown as "deleted account"), keyed by the
 * old account's id. De-duplication is per mailbox key, so without this the
 * re-added mailbox's first IMAP sync and forwarded mail stored every message
 * a second time, and the inbox showed each twice; messages the user had
 * deleted (tombstones, also keyed by mailbox) came back. Only the same
 * owner's mail moves: a mailbox handed to another employee does not take
 * the previous holder's mail along.
 *
 * The old accounts are found through their `account.create` audit events
 * (which name the owner and the address); the account documents are gone.
 */
export async function adoptKeptMail(store: Store, ownerId: ObjectId, address: string, accountId: ObjectId): Promise<number> {
  const { AuditEvent, MailAccount, Message, Tombstone } = store.models;
  const canonical = canonicalMailbox(address);
  const created = await AuditEvent.find({ targetType: 'mail_account', action: 'account.create', 'details.ownerId': ownerId.toString() }, { targetId: 1, details: 1 }).lean();
  const candidates = created
    .filter((event) => typeof event.details?.email === 'string' && canonicalMailbox(event.details.email) === canonical)
    .map((event) => parseObjectId(event.targetId ?? ''))
    .filter((id): id is ObjectId => Boolean(id) && !id!.equals(accountId));
  if (candidates.length === 0) return 0;
  const live = new Set((await MailAccount.find({ _id: { $in: candidates } }, { _id: 1 }).lean()).map((row) => row._id.toString()));
  const oldKeys = [...new Set(candidates.filter((id) => !live.has(id.toString())).map((id) => id.toHexString()))];

  const newKey = accountId.toHexString();
  let adopted = 0;
  for (const oldKey of oldKeys) {
    adopted += await rekey(Message, { mailboxKey: oldKey, ownerId }, { mailboxKey: newKey, accountId });
    await rekey(Tombstone, { mailboxKey: oldKey }, { mailboxKey: newKey });
  }
  if (adopted > 0) await MailAccount.updateOne({ _id: accountId }, { $inc: { messageCount: adopted } });
  return adopted;
}

/**
 * Move documents to the new mailbox key, all at once; when the mailbox was
 * deleted and added more than once, the same message may be under two old
 * keys: the copy that cannot move (unique mailbox key + de-duplication key)
 * stays where it is, still shown, never deleted. Returns how many moved.
 */
async function rekey<T>(model: Model<T>, filter: Record<string, unknown>, set: Record<string, unknown>): Promise<number> {
  const before = await model.countDocuments(filter);
  if (before === 0) return 0;
  try {
    await model.updateMany(filter, { $set: set });
    return before;
  } catch (err) {
    if (!isDuplicateKeyError(err)) throw err;
  }
  // The bulk update stopped at the first clash, part-way: the rest one by one.
  for (const row of await model.find(filter, { _id: 1 }).lean<Array<{ _id: ObjectId }>>()) {
    try {
      await model.updateOne({ _id: row._id }, { $set: set });
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
    }
  }
  return before - (await model.countDocuments(filter));
}
