/**
 * What an employee sees of everyday mail from real mailers
 * (tests/fixtures/wild) on the message page: encrypted mail says so instead
 * of "no text", signed mail is readable and marked signed, and a bounce, a
 * read receipt or a vacation reply is labelled for what it is, with why it
 * is not linked to the customer.
 */
import { strict as assert } from 'node:assert';
import type { PublicUser } from '../../gateway/accounts';
import * as wild from '../fixtures/wild';
import { openTestStore } from '../support/store';
import { buildApp, makeAccount, makeUser, signIn, storeMessage, type SignedIn, type TestApp, type TestStore } from './fixtures';

describe('admin: mail as it arrives from the wild', () => {
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;
  let account: { id: string };
  let session: SignedIn;

  before(async function () {
    this.timeout(60_000);
    store = await openTestStore('admin_wild');
    testApp = buildApp(store);
    bob = await makeUser(store, 'bob@acme.test');
    account = await makeAccount(store, bob, 'bob@acme.test');
    session = await signIn(testApp.app, 'bob@acme.test');
  });
  after(async () => store.drop());

  async function page(raw: Buffer): Promise<{ id: string; text: string }> {
    const { id } = await storeMessage(store, { raw }, { ownerId: bob.id, accountId: account.id });
    return { id, text: (await session.agent.get(`/messages/${id}`).expect(200)).text };
  }
  const element = (html: string, id: string) => new RegExp(`id="${id}"[^>]*>([\\s\\S]*?)</(?:span|div|p)>`).exec(html)?.[1]?.replace(/<[^>]+>/g, '').replace(/\s+/g, ' ').trim() ?? null;

  it('says an S/MIME or PGP/MIME encrypted message cannot be read here, and where it can, instead of "no text"', async () => {
    for (const [message, scheme] of [[wild.smimeEncrypted(), 'S/MIME'], [wild.pgpEncrypted(), 'OpenPGP']] as const) {
      const { id, text } = await page(message.raw);
      assert.doesNotMatch(text, /This message has no text/, scheme);
      assert.match(element(text, 'secure-mime-note') ?? '', new RegExp(`This message is encrypted with ${scheme}\\. Only a mail program holding the recipient's private key can open it`));
      assert.match(text, new RegExp(`id="secure-mime-note"[\\s\\S]*href="/messages/${id}/raw" download>download the \\.eml</a>`));
      assert.equal(element(text, 'secure-mime-badge'), `encrypted · ${scheme}`);
    }
  });

  it('shows the text of signed mail, marked signed (not verified), with the signature as a file', async () => {
    const smime = await page(wild.smimeSigned().raw);
    assert.equal(element(smime.text, 'secure-mime-badge'), 'signed · S/MIME');
    assert.match(smime.text, /Please find our signed terms below: payment within 30 days\./);
    assert.match(smime.text, /download>smime\.p7s<\/a>/);
    assert.equal(element(smime.text, 'secure-mime-note'), null);
    const pgp = await page(wild.pgpSigned().raw);
    assert.equal(element(pgp.text, 'secure-mime-badge'), 'signed · OpenPGP');
    assert.match(element(pgp.text, 'text-body') ?? '', /The checksums of release 2\.4 are on the download page\./);
    const plain = await page(wild.outlookTnef().raw);
    assert.equal(element(plain.text, 'secure-mime-badge'), null);
  });

  it('labels bounces, read receipts, vacation replies and newsletters, and says why they are not linked', async () => {
    const expected: Array<[Buffer, string, RegExp]> = [
      [wild.exchangeNdr().raw, 'delivery report', /^Not linked: this is a delivery report \(a bounce\) \(Content-Type: multipart\/report; report-type=delivery-status\)\./],
      [wild.postfixBounce().raw, 'delivery report', /^Not linked: this is a delivery report \(a bounce\)/],
      [wild.readReceipt().raw, 'read receipt', /^Not linked: this is a read receipt/],
      [wild.vacationReply('x-autoreply').raw, 'automatic reply', /^Not linked: this is an automatic reply \(X-Autoreply: yes\)\. Automated and bulk mail is kept but not linked/],
      [wild.vacationReply('auto-submitted').raw, 'automatic reply', /^Not linked: this is an automatic reply \(Auto-Submitted: auto-replied\)/],
      [wild.newsletter().raw, 'mailing list', /^Not linked: this is mailing-list mail \(List-Id\)/],
    ];
    for (const [raw, label, why] of expected) {
      const { text } = await page(raw);
      assert.equal(element(text, 'automated'), label);
      assert.match(element(text, 'not-linked-automated') ?? '', why, label);
    }
    const person = await page(wild.outlookInvite().raw);
    assert.equal(element(person.text, 'automated'), null);
    assert.equal(element(person.text, 'not-linked-automated'), null);
    assert.match(person.text, /Not linked to any customer, contact or lead\./);
  });
});
