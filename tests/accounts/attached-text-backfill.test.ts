import { strict as assert } from 'node:assert';
import { backfillAttachedText, listMessages, type PublicUser } from '../../gateway/accounts';
import { parseObjectId } from '../../gateway/accounts/ids';
import { captureLog } from '../support/log';
import { openTestStore } from '../support/store';
import * as wild from '../fixtures/wild';
import { makeAccount, makeUser, storeMessage, type TestStore } from '../admin/fixtures';

/**
 * A store upgraded from the release before search read attached messages:
 * its mail has no attachedText (the field did not exist), so a mail
 * forwarded as an attachment before the upgrade was not found by what the
 * customer wrote in it, while the same mail forwarded after it was.
 */
describe('accounts: mail stored before attachedText existed', () => {
  let store: TestStore;
  let bob: PublicUser;
  let account: { id: string };

  before(async function () {
    this.timeout(60_000);
    store = await openTestStore('attached_text_backfill');
    bob = await makeUser(store, 'bob@acme.test');
    account = await makeAccount(store, bob, 'bob@acme.test');
  });
  after(async () => store.drop());

  it('is made searchable by what its attached messages say, once', async () => {
    const chain = await storeMessage(store, { raw: wild.forwardedAsAttachment().raw }, { ownerId: bob.id, accountId: account.id });
    const inline = await storeMessage(store, { raw: wild.forwardedInline().raw }, { ownerId: bob.id, accountId: account.id });
    const plain = await storeMessage(store, { raw: Buffer.from('From: alice@customer.test\r\nTo: bob@acme.test\r\nSubject: Plain\r\n\r\nNothing attached.\r\n') }, { ownerId: bob.id, accountId: account.id });
    // As the previous release wrote them.
    await store.models.Message.collection.updateMany({}, { $unset: { attachedText: '' } });
    const viewer = { id: parseObjectId(bob.id)!, role: 'employee' };
    const found = async (q: string) => (await listMessages(store, viewer, { q })).messages.map((m) => m.id).sort();
    assert.deepEqual(await found('arrived damaged'), [], 'not found before');

    const capture = captureLog('info');
    assert.equal(await backfillAttachedText(store, capture.log), 2, 'the two mails with an attached message are read');
    assert.deepEqual(await found('arrived damaged'), [chain.id]);
    assert.deepEqual(await found('40 units of item 7'), [chain.id, inline.id].sort(), 'a chain of forwards included');
    assert.equal(await store.models.Message.collection.countDocuments({ _id: parseObjectId(plain.id)!, attachedText: { $exists: true } }), 0, 'mail without attached messages is not rewritten');
    assert.equal(await backfillAttachedText(store, capture.log), 0, 'nothing is read twice');
    assert.ok((await store.models.BusinessSettings.findById('business').lean())?.attachedTextBackfilledAt, 'done: later starts skip the scan');
  });
});
