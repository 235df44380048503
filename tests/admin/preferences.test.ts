import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { LoginThrottle } from '../../gateway/accounts';
import { buildApp, csrfFrom, GATEWAY_DOMAIN, holdAuthenticate, makeAccount, makeUser, PASSWORD, signIn, storeMessage, type TestApp, type TestStore } from './fixtures';
import { freePort } from '../../gateway/store/embedded-ferretdb';
import { openTestStore } from '../support/store';

describe('admin: Preferences → Email, Business, Profile', () => {
  let store: TestStore;
  let testApp: TestApp;
  before(async () => {
    store = await openTestStore('admin_prefs');
    testApp = buildApp(store);
    await makeUser(store, 'admin@acme.test', 'admin');
    await makeUser(store, 'bob@acme.test');
    await makeUser(store, 'eve@acme.test');
  });
  after(async () => store.drop());

  it('shows an empty state that says what to do next', async () => {
    const { agent } = await signIn(testApp.app, 'eve@acme.test');
    const res = await agent.get('/preferences/email').expect(200);
    assert.match(res.text, /No mail accounts yet/);
    assert.match(res.text, /href="\/preferences\/email\/new"/);
  });

  it('Add → Save creates the account with its forwarding address, then Edit shows it with provider instructions', async () => {
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    const form = await agent.get('/preferences/email/new').expect(200);
    assert.match(form.text, /name="email"/);
    const saved = await agent.post('/preferences/email').type('form').send({ _csrf: csrf, email: ' Bob@Gmail.com ' }).expect(303);
    const account = await store.models.MailAccount.findOne({ email: 'bob@gmail.com' }).lean();
    assert.ok(account, 'the account is stored lower-cased');
    assert.equal(saved.headers.location, `/preferences/email/${account._id}`);
    assert.match(account.forwardingAddress, new RegExp(`^bob-gmail-com\\.[a-z2-9]{16}@${GATEWAY_DOMAIN.replace(/\./g, '\\.')}$`));
    const edit = await agent.get(saved.headers.location).expect(200);
    assert.ok(edit.text.includes(account.forwardingAddress), 'Edit shows the forwarding address');
    assert.match(edit.text, /data-copy="[^"]*@in\.postroom\.test"/, 'with a copy button');
    assert.match(edit.text, /Forwarding and POP\/IMAP/, 'Gmail instructions for a gmail.com mailbox');
    assert.match(edit.text, /id="forwarding-next">Once forwarding is on, check it: from another mailbox, send a message to <strong>bob@gmail\.com<\/strong> \(not to the forwarding address\)/,
      'says how to check forwarding (a test sent to the forwarding address itself proves nothing)');
    assert.match(edit.text, /Added bob@gmail\.com/, 'flash message');
    const list = await agent.get('/preferences/email').expect(200);
    assert.match(list.text, /bob@gmail\.com/);
    assert.match(list.text, /Forwarding: waiting/);
    assert.match(list.text, /IMAP: off/);
    const audit = await store.models.AuditEvent.findOne({ action: 'account.create', targetId: account._id.toString() }).lean();
    assert.equal(audit?.actorEmail, 'bob@acme.test');
  });

  it('re-renders Add with a field error for a bad address (400) and for a duplicate (409)', async () => {
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    const bad = await agent.post('/preferences/email').type('form').send({ _csrf: csrf, email: 'not-an-address' }).expect(400);
    assert.match(bad.text, /is not an email address/);
    assert.match(bad.text, /value="not-an-address"/);
    assert.match(bad.text, /aria-invalid="true"/);
    await agent.post('/preferences/email').type('form').send({ _csrf: csrf, email: 'dup@acme.test' }).expect(303);
    const dup = await agent.post('/preferences/email').type('form').send({ _csrf: csrf, email: 'DUP@acme.test' }).expect(409);
    assert.match(dup.text, /already one of your mail accounts/);
    // The forwarding address Postroom showed, pasted back into Add by mistake.
    const own = await agent.post('/preferences/email').type('form').send({ _csrf: csrf, email: `bob-acme-com.abcdefgh23456789@${GATEWAY_DOMAIN.toUpperCase()}` }).expect(400);
    assert.match(own.text, /is a Postroom address \(@in\.postroom\.test\), not a mailbox of yours: type the address you read your mail at/);
    assert.equal(await store.models.MailAccount.countDocuments({ domain: GATEWAY_DOMAIN }), 0);
    // The same Gmail mailbox spelt another way (Gmail ignores dots; googlemail.com is gmail.com).
    await agent.post('/preferences/email').type('form').send({ _csrf: csrf, email: 'dana.smith@gmail.com' }).expect(303);
    for (const other of ['danasmith@gmail.com', 'Dana.Smith@googlemail.com']) {
      const same = await agent.post('/preferences/email').type('form').send({ _csrf: csrf, email: other }).expect(409);
      assert.match(same.text, /is the same Gmail mailbox as your account dana\.smith@gmail\.com/);
    }
    // Another employee may add it: each gets a forwarding address of their own.
    const { agent: eve, csrf: eveCsrf } = await signIn(testApp.app, 'eve@acme.test');
    await eve.post('/preferences/email').type('form').send({ _csrf: eveCsrf, email: 'danasmith@gmail.com' }).expect(303);
  });

  it('keeps a flash message for the page it belongs to, even if a 404 request (browser housekeeping) comes first', async () => {
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    const saved = await agent.post('/preferences/email').type('form').send({ _csrf: csrf, email: 'flash@acme.test' }).expect(303);
    await agent.get('/.well-known/appspecific/com.chrome.devtools.json').expect(404);
    await agent.get('/favicon.ico').expect(301);
    const page = await agent.get(saved.headers.location).expect(200);
    assert.match(page.text, /class="flash success"[^>]*>Added flash@acme\.test/);
    const again = await agent.get(saved.headers.location).expect(200);
    assert.doesNotMatch(again.text, /class="flash success"/, 'shown once');
  });

  it('stores the session before a redirect leaves, so a browser that follows on headers alone still sees the flash', async () => {
    const { app } = buildApp(store);
    const { agent, csrf } = await signIn(app, 'bob@acme.test');
    // Fault injection: a slow session store write (300 ms).
    const sessions = app.locals.deps.sessions;
    const originalSet = sessions.set.bind(sessions);
    sessions.set = (sid, data, callback) => void setTimeout(() => originalSet(sid, data, callback), 300);
    const server = http.createServer(app).listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const cookie = (agent as unknown as { jar: { getCookies(o: unknown): Array<{ toValueString(): string }> } }).jar
        .getCookies({ domain: '127.0.0.1', path: '/', secure: false, script: false }).map((c) => c.toValueString()).join('; ');
      const body = new URLSearchParams({ _csrf: csrf, email: 'racy@acme.test' }).toString();
      // Like a browser: follow the 303 as soon as its headers arrive, without waiting for the body.
      const location = await new Promise<string>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/preferences/email', method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } }, (res) => {
          resolve(String(res.headers.location));
          res.resume();
        });
        req.on('error', reject);
        req.end(body);
      });
      const page = await new Promise<string>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: location, headers: { cookie } }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve(text));
        }).on('error', reject);
      });
      assert.match(page, /class="flash success"[^>]*>Added racy@acme\.test/);
    } finally {
      sessions.set = originalSet;
      server.close();
    }
  });

  it('shows provider instructions for another provider on request', async () => {
    const bob = (await store.models.User.findOne({ email: 'bob@acme.test' }).lean())!;
    const account = await makeAccount(store, { id: bob._id.toString() } as never, 'bob-outlook@acme.test');
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const res = await agent.get(`/preferences/email/${account.id}?provider=outlook`).expect(200);
    assert.match(res.text, /Settings → Mail → Forwarding/);
  });

  it('shows the latest confirmation code with a copy button', async () => {
    const bob = (await store.models.User.findOne({ email: 'bob@acme.test' }).lean())!;
    const account = await makeAccount(store, { id: bob._id.toString() } as never, 'code@gmail.com');
    await store.models.MailAccount.updateOne({ _id: account.id }, { $set: { 'forwarding.status': 'code_received', 'forwarding.confirmationCode': '638294017', 'forwarding.provider': 'google', 'forwarding.confirmationAt': new Date() } });
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const res = await agent.get(`/preferences/email/${account.id}`).expect(200);
    assert.match(res.text, /<span class="code" id="confirmation-code">638294017<\/span>/);
    assert.match(res.text, /data-copy="638294017"/);
    assert.match(res.text, /Latest confirmation code from Gmail \(/, 'the provider by its name, not its id');
    const inbox = await agent.get('/').expect(200);
    assert.match(inbox.text, /638294017/, 'the dashboard shows pending codes too');
    assert.match(inbox.text, /<strong>Gmail<\/strong> sent a forwarding confirmation code for <strong>code@gmail\.com<\/strong>/);
  });

  it('IMAP Support: a preset fills host/port/TLS, the password is sealed and never shown again', async () => {
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    const bob = (await store.models.User.findOne({ email: 'bob@acme.test' }).lean())!;
    const account = await makeAccount(store, { id: bob._id.toString() } as never, 'imap@gmail.com');
    await agent.post(`/preferences/email/${account.id}`).type('form')
      .send({ _csrf: csrf, enabled: 'on', service: 'gmail', host: '', port: '', tls: '', username: 'imap@gmail.com', password: 'app-password-123', action: 'save' })
      .expect(303).expect('Location', `/preferences/email/${account.id}#imap`);
    const stored = (await store.models.MailAccount.findById(account.id).lean())!;
    assert.equal(stored.imap!.host, 'imap.gmail.com');
    assert.equal(stored.imap!.port, 993);
    assert.equal(stored.imap!.tls, 'implicit');
    assert.equal(stored.imap!.status, 'unverified');
    assert.equal(stored.imap!.enabled, true);
    assert.doesNotMatch(JSON.stringify(stored), /app-password-123/);
    assert.equal(testApp.secretBox.open(stored.imap!.passwordEnc, account.id), 'app-password-123');
    const page = await agent.get(`/preferences/email/${account.id}`).expect(200);
    assert.doesNotMatch(page.text, /app-password-123/);
    assert.match(page.text, /Saved — leave blank to keep it/);
    // Saved but not checked: the syncer skips it, and the page says so (the flash, and for good in the panel).
    assert.match(page.text, /IMAP settings saved\. Click Authenticate to check them: this mailbox is not synced until it signs in\./);
    assert.match(page.text, /id="imap-sync-waits">· Not synced until you click Authenticate\.</);
    // Saving again with a blank password keeps the stored one.
    await agent.post(`/preferences/email/${account.id}`).type('form')
      .send({ _csrf: csrf, enabled: 'on', service: 'gmail', host: 'imap.gmail.com', port: '993', tls: 'implicit', username: 'imap@gmail.com', password: '', action: 'save' }).expect(303);
    const again = (await store.models.MailAccount.findById(account.id).lean())!;
    assert.equal(testApp.secretBox.open(again.imap!.passwordEnc, account.id), 'app-password-123');
    const audit = await store.models.AuditEvent.find({ action: 'account.update', targetId: account.id }).lean();
    assert.ok(audit.some((event) => (event.details as { changed: string[] }).changed.includes('imap.password')));
    assert.doesNotMatch(JSON.stringify(audit), /app-password-123/);
  });

  it('IMAP Support, first time: the mailbox\'s own service is chosen and filled in, with its app-password hint', async () => {
    const { agent } = await signIn(testApp.app, 'bob@acme.test');
    const bob = (await store.models.User.findOne({ email: 'bob@acme.test' }).lean())!;
    const yahoo = await makeAccount(store, { id: bob._id.toString() } as never, 'first.timer@yahoo.com');
    const page = await agent.get(`/preferences/email/${yahoo.id}`).expect(200);
    assert.match(page.text, /<option value="yahoo" selected>Yahoo Mail<\/option>/, 'Yahoo Mail, not Custom');
    assert.match(page.text, /id="imap-host" name="host" value="imap\.mail\.yahoo\.com"/);
    assert.match(page.text, /id="imap-port" name="port" value="993"/);
    assert.match(page.text, /id="imap-username" name="username" value="first\.timer@yahoo\.com"/, 'the mailbox address as the user name, not only a grey placeholder');
    assert.match(page.text, /id="imap-password-service-hint">Generate an app password/);
    assert.match(page.text, /data-hints="[^"]*App passwords/, 'the hints of the other services, for app.js to switch to');
    // The provider tab the user picked for forwarding (a Google Workspace domain) chooses the service too.
    const workspace = await makeAccount(store, { id: bob._id.toString() } as never, 'bob@bobs-bakery.test');
    const tab = await agent.get(`/preferences/email/${workspace.id}?provider=gmail`).expect(200);
    assert.match(tab.text, /<option value="gmail" selected>/);
    assert.match(tab.text, /id="imap-host" name="host" value="imap\.gmail\.com"/);
    // Once saved, what was saved is shown, whatever the mailbox's domain suggests.
    await store.models.MailAccount.updateOne({ _id: yahoo.id }, { $set: { 'imap.service': 'custom', 'imap.host': 'mail.example.test', 'imap.username': 'ft' } });
    const saved = await agent.get(`/preferences/email/${yahoo.id}`).expect(200);
    assert.match(saved.text, /<option value="custom" selected>/);
    assert.match(saved.text, /id="imap-host" name="host" value="mail\.example\.test"/);
    assert.match(saved.text, /id="imap-username" name="username" value="ft"/);
  });

  it('IMAP Support: bad input re-renders the form with field errors (400) and keeps what was typed', async () => {
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    const bob = (await store.models.User.findOne({ email: 'bob@acme.test' }).lean())!;
    const account = await makeAccount(store, { id: bob._id.toString() } as never, 'bad-imap@acme.test');
    const res = await agent.post(`/preferences/email/${account.id}`).type('form')
      .send({ _csrf: csrf, enabled: 'on', service: 'custom', host: 'bad host!', port: '99999', tls: 'implicit', username: 'someone', password: '', action: 'save' })
      .expect(400);
    assert.match(res.text, /must be a host name/);
    assert.match(res.text, /from 1 to 65535/);
    assert.match(res.text, /value="bad host!"/);
    // Shown where the page opens (the form posts to #imap), with what became of the password.
    assert.match(res.text, /action="\/preferences\/email\/[0-9a-f]{24}#imap"/);
    assert.match(res.text, /id="imap-form-errors"[^>]*>\s*<strong>Not saved\.<\/strong> Correct the fields marked below\./);
    for (const port of ['0', '70000', 'abc']) {
      const refused = await agent.post(`/preferences/email/${account.id}`).type('form')
        .send({ _csrf: csrf, enabled: 'on', service: 'custom', host: 'imap.acme.test', port, tls: 'implicit', username: 'someone', password: 'typed-secret', action: 'save' })
        .expect(400);
      assert.match(refused.text, /id="imap-port-error">must be a whole number from 1 to 65535</, port);
      assert.match(refused.text, /Correct the field marked below, and type the password again: it is never sent back to the browser\./, port);
      assert.doesNotMatch(refused.text, /typed-secret/, 'the password is not echoed');
    }
    const missing = await agent.post(`/preferences/email/${account.id}`).type('form')
      .send({ _csrf: csrf, enabled: 'on', service: 'custom', host: 'imap.acme.test', port: '993', tls: 'implicit', username: 'someone', password: '', action: 'save' })
      .expect(400);
    assert.match(missing.text, /is needed to turn this on/, 'turning IMAP on needs a password');
    const stored = (await store.models.MailAccount.findById(account.id).lean())!;
    assert.equal(stored.imap!.enabled, false, 'nothing was saved');
  });

  it('IMAP Support: picks other folders to sync, one per line; refuses a bad name with the rest kept', async () => {
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    const bob = (await store.models.User.findOne({ email: 'bob@acme.test' }).lean())!;
    const account = await makeAccount(store, { id: bob._id.toString() } as never, 'folders@acme.test');
    const form = { _csrf: csrf, service: 'custom', host: 'imap.acme.test', port: '993', tls: 'implicit', username: 'someone', password: '', action: 'save' };
    await agent.post(`/preferences/email/${account.id}`).type('form').send({ ...form, folders: ' Archive \r\nProjects/Acme, Ltd\r\n\r\ninbox\r\nArchive' }).expect(303);
    assert.deepEqual((await store.models.MailAccount.findById(account.id).lean())!.imap!.folders, ['Archive', 'Projects/Acme, Ltd'], 'trimmed; blanks, INBOX and repeats dropped');
    const page = await agent.get(`/preferences/email/${account.id}`).expect(200);
    assert.match(page.text, /<textarea id="imap-folders" name="folders"[^>]*>Archive\nProjects\/Acme, Ltd<\/textarea>/);

    const tooMany = Array.from({ length: 21 }, (_, i) => `Folder ${i}`).join('\n');
    const refused = await agent.post(`/preferences/email/${account.id}`).type('form').send({ ...form, folders: tooMany }).expect(400);
    assert.match(refused.text, /id="imap-folders-error">at most 20 folders besides INBOX and Sent</);
    assert.match(refused.text, /Folder 20<\/textarea>/, 'what was typed is kept');
    assert.deepEqual((await store.models.MailAccount.findById(account.id).lean())!.imap!.folders, ['Archive', 'Projects/Acme, Ltd'], 'nothing was saved');

    await agent.post(`/preferences/email/${account.id}`).type('form').send({ ...form, folders: '' }).expect(303);
    assert.deepEqual((await store.models.MailAccount.findById(account.id).lean())!.imap!.folders, [], 'emptied');
  });

  it('Authenticate reports a precise failure (connection refused) and records it on the account', async () => {
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    const bob = (await store.models.User.findOne({ email: 'bob@acme.test' }).lean())!;
    const account = await makeAccount(store, { id: bob._id.toString() } as never, 'refused@acme.test');
    const port = await freePort(); // nothing listens there
    await agent.post(`/preferences/email/${account.id}`).type('form')
      .send({ _csrf: csrf, enabled: 'on', service: 'custom', host: '127.0.0.1', port: String(port), tls: 'implicit', username: 'u', password: 'p', action: 'authenticate' })
      .expect(303);
    const page = await agent.get(`/preferences/email/${account.id}`).expect(200);
    assert.match(page.text, /id="imap-last-error"><strong>CONNECTION_REFUSED<\/strong>: /);
    assert.doesNotMatch(page.text, /class="flash error"/, 'said once, in the IMAP panel, not again in a flash');
    assert.match(page.text, /IMAP: failing/);
    // Not a password problem: the page does not send the user to retype it.
    assert.match(page.text, /id="imap-sync-waits">· Sync has stopped until Authenticate succeeds \(see the problem below\)\.</);
    const stored = (await store.models.MailAccount.findById(account.id).lean())!;
    assert.equal(stored.imap!.lastErrorCode, 'CONNECTION_REFUSED');
    assert.equal(stored.imap!.status, 'failing');
  });

  it('disable/enable and delete (with typed confirmation) an account', async () => {
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    const bob = (await store.models.User.findOne({ email: 'bob@acme.test' }).lean())!;
    const account = await makeAccount(store, { id: bob._id.toString() } as never, 'gone@acme.test');
    await agent.post(`/preferences/email/${account.id}/disable`).type('form').send({ _csrf: csrf }).expect(303);
    assert.equal((await store.models.MailAccount.findById(account.id).lean())!.enabled, false);
    await agent.post(`/preferences/email/${account.id}/enable`).type('form').send({ _csrf: csrf }).expect(303);
    assert.equal((await store.models.MailAccount.findById(account.id).lean())!.enabled, true);
    const confirm = await agent.get(`/preferences/email/${account.id}/delete`).expect(200);
    assert.match(confirm.text, /Type <strong>gone@acme\.test<\/strong> to confirm/);
    await agent.post(`/preferences/email/${account.id}/delete`).type('form').send({ _csrf: csrf, confirm: 'wrong' }).expect(400);
    assert.ok(await store.models.MailAccount.exists({ _id: account.id }));
    const kept = await storeMessage(store, { subject: 'Mail that stays' }, { ownerId: bob._id.toString(), accountId: account.id });
    await agent.post(`/preferences/email/${account.id}/delete`).type('form').send({ _csrf: csrf, confirm: ' Gone@Acme.test ' }).expect(303);
    assert.equal(await store.models.MailAccount.exists({ _id: account.id }), null);
    // Its mail stays, and says where it came from.
    const inbox = await agent.get('/?q=stays').expect(200);
    assert.match(inbox.text, /Mail that stays[\s\S]*?<span class="badge grey">deleted account<\/span>/);
    const message = await agent.get(`/messages/${kept.id}`).expect(200);
    assert.match(message.text, /<dt>Account<\/dt><dd class="muted">a mail account that was deleted/);
    const actions = (await store.models.AuditEvent.find({ targetId: account.id }).lean()).map((event) => event.action);
    assert.ok(actions.includes('account.delete') && actions.includes('account.disable') && actions.includes('account.enable'));
  });

  it("employees get 404 for another user's account (view, change, delete); admins may see all", async () => {
    const eve = (await store.models.User.findOne({ email: 'eve@acme.test' }).lean())!;
    const account = await makeAccount(store, { id: eve._id.toString() } as never, 'eve-private@acme.test');
    const { agent, csrf } = await signIn(testApp.app, 'bob@acme.test');
    await agent.get(`/preferences/email/${account.id}`).expect(404);
    await agent.post(`/preferences/email/${account.id}`).type('form').send({ _csrf: csrf, service: 'custom', action: 'save' }).expect(404);
    await agent.post(`/preferences/email/${account.id}/disable`).type('form').send({ _csrf: csrf }).expect(404);
    await agent.post(`/preferences/email/${account.id}/delete`).type('form').send({ _csrf: csrf, confirm: 'eve-private@acme.test' }).expect(404);
    await agent.get('/preferences/email/not-an-id').expect(404);
    const list = await agent.get('/preferences/email').expect(200);
    assert.doesNotMatch(list.text, /eve-private/);
    const admin = await signIn(testApp.app, 'admin@acme.test');
    await admin.agent.get(`/preferences/email/${account.id}`).expect(200);
    const all = await admin.agent.get('/preferences/email?all=1').expect(200);
    assert.match(all.text, /eve-private@acme\.test/);
    assert.match(all.text, /Owner: eve@acme\.test/);
  });

  it('Business: admins save domains/policy/retention (audited); bad values re-render with errors; employees cannot', async () => {
    const admin = await signIn(testApp.app, 'admin@acme.test');
    const page = await admin.agent.get('/preferences/business').expect(200);
    assert.match(page.text, /acme\.test/, 'BUSINESS_DOMAINS is the initial value');
    const bad = await admin.agent.post('/preferences/business').type('form').send({ _csrf: admin.csrf, name: 'Acme', domains: 'acme.com, not_a_domain', authPolicy: 'bounce', retentionDays: '-3' }).expect(400);
    assert.match(bad.text, /is not a domain name/);
    assert.match(bad.text, /must be quarantine or reject/);
    assert.match(bad.text, /whole number of days/);
    await admin.agent.post('/preferences/business').type('form').send({ _csrf: admin.csrf, name: 'Acme', domains: 'acme.com\nACME.co.uk', authPolicy: 'reject', retentionDays: '365' }).expect(303);
    const settings = (await store.models.BusinessSettings.findById('business').lean())!;
    assert.deepEqual([...settings.domains], ['acme.com', 'acme.co.uk']);
    assert.equal(settings.authPolicy, 'reject');
    assert.equal(settings.retentionDays, 365);
    assert.ok(await store.models.AuditEvent.exists({ action: 'settings.update' }));
    // An internationalised domain as people write it is kept in the A-label form the envelope, SPF and DKIM use (RFC 5890).
    await admin.agent.post('/preferences/business').type('form').send({ _csrf: admin.csrf, name: 'Acme', domains: 'acme.com, Bücher.test', authPolicy: 'reject', retentionDays: '365' }).expect(303);
    assert.deepEqual([...(await store.models.BusinessSettings.findById('business').lean())!.domains], ['acme.com', 'xn--bcher-kva.test']);
    const employee = await signIn(testApp.app, 'bob@acme.test');
    const view = await employee.agent.get('/preferences/business').expect(200);
    assert.match(view.text, /Only admins can change these settings/);
    await employee.agent.post('/preferences/business').type('form').send({ _csrf: employee.csrf, authPolicy: 'quarantine' }).expect(403);
    assert.equal((await store.models.BusinessSettings.findById('business').lean())!.authPolicy, 'reject');
  });

  it('Profile: change name; change password needs the current one and a long enough new one', async () => {
    await makeUser(store, 'pat@acme.test');
    const { agent, csrf } = await signIn(testApp.app, 'pat@acme.test');
    const profile = await agent.get('/preferences/profile').expect(200);
    assert.match(profile.text, /dropbox\.[a-z2-9]{16}@in\.postroom\.test/);
    await agent.post('/preferences/profile').type('form').send({ _csrf: csrf, name: 'Pat Doe' }).expect(303);
    assert.equal((await store.models.User.findOne({ email: 'pat@acme.test' }).lean())!.name, 'Pat Doe');
    const wrong = await agent.post('/preferences/profile/password').type('form').send({ _csrf: csrf, currentPassword: 'nope', newPassword: 'another-long-password', confirm: 'another-long-password' }).expect(400);
    assert.match(wrong.text, /is not correct/);
    const short = await agent.post('/preferences/profile/password').type('form').send({ _csrf: csrf, currentPassword: 'correct-horse-battery-staple', newPassword: 'short', confirm: 'short' }).expect(400);
    assert.match(short.text, /at least 12 characters/);
    const mismatch = await agent.post('/preferences/profile/password').type('form').send({ _csrf: csrf, currentPassword: 'correct-horse-battery-staple', newPassword: 'another-long-password', confirm: 'different-long-password' }).expect(400);
    assert.match(mismatch.text, /does not match/);
    // Every problem at once, none of the typed passwords sent back; the password is unchanged.
    const all = await agent.post('/preferences/profile/password').type('form').send({ _csrf: csrf, currentPassword: 'wrong-guess-1', newPassword: 'tiny-pw', confirm: 'tiny-px' }).expect(400);
    assert.match(all.text, /id="currentPassword-error"[^>]*>[^<]*is not correct/);
    assert.match(all.text, /id="newPassword-error"[^>]*>[^<]*at least 12 characters/);
    assert.match(all.text, /id="confirm-error"[^>]*>[^<]*does not match the new password/);
    for (const typed of ['wrong-guess-1', 'tiny-pw', 'tiny-px']) assert.ok(!all.text.includes(typed), `${typed} is not echoed`);
    const blank = await agent.post('/preferences/profile/password').type('form').send({ _csrf: csrf, currentPassword: '', newPassword: 'another-long-password', confirm: 'another-long-password' }).expect(400);
    assert.match(blank.text, /enter your current password/);
    await agent.post('/preferences/profile/password').type('form').send({ _csrf: csrf, currentPassword: 'correct-horse-battery-staple', newPassword: 'another-long-password', confirm: 'another-long-password' }).expect(303);
    await signIn(testApp.app, 'pat@acme.test', 'another-long-password');
  });

  it('Change password signs the user out everywhere else (a stolen session ends with the old password); this browser stays in', async () => {
    await makeUser(store, 'ruth@acme.test');
    const here = await signIn(testApp.app, 'ruth@acme.test');
    const elsewhere = await signIn(testApp.app, 'ruth@acme.test');
    await elsewhere.agent.get('/preferences/profile').expect(200);
    await here.agent.post('/preferences/profile/password').type('form')
      .send({ _csrf: here.csrf, currentPassword: PASSWORD, newPassword: 'ruths-new-long-password', confirm: 'ruths-new-long-password' }).expect(303);
    await here.agent.get('/preferences/profile').expect(200);
    await elsewhere.agent.get('/preferences/profile').expect(303).expect('Location', '/login?next=%2Fpreferences%2Fprofile');
    await elsewhere.agent.post('/preferences/profile').type('form').send({ _csrf: elsewhere.csrf, name: 'Mallory' }).expect(303);
    assert.notEqual((await store.models.User.findOne({ email: 'ruth@acme.test' }).lean())!.name, 'Mallory');
  });

  it('Change password: a request in flight at that moment does not bring the other session back when it ends', async () => {
    // The stolen session keeps a slow request going (Authenticate against an IMAP server held open here);
    // when it ends it saves its session (the success flash), after the password change ended that session.
    const owner = await makeUser(store, 'sam@acme.test');
    const here = await signIn(testApp.app, 'sam@acme.test');
    const stolen = await signIn(testApp.app, 'sam@acme.test');
    const slow = await holdAuthenticate(store, owner, stolen, 'slow-imap@acme.test');
    try {
      await here.agent.post('/preferences/profile/password').type('form')
        .send({ _csrf: here.csrf, currentPassword: PASSWORD, newPassword: 'sams-new-long-password', confirm: 'sams-new-long-password' }).expect(303);
      assert.equal((await slow.finish()).status, 303);
      assert.equal((await store.models.MailAccount.findById(slow.accountId).lean())!.imap!.status, 'authenticated', 'the slow request did finish its work');
      await stolen.agent.get('/preferences/profile').expect(303).expect('Location', '/login?next=%2Fpreferences%2Fprofile');
      await here.agent.get('/preferences/profile').expect(200);
    } finally {
      slow.close();
    }
  });

  it('Change password counts wrong current passwords with sign-in\'s throttle: locked after six, for both', async () => {
    await makeUser(store, 'quinn@acme.test');
    let now = new Date('2026-03-01T10:00:00Z');
    const clock = () => now;
    const { app } = buildApp(store, { clock, throttle: new LoginThrottle(clock) });
    const { agent, csrf } = await signIn(app, 'quinn@acme.test');
    const attempt = (currentPassword: string) =>
      agent.post('/preferences/profile/password').type('form').send({ _csrf: csrf, currentPassword, newPassword: 'a-new-long-password', confirm: 'a-new-long-password' });
    for (let i = 0; i < 6; i++) assert.equal((await attempt(`guess-number-${i}`)).status, 400);
    const locked = await attempt(PASSWORD).expect(429);
    assert.match(locked.text, /too many wrong passwords; try again in 30 s/);
    assert.equal(locked.headers['retry-after'], '30');
    const login = request.agent(app);
    const form = await login.get('/login').expect(200);
    await login.post('/login').type('form').send({ _csrf: csrfFrom(form.text), email: 'quinn@acme.test', password: PASSWORD }).expect(429);
    now = new Date(now.getTime() + 31_000);
    await attempt(PASSWORD).expect(303);
  });
});
