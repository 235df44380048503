import { strict as assert } from 'node:assert';
import { AppError } from '../../gateway/core/errors';
import { createBusinessPolicyLoader } from '../../gateway/mail/business-policy';
import { createRecipientResolver, splitRecipient } from '../../gateway/mail/recipients';
import type { Store } from '../../gateway/store';
import { createEmployeeAccount, GATEWAY_DOMAIN } from '../support/gateway';
import { openTestStore } from '../support/store';

describe('recipient resolution', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let bob: Awaited<ReturnType<typeof createEmployeeAccount>>;
  let clock = 1_000_000;
  const now = () => clock;

  before(async () => {
    store = await openTestStore('recipients');
    bob = await createEmployeeAccount(store, 'bob@acme.test');
  });
  after(async () => store.drop());

  it('splits at the last @ and lower-cases', () => {
    assert.deepEqual(splitRecipient('"odd@local"@GW.Test.'), { local: '"odd@local"', domain: 'gw.test' });
    assert.deepEqual(splitRecipient('postmaster'), { local: 'postmaster', domain: '' });
  });

  it('resolves a forwarding address (any case) to its account', async () => {
    const resolver = createRecipientResolver({ store, gatewayDomain: GATEWAY_DOMAIN, now });
    const found = await resolver.resolve(bob.forwardingAddress.toUpperCase());
    assert.equal(found.kind, 'account');
    if (found.kind !== 'account') return;
    assert.equal(found.accountId.toString(), bob.accountId.toString());
    assert.equal(found.ownerId.toString(), bob.userId.toString());
    assert.equal(found.mailboxKey, bob.accountId.toString());
    assert.equal(found.email, 'bob@acme.test');
    assert.equal(found.domain, 'acme.test');
  });

  it('resolves a dropbox address to its user, with the domains of their accounts', async () => {
    const resolver = createRecipientResolver({ store, gatewayDomain: GATEWAY_DOMAIN, now });
    const found = await resolver.resolve(bob.dropboxAddress);
    assert.equal(found.kind, 'dropbox');
    if (found.kind !== 'dropbox') return;
    assert.equal(found.mailboxKey, `dropbox:${bob.userId.toString()}`);
    assert.deepEqual(found.domains, ['acme.test']);
  });

  it('tells unknown, foreign and look-alike addresses apart', async () => {
    const resolver = createRecipientResolver({ store, gatewayDomain: GATEWAY_DOMAIN, now });
    assert.equal((await resolver.resolve(`nobody.aaaaaaaaaaaaaaaa@${GATEWAY_DOMAIN}`)).kind, 'unknown');
    assert.equal((await resolver.resolve(`dropbox.@${GATEWAY_DOMAIN}`)).kind, 'unknown');
    assert.equal((await resolver.resolve(`dropbox.nosuchtoken@${GATEWAY_DOMAIN}`)).kind, 'unknown');
    assert.equal((await resolver.resolve('bob@acme.test')).kind, 'foreign');
    assert.equal((await resolver.resolve(`${bob.forwardingAddress}.evil.test`)).kind, 'foreign');
    assert.equal((await resolver.resolve('postmaster@elsewhere.test')).kind, 'foreign');
  });

  it('accepts postmaster (RFC 5321 §4.5.1), qualified or not, into the first admin\'s dropbox', async () => {
    const resolver = createRecipientResolver({ store, gatewayDomain: GATEWAY_DOMAIN, now });
    assert.equal((await resolver.resolve(`postmaster@${GATEWAY_DOMAIN}`)).kind, 'unknown', 'no admin yet: nobody to read it');
    resolver.clear();
    const admin = await store.models.User.create({ email: 'it@acme.test', role: 'admin', dropboxToken: 'admintoken1' });
    for (const address of [`Postmaster@${GATEWAY_DOMAIN.toUpperCase()}`, 'postmaster']) {
      const found = await resolver.resolve(address);
      assert.equal(found.kind, 'dropbox', address);
      if (found.kind === 'dropbox') assert.equal(found.mailboxKey, `dropbox:${admin._id.toString()}`);
    }
  });

  it('caches briefly: a disabled account is refused once the entry expires', async () => {
    const resolver = createRecipientResolver({ store, gatewayDomain: GATEWAY_DOMAIN, ttlMs: 3000, now });
    assert.equal((await resolver.resolve(bob.forwardingAddress)).kind, 'account');
    await store.models.MailAccount.updateOne({ _id: bob.accountId }, { $set: { enabled: false } });
    try {
      clock += 2000;
      assert.equal((await resolver.resolve(bob.forwardingAddress)).kind, 'account', 'still cached');
      clock += 1500;
      const refused = await resolver.resolve(bob.forwardingAddress);
      assert.deepEqual([refused.kind, refused.kind === 'disabled' && refused.what], ['disabled', 'account']);
    } finally {
      await store.models.MailAccount.updateOne({ _id: bob.accountId }, { $set: { enabled: true } });
    }
  });

  it('refuses the accounts of a disabled user, and the user\'s dropbox', async () => {
    const resolver = createRecipientResolver({ store, gatewayDomain: GATEWAY_DOMAIN, ttlMs: 0, now });
    await store.models.User.updateOne({ _id: bob.userId }, { $set: { disabled: true } });
    try {
      const account = await resolver.resolve(bob.forwardingAddress);
      assert.deepEqual([account.kind, account.kind === 'disabled' && account.what], ['disabled', 'user']);
      assert.equal((await resolver.resolve(bob.dropboxAddress)).kind, 'disabled');
    } finally {
      await store.models.User.updateOne({ _id: bob.userId }, { $set: { disabled: false } });
    }
  });

  describe('when the store cannot be read', () => {
    function brokenStore(real: Store): Store {
      const fail = () => {
        throw new Error('connection closed');
      };
      const models = { ...real.models, MailAccount: { findOne: fail, find: fail }, User: { findOne: fail, findById: fail } } as unknown as Store['models'];
      return { ...real, models };
    }

    it('uses a recent deliverable entry, and answers STORE_UNAVAILABLE [RCPT01] without one', async () => {
      let failing = false;
      const flaky = new Proxy(store, {
        get: (target, prop) => (prop === 'models' && failing ? brokenStore(store).models : target[prop as keyof Store]),
      });
      const resolver = createRecipientResolver({ store: flaky, gatewayDomain: GATEWAY_DOMAIN, ttlMs: 1000, staleMs: 60000, now });
      assert.equal((await resolver.resolve(bob.forwardingAddress)).kind, 'account');
      assert.equal((await resolver.resolve(`nobody.bbbbbbbbbbbbbbbb@${GATEWAY_DOMAIN}`)).kind, 'unknown');
      failing = true;
      clock += 5000;
      assert.equal((await resolver.resolve(bob.forwardingAddress)).kind, 'account', 'stale but deliverable');
      await assert.rejects(resolver.resolve(`nobody.bbbbbbbbbbbbbbbb@${GATEWAY_DOMAIN}`), (err: unknown) => {
        assert.ok(err instanceof AppError);
        assert.deepEqual([err.code, err.smtpCode, err.enhancedCode, err.tag], ['STORE_UNAVAILABLE', 451, '4.3.0', 'RCPT01']);
        return true;
      }, 'a cached "unknown" is not repeated as a permanent 550 during an outage');
      clock += 120000;
      await assert.rejects(resolver.resolve(bob.forwardingAddress), /Temporary lookup failure/);
    });
  });

  describe('business policy', () => {
    it('uses BUSINESS_DOMAINS and quarantine until settings are saved, then the saved ones', async () => {
      const load = createBusinessPolicyLoader({ store, defaultDomains: ['Acme.test'], ttlMs: 0, now });
      assert.deepEqual(await load(), { domains: ['acme.test'], authPolicy: 'quarantine' });
      await store.models.BusinessSettings.create({ _id: 'business', domains: ['acme.test', 'acme.co.uk'], authPolicy: 'reject' });
      try {
        assert.deepEqual(await load(), { domains: ['acme.test', 'acme.co.uk'], authPolicy: 'reject' });
      } finally {
        await store.models.BusinessSettings.deleteOne({ _id: 'business' });
      }
    });
  });
});
