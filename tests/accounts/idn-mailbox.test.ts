import { strict as assert } from 'node:assert';
import { createMailAccount, createUser } from '../../gateway/accounts';
import { isRequesterMailbox } from '../../gateway/mail/confirmations';
import { openTestStore } from '../support/store';

describe('accounts: a mailbox on an IDN domain (münchen.de)', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  before(async () => {
    store = await openTestStore('accounts_idn_mailbox');
  });
  after(async () => store.drop());

  it('is added as typed in Unicode, kept in the A-label form, and one mailbox whichever form is typed', async () => {
    const bob = await createUser(store, { email: 'bob@acme.test', password: 'correct-horse-battery-staple' });
    const account = await createMailAccount(store, bob.id, 'Info@München.de', { gatewayDomain: 'postroom.localhost' });
    assert.equal(account.email, 'info@xn--mnchen-3ya.de');
    assert.match(account.forwardingAddress, /@postroom\.localhost$/);
    await assert.rejects(createMailAccount(store, bob.id, 'info@xn--mnchen-3ya.de', { gatewayDomain: 'postroom.localhost' }), /exists|already/i);
  });

  it('recognises a forwarding request from the mailbox when the provider names it in Unicode', () => {
    assert.ok(isRequesterMailbox('info@münchen.de', 'info@xn--mnchen-3ya.de'));
  });
});
