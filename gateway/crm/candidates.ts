import type mongoose from 'mongoose';
import type { Store } from '../store';
import { perModel, SharedQuery } from '../store/group-commit';
import type { MatchKeys } from './rules';

type ObjectId = mongoose.Types.ObjectId;
type CrmObjectModel = Store['models']['CrmObject'];

/** What association reads of a CRM object. */
export type CandidateObject = {
  _id: ObjectId; type: string; name: string; externalId: string; emails?: string[] | null; domains?: string[] | null;
  rules?: { linkBulk?: boolean | null; neverLink?: string[] | null } | null;
};

/** What a message could be linked by: its addresses and domains (rules.ts matchKeys). */
type MatchKeysOfMessage = Pick<MatchKeys, 'addresses' | 'domains'>;

const PROJECTION = { type: 1, name: 1, externalId: 1, emails: 1, domains: 1, rules: 1 };

/** The objects a message could link to: an email it names, or (customers) one of its domains — MongoDB's `$in` on arrays. */
function candidateFor(row: CandidateObject, keys: MatchKeysOfMessage): boolean {
  if (row.emails?.some((email) => keys.addresses.includes(email))) return true;
  return row.type === 'customer' && Boolean(row.domains?.some((domain) => keys.domains.includes(domain)));
}

function filterOf(addresses: string[], domains: string[]): Record<string, unknown> {
  const or: Array<Record<string, unknown>> = [];
  if (addresses.length > 0) or.push({ emails: { $in: addresses } });
  if (domains.length > 0) or.push({ type: 'customer', domains: { $in: domains } });
  return { $or: or };
}

/**
 * Candidate objects for messages being ingested at the same time, loaded
 * by one query over all their addresses and domains (through the
 * emails/domains indexes), then handed to each message as its own subset.
 * Ingest asks once per message; sharing the query saves a store command
 * per message, as group-lookup.ts does for the deletion check.
 */
const lookupOf = perModel(
  (model: CrmObjectModel) =>
    new SharedQuery<MatchKeysOfMessage, CandidateObject[]>(async (requests) => {
      const addresses = [...new Set(requests.flatMap((keys) => keys.addresses))];
      const domains = [...new Set(requests.flatMap((keys) => keys.domains))];
      const rows = (await model.find(filterOf(addresses, domains), PROJECTION).lean()) as CandidateObject[];
      return requests.map((keys) => rows.filter((row) => candidateFor(row, keys)));
    }),
);

/** The objects a message's links name, by id (re-planning the links of a stored message). */
export async function candidateObjectsById(store: Store, ids: string[]): Promise<CandidateObject[]> {
  return (await store.models.CrmObject.find({ _id: { $in: ids } }, PROJECTION).lean()) as CandidateObject[];
}

/** The CRM objects that name one of these addresses, or (customers) one of these domains. */
export function findCandidateObjects(store: Store, keys: MatchKeysOfMessage): Promise<CandidateObject[]> {
  if (keys.addresses.length === 0 && keys.domains.length === 0) return Promise.resolve([]);
  return lookupOf(store.models.CrmObject).ask(keys);
}
