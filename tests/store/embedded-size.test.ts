import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { ingest } from '../../gateway/mail/ingest';
import { silentLogger } from '../../gateway/core/log';
import { warnIfEmbeddedStoreOutgrown, type Store } from '../../gateway/store';
import type { EmbeddedStore } from '../../gateway/store/embedded-ferretdb';
import { captureLog } from '../support/log';
import { openTestStore } from '../support/store';

/**
 * An operator who kept `npm start`'s embedded store while the business's mail
 * piled up sees inbox pages take seconds; the start says why and what to do.
 */
describe('the embedded store outgrown', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  const accountId = new mongoose.Types.ObjectId();
  const deliver = (n: number) =>
    ingest({ store, log: silentLogger }, {
      raw: Buffer.from(`From: alice@example.org\r\nTo: bob@acme.test\r\nSubject: ${n}\r\nMessage-ID: <size-${n}@example.org>\r\n\r\nhello\r\n`),
      mailboxKey: accountId.toString(), accountId, ownerId: new mongoose.Types.ObjectId(), source: { kind: 'imap' },
    });

  before(async () => {
    store = await openTestStore('embedded_size');
  });
  after(async () => store.drop());

  it('warns once at start, naming the count and MongoDB 7, when the embedded store holds more mail than it serves well', async () => {
    const embedded: Store = { ...store, embedded: {} as EmbeddedStore };
    for (let n = 0; n < 3; n++) await deliver(n);
    const quiet = captureLog('info');
    assert.equal(await warnIfEmbeddedStoreOutgrown(embedded, quiet.log, 3), 3);
    assert.equal(quiet.lines.length, 0, 'at the limit: nothing to say');

    await deliver(3);
    const loud = captureLog('info');
    assert.equal(await warnIfEmbeddedStoreOutgrown(embedded, loud.log, 3), 4);
    assert.equal(loud.lines.length, 1);
    assert.equal(loud.lines[0].level, 40);
    assert.match(String(loud.lines[0].msg), /^the embedded store holds 4 messages; .*pages take seconds at this size.*Run Postroom on MongoDB 7 for a business's mail: stop it, copy this store with npm run cli -- copy-store --to <mongodb uri>, then start with MONGODB_URI set to it$/);

    const onMongo = captureLog('info');
    assert.equal(await warnIfEmbeddedStoreOutgrown(store, onMongo.log, 3), null, 'a store given by MONGODB_URI is not counted');
    assert.equal(onMongo.lines.length, 0);
  });
});
