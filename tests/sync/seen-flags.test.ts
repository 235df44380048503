import { strict as assert } from 'node:assert';
import { ImapFlow } from 'imapflow';
import mongoose from 'mongoose';
import { listMessages, setReadState } from '../../gateway/accounts';
import { silentLogger } from '../../gateway/core/log';
import { ingest, type Associator } from '../../gateway/mail/ingest';
import { startSyncer, type Syncer } from '../../gateway/sync/schedule';
import { createImapAccount, makeMessage, testConfig, testSecrets, useSyncWorld } from './helpers';

/**
 * Mail the owner has already read in their mailbox (\Seen, RFC 9051 §2.3.2) arrives read; mail they have not
 * arrives unread; what is in the Sent folder is theirs and read. The syncer reads the flags in the FETCH it
 * already makes (BODY.PEEK[], so the server's flags stay as they were) and writes the state with the document.
 */
describe('IMAP sync: \\Seen in the mailbox is read in Postroom', function () {
  this.timeout(120_000);
  const world = useSyncWorld('sync_seen_flags');
  let syncer: Syncer;
  before(() => {
    syncer = startSyncer({ config: testConfig(), log: silentLogger, store: world.store, secretBox: testSecrets, associate: null, schedule: false });
    world.syncers.push(syncer);
  });

  it('stores \\Seen mail read and the rest unread, leaves the server\'s flags alone, and reads a forwarded copy found \\Seen', async () => {
    const { store, dovecot } = world;
    const account = await createImapAccount(store, dovecot);
    const now = Math.floor(Date.now() / 1000) * 1000;
    const seen = makeMessage({ to: account.email, subject: 'Already read on the phone', date: new Date(now - 3 * 60_000) });
    const fresh = makeMessage({ to: account.email, subject: 'Not read yet', date: new Date(now - 2 * 60_000) });
    const flagged = makeMessage({ to: account.email, subject: 'Flagged, not read', date: new Date(now - 60_000) });
    const sentByBob = makeMessage({ to: 'alice@customer.test', subject: 'Sent by Bob', date: new Date(now - 4 * 60_000) });
    await dovecot.append(account.email, 'INBOX', seen.raw, { date: seen.date, flags: ['\\Seen'] });
    await dovecot.append(account.email, 'INBOX', fresh.raw, { date: fresh.date });
    await dovecot.append(account.email, 'INBOX', flagged.raw, { date: flagged.date, flags: ['\\Flagged'] });
    // Some clients file sent mail without \Seen: it is still not news to its sender.
    await dovecot.append(account.email, 'Sent', sentByBob.raw, { date: sentByBob.date });
    // Forwarded first (unread), then found read in the mailbox by the sync.
    const forwardedThenSeen = makeMessage({ to: account.email, subject: 'Forwarded, then read in the mailbox', date: new Date(now - 5 * 60_000) });
    const ownerId = new mongoose.Types.ObjectId(account.ownerId);
    const accountId = new mongoose.Types.ObjectId(account.id);
    await ingest({ store, log: silentLogger }, { raw: Buffer.from(forwardedThenSeen.raw), mailboxKey: account.id, accountId, ownerId, source: { kind: 'forward' } });
    assert.equal((await store.models.Message.findOne({ messageId: forwardedThenSeen.messageId }).lean())?.unread, true);
    await dovecot.append(account.email, 'INBOX', forwardedThenSeen.raw, { date: forwardedThenSeen.date, flags: ['\\Seen'] });

    const report = await syncer.runPassNow();
    assert.equal(report.accounts.find((a) => a.accountId === account.id)?.outcome, 'synced');
    const page = await listMessages(store, { id: ownerId, role: 'employee' }, {});
    const readBySubject = Object.fromEntries(page.messages.map((m) => [m.subject, m.read]));
    assert.deepEqual(readBySubject, {
      'Already read on the phone': true,
      'Not read yet': false,
      'Flagged, not read': false,
      'Sent by Bob': true,
      'Forwarded, then read in the mailbox': true,
    });
    const unread = await listMessages(store, { id: ownerId, role: 'employee' }, { unread: 'true' });
    assert.deepEqual(unread.messages.map((m) => m.subject), ['Flagged, not read', 'Not read yet']);

    // The sync examined the mailbox read-only: what was unread there is still unread there.
    const client = new ImapFlow({ ...dovecot.clientOptions(account.email, account.password), logger: false });
    await client.connect();
    try {
      await client.mailboxOpen('INBOX', { readOnly: true });
      const seenThere: boolean[] = [];
      for await (const message of client.fetch('1:*', { uid: true, flags: true }, { uid: true })) seenThere.push(message.flags?.has('\\Seen') ?? false);
      assert.deepEqual(seenThere, [true, false, false, true]);
    } finally {
      await client.logout();
    }
  });

  it('mail read in the mailbox after it was stored is read here at the next pass; un-reading it there changes nothing here', async () => {
    const { store, dovecot } = world;
    const account = await createImapAccount(store, dovecot);
    const ownerId = new mongoose.Types.ObjectId(account.ownerId);
    const viewer = { id: ownerId, role: 'employee' };
    const now = Math.floor(Date.now() / 1000) * 1000;
    const subjects = ['Read later on the phone', 'Still unread everywhere', 'Read here, unread there', 'Read there, then un-read there'];
    for (const [i, subject] of subjects.entries()) {
      const message = makeMessage({ to: account.email, subject, date: new Date(now - (10 - i) * 60_000) });
      await dovecot.append(account.email, 'INBOX', message.raw, { date: message.date, flags: i === 3 ? ['\\Seen'] : [] });
    }
    assert.equal((await syncer.runPassNow()).accounts.find((a) => a.accountId === account.id)?.outcome, 'synced');
    const readState = async () => Object.fromEntries((await listMessages(store, viewer, {})).messages.map((m) => [m.subject, m.read]));
    assert.deepEqual(await readState(), {
      'Read later on the phone': false, 'Still unread everywhere': false, 'Read here, unread there': false, 'Read there, then un-read there': true,
    });
    const idOf = async (subject: string) => (await store.models.Message.findOne({ accountId: account.id, subject }).lean())!._id.toString();
    await setReadState(store, viewer, [await idOf('Read here, unread there')], true);

    // On the phone: one message read, another marked unread again.
    const client = new ImapFlow({ ...dovecot.clientOptions(account.email, account.password), logger: false });
    await client.connect();
    try {
      await client.mailboxOpen('INBOX');
      await client.messageFlagsAdd({ subject: 'Read later on the phone' }, ['\\Seen']);
      await client.messageFlagsRemove({ subject: 'Read there, then un-read there' }, ['\\Seen']);
    } finally {
      await client.logout();
    }

    const second = (await syncer.runPassNow()).accounts.find((a) => a.accountId === account.id); assert.equal(second?.outcome, 'synced', JSON.stringify(second));
    assert.deepEqual(await readState(), {
      'Read later on the phone': true,
      'Still unread everywhere': false,
      'Read here, unread there': true,
      'Read there, then un-read there': true,
    });
    const saved = await store.models.FolderState.findOne({ accountId: account.id, folder: 'INBOX' }).lean();
    assert.match(saved?.highestModSeq ?? '', /^\d+$/, 'the mod-sequence read up to is kept for the next pass');

    // Read on the phone again later, with no new mail: the next pass still finds it.
    const later = new ImapFlow({ ...dovecot.clientOptions(account.email, account.password), logger: false });
    await later.connect();
    try {
      await later.mailboxOpen('INBOX');
      await later.messageFlagsAdd({ subject: 'Still unread everywhere' }, ['\\Seen']);
    } finally {
      await later.logout();
    }
    await syncer.runPassNow();
    assert.equal((await readState())['Still unread everywhere'], true);
  });

  it('"Mark all as read" on a phone over many messages is caught up newest first over several passes, each kept short', async () => {
    const { store, dovecot } = world;
    const account = await createImapAccount(store, dovecot);
    const ownerId = new mongoose.Types.ObjectId(account.ownerId);
    const now = Math.floor(Date.now() / 1000) * 1000;
    for (let i = 0; i < 120; i += 1) {
      const message = makeMessage({ to: account.email, subject: `Newsletter ${String(i).padStart(3, '0')}`, date: new Date(now - (200 - i) * 60_000) });
      await dovecot.append(account.email, 'INBOX', message.raw, { date: message.date });
    }
    // A pass spends no time on it beyond one write (the embedded store writes a document at a time).
    const hurried = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false, options: { seenCatchUpMs: 0 } });
    world.syncers.push(hurried);
    assert.equal((await hurried.runPassNow()).accounts.find((a) => a.accountId === account.id)?.outcome, 'synced');
    const unread = () => store.models.Message.find({ ownerId, unread: true }).select({ subject: 1 }).lean().then((rows) => rows.map((r) => r.subject!).sort());
    assert.equal((await unread()).length, 120);
    const saved = async () => (await store.models.FolderState.findOne({ accountId: account.id, folder: 'INBOX' }).lean())!.highestModSeq;
    const before = await saved();

    const phone = new ImapFlow({ ...dovecot.clientOptions(account.email, account.password), logger: false });
    await phone.connect();
    try {
      await phone.mailboxOpen('INBOX');
      await phone.messageFlagsAdd('1:*', ['\\Seen']);
    } finally {
      await phone.logout();
    }
    await hurried.runPassNow();
    const left = await unread();
    assert.equal(left.length, 70, 'one write of 50 this pass');
    assert.equal(left.at(-1), 'Newsletter 069', 'the newest were read first');
    assert.equal(await saved(), before, 'the mod-sequence stays until all of it is caught up');
    await hurried.runPassNow();
    await hurried.runPassNow();
    assert.deepEqual(await unread(), []);
    assert.notEqual(await saved(), before, 'caught up: the next passes start from the new mod-sequence');
  });

  it('mail read in the mailbox while the pass was storing it is read at the next pass', async () => {
    const { store, dovecot } = world;
    const account = await createImapAccount(store, dovecot);
    const ownerId = new mongoose.Types.ObjectId(account.ownerId);
    const viewer = { id: ownerId, role: 'employee' };
    const now = Math.floor(Date.now() / 1000) * 1000;
    const first = makeMessage({ to: account.email, subject: 'Already there', date: new Date(now - 10 * 60_000) });
    await dovecot.append(account.email, 'INBOX', first.raw, { date: first.date });
    // A phone: it reads "Read on the phone meanwhile" right after the sync stored it, while the sync's pass goes on.
    const phone = new ImapFlow({ ...dovecot.clientOptions(account.email, account.password), logger: false });
    await phone.connect();
    await phone.mailboxOpen('INBOX');
    const readOnThePhone: Associator = {
      plan: async () => ({ objectIds: [] }),
      commit: async (message) => {
        if (message.subject !== 'Read on the phone meanwhile') return;
        await phone.noop(); // the phone's session learns of the new mail
        assert.equal(await phone.messageFlagsAdd({ subject: 'Read on the phone meanwhile' }, ['\\Seen']), true);
      },
      repair: async () => undefined,
    };
    const phoneSyncer = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: readOnThePhone, schedule: false, options: { batchSize: 1 } });
    world.syncers.push(phoneSyncer);
    try {
      assert.equal((await phoneSyncer.runPassNow()).accounts.find((a) => a.accountId === account.id)?.outcome, 'synced');
      // Three new mails, one per batch: the third FETCH is sent once the first mail is stored, and read on the phone.
      for (const [i, subject] of ['Read on the phone meanwhile', 'Second', 'Third'].entries()) {
        const message = makeMessage({ to: account.email, subject, date: new Date(now - (5 - i) * 60_000) });
        await dovecot.append(account.email, 'INBOX', message.raw, { date: message.date });
      }
      assert.equal((await phoneSyncer.runPassNow()).accounts.find((a) => a.accountId === account.id)?.outcome, 'synced');
      // The session heard of that \Seen (an unsolicited FETCH with its MODSEQ) while storing the rest; the next pass reads it.
      await phoneSyncer.runPassNow();
      const read = Object.fromEntries((await listMessages(store, viewer, {})).messages.map((m) => [m.subject, m.read]));
      assert.deepEqual(read, { 'Already there': false, 'Read on the phone meanwhile': true, Second: false, Third: false });
    } finally {
      await phone.logout();
    }
  });
});
