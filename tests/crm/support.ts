import crypto from 'node:crypto';
import mongoose from 'mongoose';
import type { Store } from '../../gateway/store';
import { createLogger } from '../../gateway/core/log';

/** Helpers for CRM tests: users, mail accounts and stored messages written straight to the store. */

export const testLog = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export async function makeUser(store: Store, email: string, role: 'admin' | 'employee' = 'employee') {
  const user = await store.models.User.create({ email, role, dropboxToken: crypto.randomBytes(8).toString('hex') });
  return user;
}

export async function makeAccount(store: Store, ownerId: mongoose.Types.ObjectId, email: string) {
  const token = crypto.randomBytes(6).toString('hex');
  return store.models.MailAccount.create({
    ownerId, email, domain: email.split('@')[1], forwardingToken: token, forwardingAddress: `${email.replace(/[^a-z0-9]/g, '-')}.${token}@in.postroom.test`,
  });
}

type Addr = string | { address: string; name?: string };
const addr = (a: Addr) => (typeof a === 'string' ? { address: a, name: '' } : { name: '', ...a });

export interface MessageSpec {
  ownerId: mongoose.Types.ObjectId;
  from: Addr;
  to?: Addr[];
  cc?: Addr[];
  replyTo?: Addr[];
  sender?: Addr;
  subject?: string;
  headers?: Record<string, string>;
  status?: 'inbox' | 'quarantine';
  receivedAt?: Date;
  shared?: boolean;
  bulk?: boolean;
  /** Backdate createdAt (sweep tests). */
  createdAt?: Date;
}

/** Insert a message document as ingest would store it (addresses lower-cased). */
export async function insertMessage(store: Store, spec: MessageSpec) {
  const from = addr(spec.from);
  const to = (spec.to ?? []).map(addr);
  const cc = (spec.cc ?? []).map(addr);
  const replyTo = (spec.replyTo ?? []).map(addr);
  const sender = spec.sender ? addr(spec.sender) : null;
  const all = [from, sender, ...to, ...cc, ...replyTo].filter((a): a is { address: string; name: string } => Boolean(a?.address));
  const key = crypto.randomBytes(12).toString('hex');
  const doc = await store.models.Message.create({
    mailboxKey: spec.ownerId.toString(),
    ownerId: spec.ownerId,
    messageId: `${key}@test`,
    contentHash: key,
    dedupeKey: key,
    receivedAt: spec.receivedAt ?? new Date(),
    date: spec.receivedAt ?? new Date(),
    from, sender, to, cc, replyTo,
    addresses: [...new Set(all.map((a) => a.address.toLowerCase()))],
    subject: spec.subject ?? `subject ${key.slice(0, 6)}`,
    headers: Object.entries(spec.headers ?? {}).map(([name, value]) => ({ name, value })),
    rawBlobId: new mongoose.Types.ObjectId(),
    size: 100,
    status: spec.status ?? 'inbox',
    shared: spec.shared ?? false,
    bulk: spec.bulk ?? false,
  });
  if (spec.createdAt) await store.models.Message.collection.updateOne({ _id: doc._id }, { $set: { createdAt: spec.createdAt } });
  return (await store.models.Message.findById(doc._id).lean())!;
}

export async function linksOf(store: Store, messageId: mongoose.Types.ObjectId) {
  return store.models.Link.find({ messageId, removedAt: null }).lean();
}

export async function linkedIds(store: Store, messageId: mongoose.Types.ObjectId): Promise<string[]> {
  const message = await store.models.Message.findById(messageId, { linkedObjectIds: 1 }).lean();
  return (message?.linkedObjectIds ?? []).map((id) => id.toString()).sort();
}
