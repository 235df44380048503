import { strict as assert } from 'node:assert';
import type { PublicUser } from '../../gateway/accounts';
import { buildApp, buildRaw, makeAccount, makeUser, signIn, storeMessage, type TestApp, type TestStore } from './fixtures';
import { openTestStore } from '../support/store';

const failing = { verdict: 'fail' as const, reason: 'SPF fail, no aligned DKIM', results: 'postroom.test; spf=fail smtp.mailfrom=spoof.test; dkim=none; dmarc=fail header.from=customer.test', spf: 'fail', dkim: 'none', dmarc: 'fail' };

describe('admin: the Emails inbox and message view', () => {
  let store: TestStore;
  let testApp: TestApp;
  let bob: PublicUser;
  let eve: PublicUser;
  let bobAccount: { id: string };
  let bobImap: { id: string };
  const ids: Record<string, string> = {};
  const base = new Date('2026-02-01T12:00:00Z');

  before(async () => {
    store = await openTestStore('admin_emails');
    testApp = buildApp(store);
    await makeUser(store, 'admin@acme.test', 'admin');
    bob = await makeUser(store, 'bob@acme.test');
    eve = await makeUser(store, 'eve@acme.test');
    bobAccount = await makeAccount(store, bob, 'bob@acme.test');
    bobImap = await makeAccount(store, bob, 'bob@gmail.test');
    const eveAccount = await makeAccount(store, eve, 'eve@acme.test');
    // 120 forwarded messages a minute apart, so paging crosses two page boundaries.
    for (let i = 0; i < 120; i++) {
      await storeMessage(store, { subject: `Order ${String(i).padStart(3, '0')}`, from: `Shop ${i} <shop${i}@customer.test>` }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() + i * 60_000) });
    }
    // Over INLINE_RAW_MAX with an attachment: its raw bytes and the attachment live in GridFS.
    ids.imap = (await storeMessage(store, { subject: 'Synced by IMAP', from: 'carol@partner.test', attachments: [{ filename: 'plan.pdf', content: Buffer.alloc(80 * 1024, 7), contentType: 'application/pdf' }] }, { ownerId: bob.id, accountId: bobImap.id, source: 'imap', receivedAt: new Date(base.getTime() + 200 * 60_000) })).id;
    ids.quarantined = (await storeMessage(store, { subject: 'Urgent wire transfer', from: 'ceo@spoof.test' }, { ownerId: bob.id, accountId: bobAccount.id, status: 'quarantine', quarantineReason: 'authentication failed', auth: failing, receivedAt: new Date(base.getTime() + 201 * 60_000) })).id;
    ids.html = (await storeMessage(store, {
      subject: 'Newsletter with pictures',
      html: '<p>Hello <b>Bob</b></p><img src="https://tracker.example/pixel.gif" alt="pixel"><script>window.pwned=1</script><a href="javascript:alert(1)">x</a><img src="x" onerror="window.pwned=2">',
      text: 'Hello Bob',
      attachments: [{ filename: 'report.pdf', content: Buffer.from('%PDF-1.4 test'), contentType: 'application/pdf' }, { filename: 'evil.html', content: '<script>alert(1)</script>', contentType: 'text/html' }],
    }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() + 202 * 60_000) })).id;
    ids.confirmation = (await storeMessage(store, { subject: '(#638294017) Gmail Forwarding Confirmation', from: 'forwarding-noreply@google.com' }, {
      ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() + 203 * 60_000),
      classify: { kind: 'forwarding-confirmation', confirmation: { provider: 'Gmail', code: '638294017', link: '', requester: 'bob@gmail.test' } },
    })).id;
    ids.eve = (await storeMessage(store, { subject: 'Eve private mail', from: 'friend@else.test' }, { ownerId: eve.id, accountId: eveAccount.id, receivedAt: new Date(base.getTime() + 204 * 60_000) })).id;
  });
  after(async () => store.drop());

  it('lists the newest 50 first and pages by cursor without gaps or repeats', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const seen: string[] = [];
    let url = '/?account=' + bobAccount.id;
    for (let page = 0; page < 5 && url; page++) {
      const res = await agent.get(url).expect(200);
      const subjects = [...res.text.matchAll(/<span class="subject" dir="auto">Order (\d{3})<\/span>/g)].map((m) => m[1]);
      seen.push(...subjects);
      assert.ok(subjects.length <= 50);
      const next = /href="([^"]*cursor=[^"]+)"/.exec(res.text);
      url = next ? next[1].replace(/&amp;/g, '&') : '';
    }
    assert.equal(seen.length, 120);
    assert.deepEqual(seen, Array.from({ length: 120 }, (_, i) => String(119 - i).padStart(3, '0')));
  });

  it('filters by source, verdict and account, and searches sender (address or name), recipient and subject', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const imap = await agent.get('/?source=imap').expect(200);
    assert.match(imap.text, /Synced by IMAP/);
    assert.doesNotMatch(imap.text, /Order 119/);
    const byAccount = await agent.get(`/?account=${bobImap.id}`).expect(200);
    assert.match(byAccount.text, /Synced by IMAP/);
    assert.doesNotMatch(byAccount.text, /Newsletter/);
    const bySender = await agent.get('/?q=SHOP117@customer').expect(200);
    assert.match(bySender.text, /Order 117/);
    assert.doesNotMatch(bySender.text, /Order 116/);
    const byName = await agent.get('/?q=shop%20117').expect(200);
    assert.match(byName.text, /Order 117/, 'the display name the inbox shows is searchable');
    assert.doesNotMatch(byName.text, /Order 116/);
    const bySubject = await agent.get('/?q=newsletter').expect(200);
    assert.match(bySubject.text, /Newsletter with pictures/);
    assert.doesNotMatch(bySubject.text, /Order 1/);
    const byRecipient = await agent.get('/?q=bob@acme.test&source=imap').expect(200);
    assert.match(byRecipient.text, /Synced by IMAP/);
    const regexChars = await agent.get('/?q=.*(').expect(200);
    assert.match(regexChars.text, /Nothing matches/, 'search text is matched literally, not as a regex');
    const bad = await agent.get('/?source=pigeon').expect(400);
    assert.match(bad.text, /Source must be one of forward, mx, imap, sent/);
  });

  it('searches the text and the attachment names too, and refuses a NUL clearly', async () => {
    await storeMessage(store, {
      subject: 'Meeting notes', from: 'pm@partner.test', text: 'The flibbertigibbet budget is (almost) final.',
      attachments: [{ filename: 'Rechnung_2026-0042 (final).pdf', content: Buffer.from('%PDF-1.4 notes'), contentType: 'application/pdf' }],
    }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() - 90 * 86_400_000) }); // outside the 30-day chart
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const byBody = await agent.get('/?q=FLIBBERTIGIBBET%20budget').expect(200);
    assert.match(byBody.text, /Meeting notes/, 'words of the body find the mail');
    assert.doesNotMatch(byBody.text, /Order 1/);
    const byAttachment = await agent.get('/?q=rechnung_2026-0042%20(final)').expect(200);
    assert.match(byAttachment.text, /Meeting notes/, 'an attachment name finds the mail');
    assert.doesNotMatch(byAttachment.text, /Order 1/);
    // Plain text is wrapped at about 72 characters: a remembered phrase often spans a line break, and people
    // type two spaces where the mail has one.
    await storeMessage(store, {
      subject: 'Wrapped text', from: 'ops@partner.test', text: 'We will ship the replacement\r\nparts on Monday, as agreed with\r\nyour purchasing team.',
    }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() - 91 * 86_400_000) });
    const acrossLines = await agent.get('/?q=' + encodeURIComponent('replacement parts on  Monday')).expect(200);
    assert.match(acrossLines.text, /Wrapped text/, 'a phrase that spans a line break finds the mail');
    assert.doesNotMatch(acrossLines.text, /Meeting notes/);
    const nul = await agent.get('/?q=a%00b').expect(400);
    assert.match(nul.text, /Search must not contain a NUL character/);
  });

  it('says a message gives no date instead of showing when it arrived as its Date', async () => {
    const receivedAt = new Date(base.getTime() - 95 * 86_400_000);
    const { id } = await storeMessage(store, { subject: 'Dateless note', date: 'Tomorrow at noon' as unknown as Date }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const page = await agent.get(`/messages/${id}`).expect(200);
    assert.match(page.text, /<dt>Date<\/dt><dd><span class="muted" id="no-date">not given in the message<\/span><\/dd>/);
    assert.match(page.text, /<dt>Received<\/dt><dd>2025-10-29 12:00 UTC<\/dd>/);
  });

  it('shows the note of a mail forwarded as an attachment beside the forwarded message, in the message frame', async () => {
    const original = await buildRaw({ from: 'Jane Roe <jane@globex.test>', subject: 'Renewal terms', html: '<p>Our <b>renewal terms</b> are attached.</p>', text: 'Our renewal terms are attached.' });
    const { id } = await storeMessage(store, {
      subject: 'Fwd: Renewal terms', from: 'carol@acme.test', text: 'Bob, see the customer\'s mail below <before Friday> & call her.',
      attachments: [{ filename: 'Renewal terms.eml', content: original, contentType: 'message/rfc822' }],
    }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() - 92 * 86_400_000) });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const frame = await agent.get(`/messages/${id}/body`).expect(200);
    assert.match(frame.text, /Bob, see the customer's mail below &lt;before Friday&gt; &amp; call her\./, 'the note typed above the forwarded mail is shown, as text');
    assert.match(frame.text, /Our <b>renewal terms<\/b> are attached/, 'and so is the forwarded message');
  });

  it('makes the web and mail addresses of a plain-text mail links that open outside the console', async () => {
    const { id } = await storeMessage(store, {
      subject: 'Your report', from: 'ops@hosting.test',
      text: 'Report: https://status.hosting.test/r/42?from=1&to=2.\nQuestions: <mailto:help@hosting.test> or javascript:alert(1) <b>not bold</b>',
    }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() - 93 * 86_400_000) });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const page = await agent.get(`/messages/${id}`).expect(200);
    const body = /<pre class="text-part" id="text-body" dir="auto">([\s\S]*?)<\/pre>/.exec(page.text)?.[1] ?? '';
    assert.equal(body.trimEnd(), 'Report: <a href="https://status.hosting.test/r/42?from=1&amp;to=2" target="_blank" rel="noopener noreferrer nofollow">https://status.hosting.test/r/42?from=1&amp;to=2</a>.\n' +
      'Questions: &lt;<a href="mailto:help@hosting.test" target="_blank" rel="noopener noreferrer nofollow">mailto:help@hosting.test</a>&gt; or javascript:alert(1) &lt;b&gt;not bold&lt;/b&gt;');
  });

  it('offers "Load images" for a mail whose only remote pictures are CSS backgrounds', async () => {
    const { id } = await storeMessage(store, {
      subject: 'Spring sale', from: 'shop@retail.test', text: 'Spring sale',
      html: '<table><tr><td style="background-image: url(\'https://cdn.retail.test/banner.jpg\'); height: 200px">Spring sale</td></tr></table><p>Prices from url(https://not-an-image.test) up</p>',
    }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() - 94 * 86_400_000) });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const page = await agent.get(`/messages/${id}`).expect(200);
    assert.match(page.text, /Load images \(1\)/, 'the banner is held back, and the page says so');
    const loaded = await agent.get(`/messages/${id}/body?images=1`).expect(200);
    assert.match(loaded.headers['content-security-policy'], /img-src data: https: http:/);
  });

  it('shows where a reply goes when that is not the sender (Reply-To)', async () => {
    const { id } = await storeMessage(store, {
      subject: 'Updated bank details', from: 'Accounts <accounts@supplier.test>', text: 'Please pay the invoice to our new account.',
      headers: { 'Reply-To': 'Accounts <accounts.supplier@freemail.test>' },
    }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() - 98 * 86_400_000) });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const page = await agent.get(`/messages/${id}`).expect(200);
    assert.match(page.text, /<dt>Reply-To<\/dt><dd id="reply-to">Accounts &lt;accounts.supplier@freemail.test&gt;<\/dd>/);
    const same = await storeMessage(store, { subject: 'Same reply address', from: 'jane@globex.test', headers: { 'Reply-To': 'Jane@Globex.test' } },
      { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() - 99 * 86_400_000) });
    assert.doesNotMatch((await agent.get(`/messages/${same.id}`).expect(200)).text, /Reply-To<\/dt>/, 'not when it is the sender anyway');
  });

  it('links a reply to the stored message it answers, never to another user\'s', async () => {
    const original = await storeMessage(store, { subject: 'Project kickoff', from: 'Alice Customer <alice@customer.test>', messageId: '<kickoff-1@customer.test>', date: new Date('2025-10-20T09:00:00Z') },
      { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() - 100 * 86_400_000) });
    const reply = await storeMessage(store, { subject: 'Re: Project kickoff', from: 'Alice Customer <alice@customer.test>', headers: { 'In-Reply-To': '<kickoff-1@customer.test>', References: '<kickoff-1@customer.test>' } },
      { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() - 99.5 * 86_400_000) });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const page = await agent.get(`/messages/${reply.id}`).expect(200);
    assert.match(page.text, new RegExp(`<dt>In reply to</dt><dd id="in-reply-to"><a href="/messages/${original.id}">Project kickoff</a> <span class="muted">from Alice Customer, 2025-10-20 09:00 UTC</span>`));
    // Eve has a mail with that Message-ID in her own mailbox: Bob's reply never leads there, nor hers to Bob's.
    const eveAccount = (await store.models.MailAccount.findOne({ email: 'eve@acme.test' }).lean())!;
    const eveReply = await storeMessage(store, { subject: 'Re: Project kickoff', headers: { 'In-Reply-To': '<kickoff-1@customer.test>' } },
      { ownerId: eve.id, accountId: eveAccount._id.toString(), receivedAt: new Date(base.getTime() - 99 * 86_400_000) });
    const { agent: eveAgent } = await signIn(testApp.app, 'eve@acme.test');
    assert.doesNotMatch((await eveAgent.get(`/messages/${eveReply.id}`).expect(200)).text, /In reply to/);
  });

  it('filters by linked object and lists the linked objects on the message page', async () => {
    const object = await store.models.CrmObject.create({ type: 'customer', name: 'Initech', nameLower: 'initech', externalId: 'local:initech', domains: ['customer.test'] });
    await store.models.Message.updateOne({ _id: ids.html }, { $set: { linkedObjectIds: [object._id] } });
    const message = await store.models.Message.findById(ids.html).lean();
    await store.models.Link.create({
      messageId: ids.html, objectId: object._id, ownerId: message!.ownerId, address: 'news@customer.test', rule: 'domain',
      reasons: [{ address: 'news@customer.test', rule: 'domain', role: 'from', matched: 'customer.test' }],
      receivedAt: message!.receivedAt, createdAt: new Date(),
    });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const filtered = await agent.get(`/?object=${object._id}`).expect(200);
    assert.match(filtered.text, /Newsletter with pictures/);
    assert.doesNotMatch(filtered.text, /Order 119/);
    assert.match(filtered.text, new RegExp(`Showing mail linked to the customer <a href="/objects/${object._id}">Initech</a>\\.`), 'the filter names the object');
    const gone = await agent.get(`/?object=${'0'.repeat(24)}`).expect(200);
    assert.match(gone.text, /Showing mail linked to an object that no longer exists\./);
    const page = await agent.get(`/messages/${ids.html}`).expect(200);
    assert.match(page.text, /<span class="badge">customer<\/span> <a href="\/objects\/[0-9a-f]{24}">Initech<\/a>/, "the linked object links to its page");
    assert.match(page.text, new RegExp(`href="/\\?status=all&amp;object=${object._id}"`));
    assert.match(page.text, /linked by news@customer\.test \(domain, from\)/, 'the page says why it is linked');
    assert.match(page.text, new RegExp(`action="/objects/${object._id}/unlink"`), 'and offers to unlink it');
    const badObject = await agent.get('/?object=not-an-id').expect(400);
    assert.match(badObject.text, /object is not an id/, 'names the query parameter the user sent');
    const badAccount = await agent.get('/?account=zzz').expect(400);
    assert.match(badAccount.text, /Account is not an id/);
    assert.doesNotMatch(badAccount.text, /accountId/);
  });

  it('keeps quarantined mail out of the inbox and shows it in the Quarantine view with a verdict filter', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const inbox = await agent.get('/').expect(200);
    assert.doesNotMatch(inbox.text, /Urgent wire transfer/);
    const quarantine = await agent.get('/?status=quarantine').expect(200);
    assert.match(quarantine.text, /Urgent wire transfer/);
    assert.doesNotMatch(quarantine.text, /Order 119/);
    const failed = await agent.get('/?status=all&verdict=fail').expect(200);
    assert.match(failed.text, /<option value="fail" selected>Failed<\/option>/, 'the Authentication choices are words, like the other filters');
    assert.match(failed.text, /<option value="none" >No result<\/option>/);
    assert.match(failed.text, /Urgent wire transfer/);
    assert.doesNotMatch(failed.text, /Newsletter/);
  });

  it('says where a first, quarantined message went instead of "No mail yet", and which search matches there', async () => {
    const quinn = await makeUser(store, 'quinn@acme.test');
    const account = await makeAccount(store, quinn, 'quinn@acme.test');
    const { agent } = await signIn(testApp.app, 'quinn@acme.test');
    const before = await agent.get('/').expect(200);
    assert.match(before.text, /No mail yet/, 'nothing arrived at all: the usual empty state');
    await storeMessage(store, { subject: 'Test from a script', from: 'it@nowhere.test' }, { ownerId: quinn.id, accountId: account.id, status: 'quarantine', quarantineReason: 'authentication failed', auth: failing });
    const inbox = await agent.get('/').expect(200);
    assert.doesNotMatch(inbox.text, /No mail yet/);
    assert.match(inbox.text, /Your inbox is empty/);
    assert.match(inbox.text, /in <a href="\/\?status=quarantine">Quarantine<\/a>/);
    const search = await agent.get('/?q=script').expect(200);
    assert.match(search.text, /Nothing matches/);
    assert.match(search.text, /<a href="\/\?q=script&amp;status=quarantine">Quarantine<\/a> matches/);
    const rita = await makeUser(store, 'rita@acme.test');
    await storeMessage(store, { subject: 'Just one', from: 'it@nowhere.test' }, { ownerId: rita.id, accountId: (await makeAccount(store, rita, 'rita@acme.test')).id });
    const one = await (await signIn(testApp.app, 'rita@acme.test')).agent.get('/').expect(200);
    assert.match(one.text, /· 1 message<\/span>/, 'one message, not "1 messages"');
    const otherSearch = await agent.get('/?q=invoice').expect(200);
    assert.doesNotMatch(otherSearch.text, /Quarantine<\/a> matches/, 'only when the quarantine has a match');
  });

  it('renders the 30-day per-source volume chart as inline SVG on the dashboard', async () => {
    const now = new Date(base.getTime() + 205 * 60_000);
    const { app } = buildApp(store, { clock: () => now });
    const { agent } = await signIn(app, 'bob@acme.test');
    const res = await agent.get('/').expect(200);
    assert.match(res.text, /<svg class="chart"[^>]*aria-label="Messages per day over the last 30 days: 124 in total"/);
    assert.match(res.text, /<title>2026-02-01: 124 \(Forwarded 123, IMAP 1\)<\/title>/);
    assert.match(res.text, /fill="#0f9f6e"/, 'IMAP colour present');
  });

  it('reads the 30 days of mail for the chart only for the page that shows it: not for older pages or the quarantine', async () => {
    const now = new Date(base.getTime() + 205 * 60_000);
    // Each app starts with an empty chart cache, as a minute after the last dashboard load.
    const signedIn = async () => (await signIn(buildApp(store, { clock: () => now }).app, 'admin@acme.test')).agent;
    const chartReads: string[] = [];
    // The chart's aggregation (by day), not the unread count's (by mail), which every first page asks.
    store.conn.set('debug', (collection: string, method: string, pipeline: unknown) => {
      if (collection === 'messages' && method === 'aggregate' && JSON.stringify(pipeline).includes('$dateToString')) chartReads.push(method);
    });
    try {
      const first = await (await signedIn()).get('/?q=Order').expect(200);
      assert.match(first.text, /id="volume-title"/);
      assert.equal(chartReads.length, 1, 'the first page reads it');
      const older = /href="([^"]*cursor=[^"]+)"/.exec(first.text)?.[1];
      assert.ok(older, 'a searched first page links to older mail');

      chartReads.length = 0;
      const agent = await signedIn();
      const page2 = await agent.get(older.replace(/&amp;/g, '&')).expect(200);
      assert.match(page2.text, /Order \d{3}/);
      assert.doesNotMatch(page2.text, /id="volume-title"/);
      const quarantine = await agent.get('/?status=quarantine').expect(200);
      assert.match(quarantine.text, /Urgent wire transfer/);
      assert.doesNotMatch(quarantine.text, /id="volume-title"/);
      assert.deepEqual(chartReads, [], 'no chart read for pages without the chart');
    } finally {
      store.conn.set('debug', false);
    }
  });

  it('shows a message: headers, auth verdict with Authentication-Results, text, attachments, raw download link', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const res = await agent.get(`/messages/${ids.quarantined}`).expect(200);
    assert.match(res.text, /Urgent wire transfer/);
    assert.match(res.text, /auth fail/);
    assert.match(res.text, /spf=fail smtp\.mailfrom=spoof\.test/);
    assert.match(res.text, /quarantined: authentication failed/);
    assert.match(res.text, /Release to inbox/);
    assert.match(res.text, /<td>Message-ID<\/td>|<td>Message-Id<\/td>/i);
    assert.match(res.text, new RegExp(`href="/messages/${ids.quarantined}/raw"`));
    // Opened from Quarantine, the menu says so (it marked Emails, where this message is not listed).
    assert.match(res.text, /<a href="\/\?status=quarantine" class="active" aria-current="page">Quarantine<\/a>/);
    assert.match(res.text, /<a href="\/">Emails<\/a>/);
  });

  it('marks a message whose path passed but whose sender is not verified (a forged From forwarded by the provider)', async () => {
    const forged = await storeMessage(store, { subject: 'CEO asks for a wire', from: 'CEO <ceo@customer.test>' }, {
      ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() - 91 * 86_400_000), // outside the 30-day chart
      auth: { verdict: 'pass', reason: 'came through the mailbox\'s provider or the business: SPF pass for envelope domain acme.test; the sender\'s domain customer.test failed DMARC when google.com received it: the From address may be forged', results: 'gw.test; spf=pass; dmarc=fail', spf: 'pass', dmarc: 'fail', sender: 'fail' },
    });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const list = await agent.get('/?q=CEO%20asks').expect(200);
    assert.match(list.text, /CEO asks for a wire[\s\S]*auth pass[\s\S]*sender not verified/, 'the inbox row warns beside the green verdict');
    const page = await agent.get(`/messages/${forged.id}`).expect(200);
    assert.match(page.text, /<span class="badge red"[^>]*>sender not verified<\/span>/);
    assert.match(page.text, /<dt>Sender<\/dt><dd>not verified — the From address may be forged<\/dd>/);
    const plain = await agent.get(`/messages/${ids.html}`).expect(200);
    assert.doesNotMatch(plain.text, /sender not verified/);
  });

  it('serves the HTML part sanitised, in a sandboxed iframe, from a route with its own strict CSP', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const page = await agent.get(`/messages/${ids.html}`).expect(200);
    assert.match(page.text, /<iframe class="msg-body-frame"[^>]*sandbox="allow-popups allow-popups-to-escape-sandbox"/);
    assert.doesNotMatch(page.text, /sandbox="[^"]*allow-scripts/);
    assert.match(page.text, /Load images \(1\)/);
    const body = await agent.get(`/messages/${ids.html}/body`).expect(200);
    const csp = body.headers['content-security-policy'];
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /img-src data:(;|$)/);
    assert.match(csp, /style-src 'unsafe-inline'/);
    assert.match(csp, /sandbox allow-popups/);
    assert.doesNotMatch(csp, /allow-scripts/);
    assert.match(body.text, /Hello <b>Bob<\/b>/);
    assert.doesNotMatch(body.text, /<script|onerror|javascript:|tracker\.example/i);
    const withImages = await agent.get(`/messages/${ids.html}/body?images=1`).expect(200);
    assert.match(withImages.text, /src="https:\/\/tracker\.example\/pixel\.gif"/);
    assert.match(withImages.headers['content-security-policy'], /img-src data: https: http:/);
  });

  it('downloads attachments and the raw .eml, always as attachments', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const pdf = await agent.get(`/messages/${ids.html}/attachments/0`).buffer(true).expect(200);
    assert.match(pdf.headers['content-disposition'], /^attachment; filename="?report\.pdf"?$/);
    assert.equal(Buffer.from(pdf.body).toString(), '%PDF-1.4 test');
    const html = await agent.get(`/messages/${ids.html}/attachments/1`).expect(200);
    assert.match(html.headers['content-disposition'], /^attachment/);
    assert.match(html.headers['content-security-policy'], /sandbox/);
    await agent.get(`/messages/${ids.html}/attachments/7`).expect(404);
    await agent.get(`/messages/${ids.html}/attachments/x`).expect(404);
    const raw = await agent.get(`/messages/${ids.imap}/raw`).buffer(true).parse((res, cb) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => cb(null, Buffer.concat(chunks)));
    }).expect(200);
    assert.match(raw.headers['content-type'], /^message\/rfc822/);
    assert.match(raw.headers['content-disposition'], /attachment; filename="Synced by IMAP\.eml"/);
    assert.match((raw.body as Buffer).toString(), /^[\s\S]*Subject: Synced by IMAP/);
  });

  it('shows and downloads attachment names without control or bidi-override characters, so invoice<RLO>fdp.exe cannot pass for a PDF', async () => {
    const { id } = await storeMessage(store, {
      subject: 'Your invoice',
      attachments: [
        { filename: 'invoice\u202Efdp.exe', content: 'MZ', contentType: 'application/octet-stream' },
        { filename: 'notes\r\nX-Evil: 1\u0007.txt', content: 'x', contentType: 'text/plain' },
      ],
    }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() + 205 * 60_000) });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const page = await agent.get(`/messages/${id}`).expect(200);
    // Shown right to left from the override on, the first name reads "invoiceexe.pdf".
    assert.ok(!/[\u202A-\u202E\u2066-\u2069\r\u0007]/.test(page.text), 'no control or bidi-override character in the page');
    assert.match(page.text, /download>invoicefdp\.exe</);
    assert.match(page.text, /download>notesX-Evil: 1\.txt</);
    const exe = await agent.get(`/messages/${id}/attachments/0`).expect(200);
    assert.match(exe.headers['content-disposition'], /^attachment; filename="?invoicefdp\.exe"?$/);
    const notes = await agent.get(`/messages/${id}/attachments/1`).expect(200);
    assert.match(notes.headers['content-disposition'], /^attachment; filename="notesX-Evil: 1\.txt"$/);
  });

  it('shows and downloads an attachment named with a directory path under its last part only (RFC 2183)', async () => {
    const { id } = await storeMessage(store, {
      subject: 'Quote and log',
      attachments: [
        { filename: 'C:\\Users\\jane\\Documents\\Quote 2026.pdf', content: '%PDF-1.4', contentType: 'application/pdf' },
        { filename: '../../etc/passwd', content: 'root:x:0:0', contentType: 'text/plain' },
      ],
    }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() - 101 * 86_400_000) });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const page = await agent.get(`/messages/${id}`).expect(200);
    assert.match(page.text, /download>Quote 2026\.pdf</);
    assert.match(page.text, /download>passwd</);
    assert.doesNotMatch(page.text, /Users|etc\//);
    const quote = await agent.get(`/messages/${id}/attachments/0`).expect(200);
    assert.match(quote.headers['content-disposition'], /^attachment; filename="Quote 2026\.pdf"$/, 'saved under the name shown');
  });

  it('highlights a forwarding confirmation code with a copy button', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const res = await agent.get(`/messages/${ids.confirmation}`).expect(200);
    assert.match(res.text, /<span class="code" id="confirmation-code">638294017<\/span>/);
    assert.match(res.text, /data-copy="638294017"/);
    const list = await agent.get('/').expect(200);
    assert.match(list.text, /code 638294017/);
  });

  it("answers 404 to an employee reading another user's message (page, frame, raw, attachment) and to bad ids", async () => {
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    for (const suffix of ['', '/body', '/raw', '/attachments/0']) await agent.get(`/messages/${ids.eve}${suffix}`).expect(404);
    await agent.post(`/messages/${ids.eve}/delete`).type('form').send({ _csrf: csrf }).expect(404);
    await agent.get('/messages/not-an-object-id').expect(404);
    await agent.get('/messages/ffffffffffffffffffffffff').expect(404);
    const inbox = await agent.get('/?status=all').expect(200);
    assert.doesNotMatch(inbox.text, /Eve private mail/);
    const admin = await signIn(testApp.app, 'admin@acme.test');
    await admin.agent.get(`/messages/${ids.eve}`).expect(200);
    const all = await admin.agent.get('/').expect(200);
    assert.match(all.text, /Eve private mail/);
  });

  it('releases a quarantined message to the inbox (audited)', async () => {
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    await agent.post(`/messages/${ids.quarantined}/release`).type('form').send({ _csrf: csrf }).expect(303);
    assert.equal((await store.models.Message.findById(ids.quarantined).lean())!.status, 'inbox');
    assert.ok(await store.models.AuditEvent.exists({ action: 'message.release', targetId: ids.quarantined }));
    // A second click (a double click shows the answer to the second) says it is done, not an error page.
    await agent.post(`/messages/${ids.quarantined}/release`).type('form').send({ _csrf: csrf }).expect(303).expect('Location', `/messages/${ids.quarantined}`);
    assert.match((await agent.get(`/messages/${ids.quarantined}`).expect(200)).text, /This message is already in the inbox: it was released \(or was never held\)\./);
    assert.equal(await store.models.AuditEvent.countDocuments({ action: 'message.release', targetId: ids.quarantined }), 1, 'released and audited once');
  });

  it('goes back to the search and page a message was opened from, also after deleting it', async () => {
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    const first = await agent.get('/?q=order&status=all').expect(200);
    const older = `/${/href="(\?[^"]*cursor=[^"]+)"/.exec(first.text)![1].replace(/&amp;/g, '&')}`;
    const second = await agent.get(older).expect(200);
    const opened = /class="msg-row[^"]*" href="\/messages\/([0-9a-f]{24})"/.exec(second.text)![1];
    const escaped = older.replace(/&/g, '&amp;');
    const page = await agent.get(`/messages/${opened}`).set('Referer', `http://127.0.0.1:8080${older}`).expect(200);
    assert.match(page.text, new RegExp(`<a id="back" href="${escaped.replace(/[?]/g, '\\?')}">« Back to Emails</a>`), 'Back returns to page 2 of the search');
    const direct = await agent.get(`/messages/${opened}`).expect(200);
    assert.match(direct.text, /<a id="back" href="\/">« Back to Emails<\/a>/, 'opened from elsewhere, Back goes to the inbox');
    const fromObject = await agent.get(`/messages/${opened}`).set('Referer', 'http://127.0.0.1:8080/objects/abc').expect(200);
    assert.match(fromObject.text, /<a id="back" href="\/">/);
    const { id } = await storeMessage(store, { subject: 'Order to delete', from: 'shop@customer.test' }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() - 96 * 86_400_000) });
    const deleted = await agent.post(`/messages/${id}/delete`).type('form').send({ _csrf: csrf, back: older }).expect(303);
    assert.equal(deleted.headers.location, older, 'deleting returns to the list it was opened from');
    const { id: other } = await storeMessage(store, { subject: 'Order to delete too', from: 'shop@customer.test' }, { ownerId: bob.id, accountId: bobAccount.id, receivedAt: new Date(base.getTime() - 97 * 86_400_000) });
    const elsewhere = await agent.post(`/messages/${other}/delete`).type('form').send({ _csrf: csrf, back: 'https://evil.test/' }).expect(303);
    assert.equal(elsewhere.headers.location, '/', 'only an inbox path of this site');
  });

  it('deletes a message with a tombstone so a sync cannot bring it back, and removes its raw bytes', async () => {
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    const doc = (await store.models.Message.findById(ids.imap).lean())!;
    await agent.post(`/messages/${ids.imap}/delete`).type('form').send({ _csrf: csrf }).expect(303);
    assert.equal(await store.models.Message.exists({ _id: ids.imap }), null);
    assert.ok(await store.models.Tombstone.exists({ mailboxKey: doc.mailboxKey, dedupeKey: doc.dedupeKey }));
    assert.ok(doc.rawBlobId && doc.attachments.length > 0, 'this message keeps its raw bytes (with its attachment) in GridFS');
    await assert.rejects(store.blobs.get(doc.rawBlobId), /FileNotFound|not found/i);
    assert.equal(await store.conn.db!.collection('raw.files').countDocuments({ 'metadata.owner.id': doc._id }), 0, 'no file of the message is left');
    await agent.get(`/messages/${ids.imap}`).expect(404);
  });
});
