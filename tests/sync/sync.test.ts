import { strict as assert } from 'node:assert';
import { ImapFlow } from 'imapflow';
import mongoose from 'mongoose';
import { runCli } from '../../gateway/bin/cli';
import { silentLogger } from '../../gateway/core/log';
import { ingest } from '../../gateway/mail/ingest';
import { getSyncLedger } from '../../gateway/sync/ledger';
import { startSyncer, type Syncer, type SyncerDeps } from '../../gateway/sync/schedule';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';
import { openTestStore, storedRaw } from '../support/store';
import { captureLog, createImapAccount, DAY, makeMessage, testConfig, testSecrets, type TestAccount } from './helpers';

describe('IMAP syncer against Dovecot', function () {
  this.timeout(120_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let dovecot: DovecotServer;
  const syncers: Syncer[] = [];

  before(async () => {
    store = await openTestStore('sync');
    dovecot = await shared('dovecot', () => startDovecot());
  });
  after(async () => {
    await Promise.all(syncers.map((s) => s.stop()));
    await store.drop();
  });

  function syncer(overrides: Partial<SyncerDeps> = {}): Syncer {
    const instance = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false, ...overrides });
    syncers.push(instance);
    return instance;
  }

  const messagesOf = (account: TestAccount) => store.models.Message.find({ accountId: new mongoose.Types.ObjectId(account.id) }).lean();
  const resultFor = (report: Awaited<ReturnType<Syncer['runPassNow']>>, account: TestAccount) => report.accounts.find((a) => a.accountId === account.id);

  describe('a 500-message mailbox', () => {
    let account: TestAccount;
    let inside: ReturnType<typeof makeMessage>[];
    const capture = captureLog('debug');

    before(async () => {
      account = await createImapAccount(store, dovecot);
      const now = Date.now();
      // Oldest first, as a real mailbox: UIDs grow with INTERNALDATE. 200
      // messages 31–89 days old (outside the 30-day window), 300 inside.
      const outside = Array.from({ length: 200 }, (_, i) => makeMessage({ to: account.email, date: new Date(now - (89 - i * 0.29) * DAY) }));
      inside = Array.from({ length: 300 }, (_, i) => makeMessage({ to: account.email, date: new Date(now - (29 - i * 0.09) * DAY) }));
      await dovecot.appendMany(account.email, 'INBOX', [...outside, ...inside].map((m) => ({ raw: m.raw, date: m.date })));
    });

    it('backfills only the messages inside the window, newest first, and records progress', async () => {
      const report = await syncer({ log: capture.log }).runPassNow();
      const result = resultFor(report, account);
      assert.equal(result?.outcome, 'synced', JSON.stringify(result));
      assert.equal(result.stored, 300);

      const stored = await messagesOf(account);
      assert.equal(stored.length, 300);
      assert.deepEqual(new Set(stored.map((m) => m.messageId)), new Set(inside.map((m) => m.messageId)));
      for (const message of stored) {
        assert.equal(message.sources.length, 1);
        assert.equal(message.sources[0].kind, 'imap');
        assert.equal(message.sources[0].folder, 'INBOX');
        assert.ok(message.sources[0].uid > 200, 'only UIDs of the window');
        // receivedAt = INTERNALDATE (second precision on the wire)
        const expected = inside.find((m) => m.messageId === message.messageId)!.date;
        assert.ok(Math.abs(message.receivedAt.getTime() - expected.getTime()) < 1000);
      }

      // Newest first: the newest 100 were stored before the oldest 100.
      const byDate = [...stored].sort((a, b) => b.receivedAt.getTime() - a.receivedAt.getTime());
      const newestStoredLast = Math.max(...byDate.slice(0, 100).map((m) => (m as unknown as { createdAt: Date }).createdAt.getTime()));
      const oldestStoredFirst = Math.min(...byDate.slice(200).map((m) => (m as unknown as { createdAt: Date }).createdAt.getTime()));
      assert.ok(newestStoredLast <= oldestStoredFirst, 'backfill runs newest first');

      const ledger = await getSyncLedger(store, account.id);
      assert.ok(ledger);
      const inbox = ledger.folders.find((f) => f.folder === 'INBOX')!;
      assert.deepEqual(inbox.backfill, { total: 300, done: 300, completed: true, percent: 100 });
      assert.equal(inbox.lastUid, 500);
      assert.equal(inbox.uidNext, 501);
      assert.equal(inbox.messagesOnServer, 500);
      assert.equal(inbox.lag, 0);
      assert.equal(inbox.lastError, '');
      assert.equal(inbox.stalled, false);
      assert.match(inbox.uidValidity, /^\d+$/);
      assert.deepEqual(ledger.folders.map((f) => f.folder), ['INBOX', 'Sent']);
      assert.equal(ledger.status, 'authenticated');
      assert.equal(ledger.lastPassStored, 300);
      assert.ok(ledger.lastSuccessAt);
      assert.deepEqual(ledger.backfill, { total: 300, done: 300, completed: true, percent: 100 });
    });

    it('logs one line per account per pass and never the password', () => {
      const passLines = capture.lines.filter((l) => l.msg === 'imap sync pass' && l.accountId === account.id);
      assert.equal(passLines.length, 1);
      assert.equal(passLines[0].stored, 300);
      assert.equal(typeof passLines[0].ms, 'number');
      assert.equal(passLines[0].folders, 2);
      assert.ok(capture.commands(account.id).length > 0, 'imapflow logged its commands through our logger');
      assert.ok(!capture.text().includes(account.password), 'the password never reaches a log');
      assert.ok(!capture.text().includes(Buffer.from(account.password).toString('base64')));
    });

    it('is read-only: EXAMINE and BODY.PEEK, nothing flagged, moved or deleted', async () => {
      const commands = capture.commands(account.id);
      assert.ok(commands.some((c) => /EXAMINE "?INBOX"?/.test(c)));
      assert.ok(!commands.some((c) => /\b(SELECT|STORE|EXPUNGE|MOVE|COPY|APPEND|DELETE)\b/.test(c)), commands.join('\n'));
      assert.ok(commands.filter((c) => /FETCH/.test(c)).every((c) => !/BODY\[/.test(c)), 'bodies only through BODY.PEEK');

      const client = new ImapFlow({ ...dovecot.clientOptions(account.email, account.password), logger: false });
      await client.connect();
      try {
        await client.mailboxOpen('INBOX', { readOnly: true });
        const flags = await client.fetchAll('1:*', { flags: true });
        assert.equal(flags.length, 500);
        assert.ok(flags.every((m) => !m.flags?.has('\\Seen')), 'no message was marked \\Seen');
      } finally {
        await client.logout();
      }
    });

    it('picks up newly appended messages above the cursor', async () => {
      const fresh = Array.from({ length: 3 }, () => makeMessage({ to: account.email }));
      await dovecot.appendMany(account.email, 'INBOX', fresh.map((m) => ({ raw: m.raw })));
      const report = await syncer().runPassNow();
      assert.equal(resultFor(report, account)?.stored, 3);
      const stored = await messagesOf(account);
      assert.equal(stored.length, 303);
      for (const m of fresh) assert.ok(stored.some((s) => s.messageId === m.messageId));
      const inbox = (await getSyncLedger(store, account.id))!.folders.find((f) => f.folder === 'INBOX')!;
      assert.equal(inbox.lastUid, 503);
      assert.equal(inbox.lastPassStored, 3);
      // What the console shows on the mailbox (counted once per batch, not per message).
      const counters = await store.models.MailAccount.findById(account.id, { messageCount: 1, lastMailAt: 1 }).lean();
      assert.equal(counters?.messageCount, 303);
      assert.ok(counters?.lastMailAt && Date.now() - counters.lastMailAt.getTime() < 60_000);
    });

    it('passes over an unchanged mailbox with one LIST and no EXAMINE or FETCH', async () => {
      const commandLog = captureLog('debug');
      const report = await syncer({ log: commandLog.log }).runPassNow();
      const result = resultFor(report, account)!;
      assert.equal(result.outcome, 'synced');
      assert.equal(result.stored, 0);
      assert.equal(result.unchangedFolders, 2);
      const commands = commandLog.commands(account.id);
      assert.ok(commands.some((c) => /LOGOUT/.test(c)), 'commands of this account were captured');
      const afterLogin = commands.filter((c) => !/^\S+ (ID|AUTHENTICATE|LOGIN|CAPABILITY|NAMESPACE|ENABLE|LOGOUT)\b/.test(c) && /^\S+ [A-Z]/.test(c));
      assert.deepEqual(afterLogin.map((c) => c.split(' ')[1]), ['LIST'], commands.join('\n'));
      assert.ok(!commands.some((c) => /FETCH|EXAMINE|SELECT|SEARCH|STATUS "/.test(c)));
    });
  });

  it('finds the Sent folder by special-use and syncs the folders the user picked', async () => {
    const account = await createImapAccount(store, dovecot, { folders: ['Projects', 'Vanished', 'Clients', 'clients.acme'] });
    const inbox = makeMessage({ to: account.email });
    const sent = [makeMessage({ to: 'carol@customer.test' }), makeMessage({ to: 'dave@customer.test' })];
    const project = makeMessage({ to: account.email, subject: 'Project Acme' });
    const notSent = makeMessage({ to: account.email, subject: 'named like a sent folder' });
    await dovecot.append(account.email, 'INBOX', inbox.raw);
    for (const m of sent) await dovecot.append(account.email, 'Sent', m.raw);
    await dovecot.append(account.email, 'Projects', project.raw);
    await dovecot.append(account.email, 'Sent Items', notSent.raw);
    await dovecot.append(account.email, 'Clients/Acme', makeMessage({ to: account.email }).raw); // 'Clients' itself holds no messages

    const result = resultFor(await syncer().runPassNow(), account)!;
    assert.equal(result.outcome, 'synced');
    assert.equal(result.stored, 4);
    const stored = await messagesOf(account);
    const folderOf = (id: string) => stored.find((m) => m.messageId === id)?.sources[0]?.folder;
    assert.equal(folderOf(inbox.messageId), 'INBOX');
    for (const m of sent) assert.equal(folderOf(m.messageId), 'Sent');
    assert.equal(folderOf(project.messageId), 'Projects');
    assert.equal(folderOf(notSent.messageId), undefined, 'a folder without \\Sent is not synced unless picked');

    const ledger = (await getSyncLedger(store, account.id))!;
    assert.equal(ledger.folders.find((f) => f.folder === 'Sent')?.specialUse, '\\Sent');
    assert.match(ledger.folders.find((f) => f.folder === 'Vanished')?.lastError ?? '', /is not on the server .*Correct it under Other folders to sync in IMAP Support/);
    assert.equal(ledger.folders.find((f) => f.folder === 'Clients')?.lastError, 'This folder only holds other folders, not messages. To sync them, list them under Other folders to sync in IMAP Support: Clients/Acme.');
    assert.equal(ledger.folders.find((f) => f.folder === 'clients.acme')?.lastError, 'This folder is not on the server under this name; the server has "Clients/Acme" (names differ in case, separator or prefix). Write it like that under Other folders to sync in IMAP Support.');
  });

  it('syncs picked folders named outside ASCII (IMAP modified UTF-7, RFC 3501 §5.1.3): Entwürfe, 客户/已发送', async () => {
    const account = await createImapAccount(store, dovecot, { folders: ['Entwürfe', '客户/已发送'] });
    const draft = makeMessage({ to: account.email, subject: 'Entwurf' });
    const chinese = makeMessage({ to: 'wang@customer.test', subject: 'sent in Chinese folder' });
    await dovecot.append(account.email, 'Entwürfe', draft.raw);
    await dovecot.append(account.email, '客户/已发送', chinese.raw);
    const result = resultFor(await syncer().runPassNow(), account)!;
    assert.equal(result.outcome, 'synced');
    const stored = await messagesOf(account);
    const folderOf = (id: string) => stored.find((m) => m.messageId === id)?.sources[0]?.folder;
    assert.equal(folderOf(draft.messageId), 'Entwürfe');
    assert.equal(folderOf(chinese.messageId), '客户/已发送');
    const ledger = (await getSyncLedger(store, account.id))!;
    assert.deepEqual(ledger.folders.filter((f) => f.lastError).map((f) => f.folder), [], 'no folder reported as missing');
  });

  it('shows only the folders it syncs: one taken off the list leaves the status (its error too), and resumes where it was when picked again', async () => {
    const account = await createImapAccount(store, dovecot, { folders: ['Projects/Acme', 'Misspelt'] });
    await dovecot.append(account.email, 'Projects/Acme', makeMessage({ to: account.email }).raw);
    assert.equal(resultFor(await syncer().runPassNow(), account)?.stored, 1);
    let ledger = (await getSyncLedger(store, account.id))!;
    assert.deepEqual(ledger.folders.map((f) => f.folder), ['INBOX', 'Misspelt', 'Projects/Acme', 'Sent']);

    // The user corrects the list in IMAP Support: the rows go at once, before any pass.
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { 'imap.folders': [] } });
    ledger = (await getSyncLedger(store, account.id))!;
    assert.deepEqual(ledger.folders.map((f) => f.folder), ['INBOX', 'Sent']);
    assert.ok(ledger.folders.every((f) => f.lastError === ''), 'no "not on the server" error for a folder no longer asked for');
    assert.equal(resultFor(await syncer().runPassNow(), account)?.outcome, 'synced');

    // Picked again: its cursor was kept, so only the new message is fetched.
    await dovecot.append(account.email, 'Projects/Acme', makeMessage({ to: account.email }).raw);
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { 'imap.folders': ['Projects/Acme'] } });
    const again = resultFor(await syncer().runPassNow(), account)!;
    assert.equal(again.stored, 1);
    assert.equal(again.duplicates, 0);
    ledger = (await getSyncLedger(store, account.id))!;
    assert.deepEqual(ledger.folders.map((f) => f.folder), ['INBOX', 'Projects/Acme', 'Sent']);
  });

  it('resyncs after a UIDVALIDITY change without duplicates or gaps, and never brings back deleted mail', async () => {
    const account = await createImapAccount(store, dovecot);
    const now = Date.now();
    const originals = Array.from({ length: 20 }, (_, i) => makeMessage({ to: account.email, date: new Date(now - (20 - i) * 3600_000) }));
    await dovecot.appendMany(account.email, 'INBOX', originals.map((m) => ({ raw: m.raw, date: m.date })));
    const first = resultFor(await syncer().runPassNow(), account)!;
    assert.equal(first.stored, 20);
    const before = await store.models.FolderState.findOne({ accountId: new mongoose.Types.ObjectId(account.id), folder: 'INBOX' }).lean();

    // The user deletes one message in Postroom: a tombstone remembers it.
    const deleted = (await store.models.Message.findOne({ messageId: originals[5].messageId }).lean())!;
    await store.models.Tombstone.create({ mailboxKey: deleted.mailboxKey, dedupeKey: deleted.dedupeKey, deletedAt: new Date() });
    await store.models.Message.deleteOne({ _id: deleted._id });

    // The server is rebuilt: new UIDVALIDITY, UIDs from 1 again, same mail plus two new ones.
    await dovecot.recreateMailbox(account.email, 'INBOX');
    const added = [makeMessage({ to: account.email }), makeMessage({ to: account.email })];
    await dovecot.appendMany(account.email, 'INBOX', [...originals, ...added].map((m) => ({ raw: m.raw, date: m.date })));

    const second = resultFor(await syncer().runPassNow(), account)!;
    assert.equal(second.outcome, 'synced');
    assert.equal(second.stored, 2);
    assert.equal(second.duplicates, 19);
    assert.equal(second.tombstoned, 1);

    const stored = await messagesOf(account);
    assert.equal(stored.length, 21);
    const ids = new Set(stored.map((m) => m.messageId));
    for (const m of [...originals, ...added]) assert.equal(ids.has(m.messageId), m !== originals[5], m.messageId);
    const after = await store.models.FolderState.findOne({ accountId: new mongoose.Types.ObjectId(account.id), folder: 'INBOX' }).lean();
    assert.notEqual(after?.uidValidity, before?.uidValidity);
    assert.equal(after?.lastUid, 22);
    assert.equal(after?.backfill?.completed, true);
    assert.equal(after?.backfill?.done, 22);
    const resync = (await getSyncLedger(store, account.id))!.folders.find((f) => f.folder === 'INBOX')!.resync;
    assert.equal(resync?.reason, 'uidvalidity-changed', 'the API says why the folder was read again');
    // The resynced copy records where it now lives.
    const resynced = stored.find((m) => m.messageId === originals[0].messageId)!;
    assert.deepEqual(resynced.sources.map((s) => s.uidValidity).sort(), [before!.uidValidity, after!.uidValidity].sort());
  });

  it('stores a message that forwarding already delivered once, with both sources', async () => {
    const account = await createImapAccount(store, dovecot);
    const message = makeMessage({ to: account.email, date: new Date(Date.now() - 3600_000) });
    // Forwarding delivers first (the gateway adds trace headers on the way).
    const forwarded = await ingest(
      { store, log: silentLogger },
      {
        raw: Buffer.from(`Received: from mail.provider.test by in.postroom.test; ${new Date().toUTCString()}\r\n${message.raw}`),
        mailboxKey: account.id,
        accountId: new mongoose.Types.ObjectId(account.id),
        ownerId: new mongoose.Types.ObjectId(account.ownerId),
        source: { kind: 'forward', envelopeFrom: 'bob+caf_=x@acme.test' },
      },
    );
    assert.equal(forwarded.outcome, 'stored');
    await dovecot.append(account.email, 'INBOX', message.raw, { date: message.date });

    const result = resultFor(await syncer().runPassNow(), account)!;
    assert.equal(result.stored, 0);
    assert.equal(result.duplicates, 1);
    const stored = await messagesOf(account);
    assert.equal(stored.length, 1);
    assert.deepEqual(stored[0].sources.map((s) => s.kind), ['forward', 'imap']);
  });

  it('marks verified forwarding broken when IMAP sees inbox mail forwarding never delivered within the grace period', async () => {
    const account = await createImapAccount(store, dovecot, { forwarding: { status: 'verified', verifiedAt: new Date(Date.now() - 2 * 3600_000) } });
    const accountId = new mongoose.Types.ObjectId(account.id);
    const delivered = makeMessage({ to: account.email, date: new Date(Date.now() - 3600_000) });
    await ingest({ store, log: silentLogger }, { raw: Buffer.from(delivered.raw), mailboxKey: account.id, accountId, ownerId: new mongoose.Types.ObjectId(account.ownerId), source: { kind: 'forward' } });
    const recent = makeMessage({ to: account.email, date: new Date(Date.now() - 2 * 60_000) }); // within the 15 min grace
    const beforeVerification = makeMessage({ to: account.email, date: new Date(Date.now() - 3 * 3600_000) });
    for (const m of [beforeVerification, delivered, recent]) await dovecot.append(account.email, 'INBOX', m.raw, { date: m.date });

    await syncer().runPassNow();
    let doc = (await store.models.MailAccount.findById(accountId).lean())!;
    assert.equal(doc.forwarding!.status, 'verified', 'delivered, too recent or older than verification: no evidence');

    const lost = makeMessage({ to: account.email, subject: 'Invoice 4711 never forwarded', date: new Date(Date.now() - 40 * 60_000) });
    await dovecot.append(account.email, 'INBOX', lost.raw, { date: lost.date });
    const result = resultFor(await syncer().runPassNow(), account)!;
    assert.equal(result.forwardingBroken, true);
    doc = (await store.models.MailAccount.findById(accountId).lean())!;
    assert.equal(doc.forwarding!.status, 'broken');
    assert.match(doc.forwarding!.problem, /Invoice 4711 never forwarded/);
    assert.match(doc.forwarding!.problem, new RegExp(lost.messageId));
    assert.ok(doc.forwarding!.problemAt);
  });

  it('stores a malformed message raw with the parse-error flag and an oversized one truncated with a flag, and keeps going', async () => {
    const account = await createImapAccount(store, dovecot);
    const before = makeMessage({ to: account.email, subject: 'before' });
    // More MIME parts than mailparser accepts (1000): parsing fails.
    const parts = Array.from({ length: 1100 }, (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`).join('');
    const malformed = makeMessage({ to: account.email, subject: 'malformed', extraHeaders: ['Content-Type: multipart/mixed; boundary="b"'], body: `${parts}--b--\r\n` });
    const huge = makeMessage({ to: account.email, subject: 'huge', body: `${'0123456789abcdef'.repeat(64)}\r\n`.repeat(300) }); // ~300 KB
    const after = makeMessage({ to: account.email, subject: 'after' });
    for (const m of [before, malformed, huge, after]) await dovecot.append(account.email, 'INBOX', m.raw);

    const limit = 100 * 1024;
    const result = resultFor(await syncer({ options: { maxMessageBytes: limit } }).runPassNow(), account)!;
    assert.equal(result.outcome, 'synced');
    assert.equal(result.stored, 4);
    assert.equal(result.truncated, 1);
    assert.equal(result.parseErrors, 1);

    const stored = await messagesOf(account);
    assert.equal(stored.length, 4);
    const bySize = [...stored].sort((a, b) => b.size - a.size);
    const malformedDoc = stored.find((m) => m.size === Buffer.byteLength(malformed.raw));
    assert.ok(malformedDoc, 'the malformed message is stored with all its bytes');
    assert.match(malformedDoc.parseError, /child nodes/i);
    assert.equal((await storedRaw(store, malformedDoc._id)).toString(), malformed.raw);
    const hugeDoc = stored.find((m) => m.size === limit);
    assert.ok(hugeDoc, `the oversized message is stored truncated to the limit (sizes: ${bySize.map((m) => m.size).join(', ')})`);
    assert.match(hugeDoc.parseError, /^This message is 0\.3 MB \(\d+ bytes\), over the 102400-byte limit \(SMTP_MAX_MESSAGE_SIZE\): only its first 0\.1 MB were stored, so its end, often the last attachments, is cut off\. The whole message is still in the mailbox on the server\.$/);
    const raw = await storedRaw(store, hugeDoc._id);
    assert.equal(raw.length, limit);
    for (const subject of ['before', 'after']) assert.equal(stored.find((m) => m.subject === subject)?.parseError, '');
  });

  it('retries a message the server cannot hand over, then skips it and shows it, so the messages behind it still sync', async () => {
    const account = await createImapAccount(store, dovecot);
    const messages = Array.from({ length: 5 }, (_, i) => makeMessage({ to: account.email, subject: `report ${i + 1}` }));
    for (const m of messages) await dovecot.append(account.email, 'INBOX', m.raw);
    await dovecot.setMessageReadable(account.email, 'INBOX', 3, false);
    // No waiting between passes: backoff after the connection Dovecot closes is not what this is about.
    const quick = { backoffBaseMs: 0 };
    const inbox = async () => (await getSyncLedger(store, account.id))!.folders.find((f) => f.folder === 'INBOX')!;
    try {
      // Dovecot answers the FETCH of UID 3 without its content and hangs up. The first passes keep the
      // cursor where it was: the message is asked for again, not given up at the first hiccup.
      for (let pass = 1; pass <= 3; pass++) {
        const result = resultFor(await syncer({ options: quick }).runPassNow(), account)!;
        assert.notEqual(result.outcome, 'synced', `pass ${pass}`);
        const state = await inbox();
        assert.equal(state.backfill.completed, false, `pass ${pass}: the cursor does not pass UID 3`);
        // The third time it is given up (that pass still ends with the connection Dovecot closed).
        assert.deepEqual(state.skippedUids, pass < 3 ? [] : [3], `pass ${pass}`);
      }
      // Then the rest of the folder syncs.
      const result = resultFor(await syncer({ options: quick }).runPassNow(), account)!;
      assert.equal(result.outcome, 'synced');
      const state = await inbox();
      assert.equal(state.backfill.completed, true);
      assert.deepEqual(state.skippedUids, [3]);
    } finally {
      await dovecot.setMessageReadable(account.email, 'INBOX', 3, true);
    }
    const stored = (await messagesOf(account)).map((m) => m.subject).sort();
    assert.deepEqual(stored, ['report 1', 'report 2', 'report 4', 'report 5']);
    // The operator's view from a shell says so too.
    const out: string[] = [];
    assert.equal(await runCli(['sync-status'], store, { out: (line) => out.push(line), err: (line) => out.push(line) }), 0);
    assert.match(out.find((line) => line.startsWith(`${account.email} |`)) ?? out.join('\n'), / \| first sync complete \| .* \| skipped unreadable UID 3 in INBOX$/);

    // New mail after it syncs as usual.
    await dovecot.append(account.email, 'INBOX', makeMessage({ to: account.email, subject: 'report 6' }).raw);
    assert.equal(resultFor(await syncer().runPassNow(), account)?.stored, 1);
  });

  it('does not call a folder stalled when its new mail was deleted before the pass came (sparse UIDs), and keeps up with what comes next', async () => {
    const account = await createImapAccount(store, dovecot);
    await dovecot.append(account.email, 'INBOX', makeMessage({ to: account.email }).raw);
    await syncer().runPassNow();
    // 40 messages arrive and are gone (read and deleted on a phone, moved away by a client's rule) before
    // the next pass: UIDNEXT moved by 40, there is nothing to read, and nothing is wrong.
    await dovecot.appendMany(account.email, 'INBOX', Array.from({ length: 40 }, () => ({ raw: makeMessage({ to: account.email }).raw })));
    const client = new ImapFlow({ ...dovecot.clientOptions(account.email, account.password), logger: false });
    await client.connect();
    try {
      await client.mailboxOpen('INBOX');
      await client.messageDelete('2:*', { uid: true });
    } finally {
      await client.logout();
    }
    const result = resultFor(await syncer().runPassNow(), account)!;
    assert.equal(result.outcome, 'synced');
    assert.equal(result.stored, 0);
    let ledger = (await getSyncLedger(store, account.id))!;
    let inbox = ledger.folders.find((f) => f.folder === 'INBOX')!;
    assert.equal(inbox.uidNext, 42);
    assert.equal(inbox.lastUid, 41, 'the cursor passes the empty UIDs');
    assert.equal(inbox.stalled, false, 'nothing was left unread');
    assert.equal(ledger.stalled, false);
    assert.equal(inbox.lastError, '');

    await dovecot.append(account.email, 'INBOX', makeMessage({ to: account.email }).raw);
    assert.equal(resultFor(await syncer().runPassNow(), account)?.stored, 1);
    ledger = (await getSyncLedger(store, account.id))!;
    inbox = ledger.folders.find((f) => f.folder === 'INBOX')!;
    assert.equal(inbox.lastUid, 42);
    assert.equal(inbox.stalled, false);
  });

  it('getSyncLedger answers null for an unknown account', async () => {
    assert.equal(await getSyncLedger(store, new mongoose.Types.ObjectId()), null);
    assert.equal(await getSyncLedger(store, 'not-an-id'), null);
  });
});
