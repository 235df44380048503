import type mongoose from 'mongoose';
import type { Store } from '../store';
import { BatchLoop, MAX_BATCH, perModel } from '../store/group-commit';
import type { MatchKeys } from './rules';

type ObjectId = mongoose.Types.ObjectId;
type CrmObjectModel = Store['models']['CrmObject'];

/** What association reads of a CRM object. */
export type CandidateObject = {
  _id: ObjectId; type: string; name: string; externalId: string; emails?: string[] | null; domains?: string[] | null;
  rules?: { linkBulk?: boolean | null; neverLink?: string[] | null } | null;
};

const PROJECTION = { type: 1, name: 1, externalId: 1, emails: 1, domains: 1, rules: 1 };

/** The objects a message could link to: an email it names, or (customers) one of its domains — MongoDB's `$in` on arrays. */
function candidateFor(row: CandidateObject, keys: Pick<MatchKeys, 'addresses' | 'domains'>): boolean {
  if (row.emails?.some((email) => keys.addresses.includes(email))) return true;
  return row.type === 'customer' && Boolean(row.domains?.some((domain) => keys.domains.includes(domain)));
}

function filterOf(addresses: string[], domains: string[]): Record<string, unknown> {
  const or: Array<Record<string, unknown>> = [];
  if (addresses.length > 0) or.push({ emails: { $in: addresses } });
  if (domains.length > 0) or.push({ type: 'customer', domains: { $in: domains } });
  return { $or: or };
}

interface Pending {
  keys: Pick<MatchKeys, 'addresses' | 'domains'>;
  resolve: (rows: CandidateObject[]) => void;
  reject: (err: unknown) => void;
}

/**
 * Candidate objects for messages being ingested at the same time, loaded
 * by one query over all their addresses and domains (through the
 * emails/domains indexes), then handed to each message as its own subset.
 * Ingest asks once per message; sharing the query saves a store command
 * per message, as group-lookup.ts does for the deletion check.
 */
class CandidateLookup {
  private queue: Pending[] = [];
  private readonly loop = new BatchLoop(async () => {
    const batch = this.queue.splice(0, MAX_BATCH);
    const addresses = [...new Set(batch.flatMap((p) => p.keys.addresses))];
    const domains = [...new Set(batch.flatMap((p) => p.keys.domains))];
    try {
      const rows = (await this.model.find(filterOf(addresses, domains), PROJECTION).lean()) as CandidateObject[];
      for (const pending of batch) pending.resolve(rows.filter((row) => candidateFor(row, pending.keys)));
    } catch (err) {
      for (const pending of batch) pending.reject(err);
    }
    return this.queue.length > 0;
  });

  constructor(private readonly model: CrmObjectModel) {}

  find(keys: Pick<MatchKeys, 'addresses' | 'domains'>): Promise<CandidateObject[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ keys, resolve, reject });
      this.loop.kick();
    });
  }
}

const lookupOf = perModel((model: CrmObjectModel) => new CandidateLookup(model));

/** The CRM objects that name one of these addresses, or (customers) one of these domains. */
export function findCandidateObjects(store: Store, keys: Pick<MatchKeys, 'addresses' | 'domains'>): Promise<CandidateObject[]> {
  if (keys.addresses.length === 0 && keys.domains.length === 0) return Promise.resolve([]);
  return lookupOf(store.models.CrmObject).find(keys);
}
