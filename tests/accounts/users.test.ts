import { strict as assert } from 'node:assert';
import {
  acceptInvite, authenticateUser, createApiToken, createMailAccount, createUser, ensureFirstAdmin, findInvite, hashPassword, inviteUser,
  resolveApiToken, revokeApiToken, setUserDisabled, setUserRole, verifyPassword,
} from '../../gateway/accounts';
import { createLogger } from '../../gateway/core/log';
import { openTestStore } from '../support/store';

type TestStore = Awaited<ReturnType<typeof openTestStore>>;
const PASSWORD = 'correct-horse-battery-staple';

describe('accounts: users, passwords, invites, tokens', () => {
  let store: TestStore;
  before(async () => {
    store = await openTestStore('accounts_users');
  });
  after(async () => store.drop());

  it('hashes with argon2id and verifies; malformed hashes never throw', async () => {
    const hash = await hashPassword(PASSWORD);
    assert.match(hash, /^\$argon2id\$v=19\$/);
    assert.equal(await verifyPassword(hash, PASSWORD), true);
    assert.equal(await verifyPassword(hash, 'wrong'), false);
    assert.equal(await verifyPassword('not-a-hash', PASSWORD), false);
    assert.equal(await verifyPassword('', PASSWORD), false);
  });

  it('creates users (lower-cased, unique, audited) and validates input all at once', async () => {
    const user = await createUser(store, { email: 'Alice@Acme.test', password: PASSWORD, role: 'admin' });
    assert.equal(user.email, 'alice@acme.test');
    assert.equal(user.role, 'admin');
    const doc = (await store.models.User.findById(user.id).lean())!;
    assert.match(doc.passwordHash, /^\$argon2id\$/);
    assert.match(doc.dropboxToken, /^[a-z2-9]{16}$/);
    assert.ok(await store.models.AuditEvent.exists({ action: 'user.create', targetId: user.id }));
    await assert.rejects(createUser(store, { email: 'ALICE@acme.test', password: PASSWORD }), { code: 'EMAIL_TAKEN', status: 409 });
    await assert.rejects(createUser(store, { email: 'bad', password: 'short' }), (err: { code: string; fields: Record<string, string> }) => {
      assert.equal(err.code, 'VALIDATION_FAILED');
      assert.deepEqual(Object.keys(err.fields).sort(), ['email', 'password']);
      return true;
    });
    await assert.rejects(createUser(store, { email: 'x@acme.test', password: PASSWORD, role: 'root' }), { code: 'VALIDATION_FAILED' });
  });

  it('authenticates only enabled users with the right password', async () => {
    const user = await createUser(store, { email: 'bob@acme.test', password: PASSWORD });
    assert.equal((await authenticateUser(store, 'BOB@acme.test', PASSWORD))?.id, user.id);
    assert.equal(await authenticateUser(store, 'bob@acme.test', 'nope'), null);
    assert.equal(await authenticateUser(store, 'ghost@acme.test', PASSWORD), null);
    await store.models.User.updateOne({ _id: user.id }, { $set: { disabled: true } });
    assert.equal(await authenticateUser(store, 'bob@acme.test', PASSWORD), null);
    await store.models.User.updateOne({ _id: user.id }, { $set: { disabled: false } });
  });

  it('keeps one enabled admin: the last one cannot be demoted or disabled, nor can anyone disable themselves', async () => {
    const alice = (await store.models.User.findOne({ email: 'alice@acme.test' }).lean())!;
    await assert.rejects(setUserRole(store, alice._id, 'employee', {}), { code: 'LAST_ADMIN' });
    await assert.rejects(setUserDisabled(store, alice._id, true, { id: alice._id }), { code: 'CANNOT_DISABLE_SELF' });
    await assert.rejects(setUserDisabled(store, alice._id, true, {}), { code: 'LAST_ADMIN' });
    await assert.rejects(setUserRole(store, 'ffffffffffffffffffffffff', 'admin', {}), { code: 'NOT_FOUND' });
  });

  it('invites: one-time token stored hashed, expires, accepted once', async () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const invite = await inviteUser(store, { email: 'new@acme.test', role: 'employee' }, {}, { now, ttlMs: 3600_000 });
    assert.equal((await findInvite(store, invite.token, now))?.email, 'new@acme.test');
    assert.equal(await findInvite(store, invite.token, new Date(now.getTime() + 3600_001)), null, 'expired');
    assert.equal(await findInvite(store, 'x'.repeat(32), now), null);
    assert.equal(await authenticateUser(store, 'new@acme.test', ''), null, 'no password until accepted');
    await acceptInvite(store, invite.token, { password: 'a-brand-new-password', name: 'New' }, now);
    assert.ok(await authenticateUser(store, 'new@acme.test', 'a-brand-new-password'));
    assert.equal(await findInvite(store, invite.token, now), null, 'used');
    await assert.rejects(acceptInvite(store, invite.token, { password: 'another-long-password' }, now), { code: 'INVITE_INVALID' });
  });

  it('invites: a link sent by several forms at the same moment sets one password, on the embedded store too', async function () {
    this.timeout(120_000);
    // FerretDB applies a conditional update as a read, then a write: racers matched the unused token (about one round in eight).
    for (let round = 0; round < 16; round++) {
      const invite = await inviteUser(store, { email: `raced${round}@acme.test`, role: 'employee' }, {});
      const outcomes = await Promise.allSettled([0, 1, 2, 3].map((i) => acceptInvite(store, invite.token, { password: `raced-password-${round}-${i}` })));
      const accepted = outcomes.flatMap((outcome, i) => (outcome.status === 'fulfilled' ? [i] : []));
      assert.equal(accepted.length, 1, `round ${round}: ${accepted.length} forms set a password with one link`);
      for (const outcome of outcomes) if (outcome.status === 'rejected') assert.equal((outcome.reason as { code?: string }).code, 'INVITE_INVALID');
      assert.ok(await authenticateUser(store, `raced${round}@acme.test`, `raced-password-${round}-${accepted[0]}`), 'the password that won is the one kept');
    }
  });

  it('API tokens: resolve by hash, revoke, and stop working for disabled users', async () => {
    const { token, view } = await createApiToken(store, 'bob@acme.test', { name: 'crm' }, {});
    assert.match(token, /^pr_[A-Za-z0-9_-]{43}$/);
    const row = (await store.models.ApiToken.findById(view.id).lean())!;
    assert.ok(!JSON.stringify(row).includes(token.slice(3)), 'only the hash is stored');
    assert.equal((await resolveApiToken(store, token))?.email, 'bob@acme.test');
    assert.equal(await resolveApiToken(store, token + 'x'), null);
    assert.equal(await resolveApiToken(store, 'nonsense'), null);
    const second = await createApiToken(store, 'bob@acme.test', {}, {});
    await revokeApiToken(store, view.id, {});
    assert.equal(await resolveApiToken(store, token), null);
    const bob = (await store.models.User.findOne({ email: 'bob@acme.test' }).lean())!;
    await setUserDisabled(store, bob._id, true, {});
    assert.equal(await resolveApiToken(store, second.token), null);
    assert.ok((await store.models.ApiToken.findById(second.view.id).lean())!.revokedAt, 'disabling revokes tokens');
    await setUserDisabled(store, bob._id, false, {});
    await assert.rejects(createApiToken(store, 'ghost@acme.test', {}, {}), { code: 'NOT_FOUND' });
  });

  it('ensureFirstAdmin creates the admin once from ADMIN_EMAIL/ADMIN_PASSWORD, then does nothing', async () => {
    const fresh = await openTestStore('accounts_first_admin');
    try {
      const log = createLogger({ level: 'silent' });
      assert.equal(await ensureFirstAdmin(fresh, {}, log), 'missing');
      assert.equal(await ensureFirstAdmin(fresh, { email: 'IT@acme.test', password: PASSWORD }, log), 'created');
      assert.equal(await ensureFirstAdmin(fresh, { email: 'it@acme.test', password: 'changed-password-x' }, log), 'exists');
      assert.ok(await authenticateUser(fresh, 'it@acme.test', PASSWORD), 'the password is only read at creation');
      assert.equal((await fresh.models.User.findOne({ email: 'it@acme.test' }).lean())!.role, 'admin');
    } finally {
      await fresh.drop();
    }
  });

  it('createMailAccount: per-user unique mailbox, unique forwarding address', async () => {
    const bob = (await store.models.User.findOne({ email: 'bob@acme.test' }).lean())!;
    const alice = (await store.models.User.findOne({ email: 'alice@acme.test' }).lean())!;
    const first = await createMailAccount(store, bob._id, 'shared@acme.test', { gatewayDomain: 'in.test' });
    await assert.rejects(createMailAccount(store, bob._id, 'Shared@acme.test', { gatewayDomain: 'in.test' }), { code: 'ACCOUNT_EXISTS', status: 409 });
    const other = await createMailAccount(store, alice._id, 'shared@acme.test', { gatewayDomain: 'in.test' });
    assert.notEqual(first.forwardingAddress, other.forwardingAddress, 'two users may add the same mailbox, each with its own address');
    await assert.rejects(createMailAccount(store, 'not-an-id', 'x@acme.test', { gatewayDomain: 'in.test' }), { code: 'NOT_FOUND' });
  });
});
