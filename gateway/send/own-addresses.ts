import type mongoose from 'mongoose';
import { dropboxAddress } from '../accounts/forwarding-address';
import type { Store } from '../store';

type ObjectId = mongoose.Types.ObjectId;

/** Addresses that are the sender, or Postroom itself: Reply all leaves them out (reply.ts replyRecipients). */
export interface OwnAddresses {
  /** The user's sign-in address, every mail account's address and forwarding address, and the user's dropbox. */
  addresses: string[];
  /**
   * GATEWAY_DOMAIN: every address there is one of Postroom's intake addresses (a forwarding address, a
   * dropbox, postmaster), never a person. One in a message's To or Cc (an employee who put their dropbox
   * in Cc to log a mail) must not be copied into an answer, where every recipient would see it.
   */
  postroomDomains: string[];
}

/** What counts as the user's own, for the user `ownerId`. */
export async function ownAddresses(store: Store, ownerId: ObjectId, gatewayDomain: string | undefined): Promise<OwnAddresses> {
  const [user, accounts] = await Promise.all([
    store.models.User.findById(ownerId, { email: 1, dropboxToken: 1 }).lean(),
    store.models.MailAccount.find({ ownerId }, { email: 1, forwardingAddress: 1 }).lean(),
  ]);
  const addresses = accounts.flatMap((account) => [account.email, account.forwardingAddress]);
  if (user?.email) addresses.push(user.email);
  if (user?.dropboxToken && gatewayDomain) addresses.push(dropboxAddress(user.dropboxToken, gatewayDomain));
  return { addresses: addresses.filter(Boolean), postroomDomains: gatewayDomain ? [gatewayDomain.toLowerCase()] : [] };
}
