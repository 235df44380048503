import { canonicalTimeZone, DEFAULT_TIME_ZONE } from '../core/time-zone';
import type { Store } from '../store';

/**
 * The zone a person's console shows times in and reads typed dates in: their own choice (Profile), else the
 * business's (Preferences → Business, set by an admin), else UTC. The server renders every page, so it
 * cannot ask the browser; a person whose zone differs from the business's chooses it once.
 *
 * A stored name this Node's time zone data does not know (written by hand, or by a newer release's data)
 * is passed over rather than failing every page.
 */
export async function viewerTimeZone(store: Store, user: { timeZone?: string | null } | null | undefined): Promise<string> {
  const own = user?.timeZone ? canonicalTimeZone(user.timeZone) : null;
  if (own) return own;
  const business = await store.models.BusinessSettings.findById('business', { timeZone: 1 }).lean();
  return (business?.timeZone && canonicalTimeZone(business.timeZone)) || DEFAULT_TIME_ZONE;
}
