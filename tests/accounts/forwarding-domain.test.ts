import { strict as assert } from 'node:assert';
import { createMailAccount, createUser, warnForwardingAddressesOffDomain } from '../../gateway/accounts';
import { captureLog } from '../support/log';
import { openTestStore } from '../support/store';

const capture = () => captureLog('info');

describe('accounts: forwarding addresses after GATEWAY_DOMAIN changed', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  before(async () => {
    store = await openTestStore('accounts_forwarding_domain');
  });
  after(async () => store.drop());

  it('says at start how many addresses are on another domain (mail to them is refused), and nothing when all match', async () => {
    const bob = await createUser(store, { email: 'bob@acme.test', password: 'correct-horse-battery-staple' });
    await createMailAccount(store, bob.id, 'bob@acme.test', { gatewayDomain: 'postroom.localhost' });
    await createMailAccount(store, bob.id, 'bob@gmail.test', { gatewayDomain: 'postroom.localhost' });
    await createMailAccount(store, bob.id, 'bob@acme.co.test', { gatewayDomain: 'in.postroom.acme.test' });

    const same = capture();
    assert.equal(await warnForwardingAddressesOffDomain(store, 'IN.postroom.acme.test', same.log), 2);
    assert.equal(same.lines.length, 1);
    assert.equal(same.lines[0].level, 40);
    assert.equal(same.lines[0].msg, '2 forwarding addresses were issued on another domain than GATEWAY_DOMAIN=in.postroom.acme.test: postroom.localhost (2); the gateway refuses mail to them (550 5.7.1 Relaying denied). Set GATEWAY_DOMAIN back, or delete and add those accounts again for new addresses');
    assert.deepEqual(same.lines[0].domains, ['postroom.localhost']);

    await store.models.MailAccount.deleteMany({ forwardingAddress: /@postroom\.localhost$/ });
    const quiet = capture();
    assert.equal(await warnForwardingAddressesOffDomain(store, 'in.postroom.acme.test', quiet.log), 0);
    assert.equal(quiet.lines.length, 0);
  });
});
