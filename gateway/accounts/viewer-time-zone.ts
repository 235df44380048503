import { DEFAULT_TIME_ZONE } from '../core/time-zone';
import type { Store } from '../store';

/**
 * The zone a person's console shows times in and reads typed dates in: their own choice (Profile), else the
 * business's (Preferences → Business, set by an admin), else UTC. The server renders every page, so it
 * cannot ask the browser; a person whose zone differs from the business's chooses it once.
 */
export async function viewerTimeZone(store: Store, user: { timeZone?: string } | null | undefined): Promise<string> {
  if (user?.timeZone) return user.timeZone;
  const business = await store.models.BusinessSettings.findById('business', { timeZone: 1 }).lean();
  return business?.timeZone || DEFAULT_TIME_ZONE;
}
