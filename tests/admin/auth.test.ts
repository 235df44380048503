import { strict as assert } from 'node:assert';
import request from 'supertest';
import { LoginThrottle } from '../../gateway/accounts';
import { publicUrlProblem, startAdmin } from '../../admin/server';
import { describeStartFailure } from '../../gateway/bin/lifecycle';
import { silentLogger } from '../../gateway/core/log';
import { ownWriteStreak, recordStoreWrite, storeWriteProblem, WRITE_FAILURE_FRESH_MS } from '../../gateway/core/store-writes';
import { buildApp, csrfFrom, holdAuthenticate, makeUser, PASSWORD, signIn, testConfig, type TestStore } from './fixtures';
import { captureLog } from '../support/log';
import { openTestStore } from '../support/store';

describe('admin: health, sign-in, sessions, CSRF, throttling', () => {
  let store: TestStore;
  before(async () => {
    store = await openTestStore('admin_auth');
    await makeUser(store, 'admin@acme.test', 'admin');
    await makeUser(store, 'bob@acme.test');
  });
  after(async () => store.drop());

  it('GET /healthz answers 200 {status:ok, store:up, writes:up} with a live store', async () => {
    const { app } = buildApp(store);
    const res = await request(app).get('/healthz').expect(200).expect('Content-Type', /json/);
    assert.deepEqual(res.body, { status: 'ok', store: 'up', writes: 'up' });
  });

  it('warns when invite links would point at localhost but the console listens for other machines', () => {
    assert.equal(publicUrlProblem('http://localhost:8080', '0.0.0.0'), 'PUBLIC_URL is http://localhost:8080 but the console listens on 0.0.0.0: invite links open only on this machine; set PUBLIC_URL to the address people open (example: PUBLIC_URL=https://postroom.acme.com)');
    assert.match(publicUrlProblem('http://127.0.0.1:8080', '192.168.1.20') ?? '', /^PUBLIC_URL is http:\/\/127\.0\.0\.1:8080 but the console listens on 192\.168\.1\.20/);
    assert.equal(publicUrlProblem('http://localhost:8080', '127.0.0.1'), null, 'npm start on loopback: localhost is right');
    assert.equal(publicUrlProblem('http://localhost:8080', '::1'), null);
    assert.equal(publicUrlProblem('https://postroom.acme.com', '0.0.0.0'), null);
  });

  it('tells the operator on the sign-in page how to create the first admin while there is none', async () => {
    const fresh = await openTestStore('admin_auth_fresh');
    try {
      const { app } = buildApp(fresh);
      const empty = await request(app).get('/login').expect(200);
      assert.match(empty.text, /No admin account exists yet\. To create the first one, start it with ADMIN_EMAIL and ADMIN_PASSWORD set, or run the CLI: npm run cli -- create-user --email you@example\.com/);
      await makeUser(fresh, 'bob@acme.test');
      assert.match((await request(app).get('/login').expect(200)).text, /No admin account exists yet/, 'an employee is no admin');
      await makeUser(fresh, 'it@acme.test', 'admin');
      assert.doesNotMatch((await request(app).get('/login').expect(200)).text, /No admin account/);
    } finally {
      await fresh.drop();
    }
  });

  it('GET /healthz answers 503 {status:unavailable, store:down} when the store is gone', async () => {
    const other = await openTestStore('admin_health_down');
    const { app } = buildApp(other);
    await other.drop(); // closes the connection
    const res = await request(app).get('/healthz').expect(503);
    assert.deepEqual(res.body, { status: 'unavailable', store: 'down', writes: 'down', problem: 'not connected to the store' });
  });

  it('GET /healthz answers 503 naming the problem while this process\'s mail is not being stored, and 200 again once a message is', async () => {
    const { app } = buildApp(store);
    recordStoreWrite(false);
    recordStoreWrite(false);
    const res = await request(app).get('/healthz').expect(503);
    assert.equal(res.body.status, 'unavailable');
    assert.equal(res.body.store, 'up', 'the store answers pings');
    assert.equal(res.body.writes, 'down');
    assert.match(res.body.problem, /^the store did not take the last 2 messages of this process \(the latest \d+ s ago\): mail waits/);
    recordStoreWrite(true);
    assert.deepEqual((await request(app).get('/healthz').expect(200)).body, { status: 'ok', store: 'up', writes: 'up' });
  });

  it('logs a store that does not take mail once, not at every probe as its "seconds ago" moves on', async () => {
    const capture = captureLog('info');
    const { app } = buildApp(store, { log: capture.log });
    recordStoreWrite(false, Date.now() - 5_000);
    assert.match((await request(app).get('/healthz').expect(503)).body.problem, /the latest 5 s ago/);
    recordStoreWrite(false, Date.now() - 9_000);
    assert.match((await request(app).get('/healthz').expect(503)).body.problem, /last 2 messages .*the latest 9 s ago/);
    assert.equal(capture.lines.filter((line) => line.event === 'health.unavailable').length, 1, 'once for the problem, not per probe');
    recordStoreWrite(true);
  });

  it('stops counting refusals against the store after two minutes without mail to try again', async () => {
    recordStoreWrite(false, Date.now() - WRITE_FAILURE_FRESH_MS - 1000);
    assert.equal(storeWriteProblem(ownWriteStreak(), 'this process'), undefined);
    recordStoreWrite(false);
    assert.match(storeWriteProblem(ownWriteStreak(), 'this process') ?? '', /last 2 messages/);
    recordStoreWrite(true);
  });

  it('sends strict security headers: CSP without inline script, no framing by others, nosniff', async () => {
    const { app } = buildApp(store);
    const res = await request(app).get('/login').expect(200);
    const csp = res.headers['content-security-policy'];
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /object-src 'none'/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['x-powered-by'], undefined);
  });

  it('redirects anonymous visitors to the sign-in page and back after signing in', async () => {
    const { app } = buildApp(store);
    const agent = request.agent(app);
    const res = await agent.get('/preferences/email').expect(303);
    assert.equal(res.headers.location, '/login?next=%2Fpreferences%2Femail');
    const form = await agent.get(res.headers.location).expect(200);
    assert.match(form.text, /name="next" value="\/preferences\/email"/);
    const login = await agent.post('/login').type('form').send({ _csrf: csrfFrom(form.text), email: 'bob@acme.test', password: PASSWORD, next: '/preferences/email' }).expect(303);
    assert.equal(login.headers.location, '/preferences/email');
    await agent.get('/preferences/email').expect(200);
  });

  it('never redirects off-site after sign-in (open redirect)', async () => {
    const { app } = buildApp(store);
    const agent = request.agent(app);
    const form = await agent.get('/login').expect(200);
    const login = await agent.post('/login').type('form').send({ _csrf: csrfFrom(form.text), email: 'bob@acme.test', password: PASSWORD, next: '//evil.test/x' }).expect(303);
    assert.equal(login.headers.location, '/');
  });

  it('sets HttpOnly, SameSite=Lax cookies and rotates the session id at sign-in', async () => {
    const { app } = buildApp(store);
    const agent = request.agent(app);
    const visitor = await agent.get('/login').expect(200);
    assert.match(String(visitor.headers['set-cookie']), /^postroom\.csrf=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/, 'the visitor cookie a sign-in form is bound to');
    // A stale form stores a session for its message ("That form had expired"): a session that exists before sign-in.
    await agent.post('/login').type('form').send({ _csrf: 'stale', email: 'bob@acme.test', password: PASSWORD }).expect(303);
    const form = await agent.get('/login').expect(200);
    assert.match(form.text, /That form had expired/);
    const sessionCookie = String(agent.jar.getCookie('postroom.sid', { domain: '127.0.0.1', path: '/', script: false, secure: false }));
    const before = /postroom\.sid=([^;]+)/.exec(sessionCookie)![1];
    const login = await agent.post('/login').type('form').send({ _csrf: csrfFrom(form.text), email: 'bob@acme.test', password: PASSWORD }).expect(303);
    assert.match(String(login.headers['set-cookie']), /postroom\.sid=[^;]+; Path=\/; Expires=[^;]+; HttpOnly; SameSite=Lax/);
    assert.doesNotMatch(String(login.headers['set-cookie']), /Secure/i);
    const after = /postroom\.sid=([^;]+)/.exec(String(login.headers['set-cookie']))![1];
    assert.notEqual(after, before, 'the session id must change at sign-in (session fixation)');
    // The pre-login session no longer exists in the store.
    const oldSid = decodeURIComponent(before).slice(2).split('.')[0];
    assert.equal(await store.models.Session.countDocuments({ _id: oldSid }), 0);
  });

  it('marks the cookie Secure when PUBLIC_URL is https (behind a TLS proxy)', async () => {
    const { app } = buildApp(store, { env: { PUBLIC_URL: 'https://postroom.acme.test', TRUST_PROXY: 'true' } });
    const res = await request(app).get('/login').set('X-Forwarded-Proto', 'https').expect(200);
    assert.match(String(res.headers['set-cookie']), /Secure/);
    assert.match(res.headers['strict-transport-security'], /max-age=/);
  });

  it('over https, names its cookies __Host-, so a sibling subdomain cannot plant a sign-in form cookie (login CSRF)', async () => {
    const { app } = buildApp(store, { env: { PUBLIC_URL: 'https://postroom.acme.test', TRUST_PROXY: 'true' } });
    const https = (req: request.Test) => req.set('X-Forwarded-Proto', 'https');
    // The attacker opens the sign-in page: a visitor cookie's value and its token, which anyone can get.
    const page = await https(request(app).get('/login')).expect(200);
    const visitorCookie = String(page.headers['set-cookie']);
    assert.match(visitorCookie, /^__Host-postroom\.csrf=[^;]+;/);
    assert.match(visitorCookie, /; Path=\/(;|$)/);
    assert.match(visitorCookie, /; Secure(;|$)/);
    assert.doesNotMatch(visitorCookie, /Domain=/i);
    const nonce = /^__Host-postroom\.csrf=([^;]+)/.exec(visitorCookie)![1];
    const token = csrfFrom(page.text);
    // shop.acme.test sets `postroom.csrf=<nonce>; Domain=acme.test` in the victim's browser and posts the attacker's
    // sign-in from there: the console must not read that cookie, or the victim works in the attacker's account.
    const planted = await https(request(app).post('/login')).set('Cookie', `postroom.csrf=${nonce}`).type('form')
      .send({ _csrf: token, email: 'bob@acme.test', password: PASSWORD }).expect(303);
    assert.equal(planted.headers.location, '/login');
    // A browser only keeps a __Host- cookie the console set itself: that one signs in, and the session cookie is __Host- too.
    const own = await https(request(app).post('/login')).set('Cookie', `__Host-postroom.csrf=${nonce}`).type('form')
      .send({ _csrf: token, email: 'bob@acme.test', password: PASSWORD }).expect(303);
    assert.equal(own.headers.location, '/');
    assert.match(String(own.headers['set-cookie']), /__Host-postroom\.sid=[^;]+; Path=\/; Expires=[^;]+; HttpOnly; Secure; SameSite=Lax/);
  });

  it('refuses to start with an https PUBLIC_URL but no TRUST_PROXY, where no sign-in could ever work: one line, status 78', async () => {
    const config = testConfig({ PUBLIC_URL: 'https://postroom.acme.test' });
    // What it prevents: the console behind a TLS proxy never sets its Secure cookie, so signing in only shows the form again.
    const { app } = buildApp(store, { config });
    const agent = request.agent(app);
    const form = await agent.get('/login').set('X-Forwarded-Proto', 'https').expect(200);
    assert.doesNotMatch(String(form.headers['set-cookie'] ?? ''), /postroom\.sid=/);
    await agent.post('/login').set('X-Forwarded-Proto', 'https').type('form').send({ _csrf: csrfFrom(form.text), email: 'bob@acme.test', password: PASSWORD }).expect(303).expect('Location', '/login');

    let failure: unknown;
    let running: Awaited<ReturnType<typeof startAdmin>> | undefined;
    try {
      running = await startAdmin({ config, log: silentLogger, store, port: 0, host: '127.0.0.1', crmWorker: false, blobSweep: false });
    } catch (err) {
      failure = err;
    }
    await running?.close();
    const described = describeStartFailure(failure);
    assert.equal(described?.status, 78, `started anyway: ${String(failure)}`);
    assert.match(described.line, /^PUBLIC_URL is https but TRUST_PROXY is false: .* set TRUST_PROXY=true/);
  });

  it('rejects a wrong password with 401 and the same message as an unknown user', async () => {
    const { app } = buildApp(store);
    const agent = request.agent(app);
    const form = await agent.get('/login');
    const wrong = await agent.post('/login').type('form').send({ _csrf: csrfFrom(form.text), email: 'bob@acme.test', password: 'nope-nope-nope' }).expect(401);
    const unknown = await agent.post('/login').type('form').send({ _csrf: csrfFrom(form.text), email: 'nobody@acme.test', password: 'nope-nope-nope' }).expect(401);
    assert.match(wrong.text, /Wrong email or password/);
    assert.match(unknown.text, /Wrong email or password/);
    assert.match(wrong.text, /value="bob@acme.test"/, 'the email is kept in the form');
  });

  it('logs each refused sign-in once with the account and why (never a password typed as the email), and each throttled one', async () => {
    const now = new Date('2026-03-02T10:00:00Z');
    const clock = () => now;
    const capture = captureLog('info');
    await makeUser(store, 'gone@acme.test');
    await store.models.User.updateOne({ email: 'gone@acme.test' }, { $set: { disabled: true } });
    const { app } = buildApp(store, { clock, throttle: new LoginThrottle(clock), log: capture.log });
    const agent = request.agent(app);
    const csrf = csrfFrom((await agent.get('/login')).text);
    const attempt = (email: string, password: string) => agent.post('/login').type('form').send({ _csrf: csrf, email, password });
    await attempt('Bob@acme.test', 'nope-nope-nope').expect(401);
    await attempt('nobody@acme.test', 'nope-nope-nope').expect(401);
    await attempt('gone@acme.test', PASSWORD).expect(401);
    await attempt('My-Secret-Passphrase-1', 'nope-nope-nope').expect(401);
    const failed = capture.lines.filter((line) => line.event === 'login.failed').map(({ email, reason, userId }) => ({ email, reason, known: Boolean(userId) }));
    assert.deepEqual(failed, [
      { email: 'bob@acme.test', reason: 'wrong password', known: true },
      { email: 'nobody@acme.test', reason: 'unknown user', known: false },
      { email: 'gone@acme.test', reason: 'user disabled', known: true },
      { email: '(not an email address)', reason: 'unknown user', known: false },
    ]);
    assert.doesNotMatch(capture.text(), /My-Secret-Passphrase-1|nope-nope-nope/);

    for (let i = 0; i < 5; i++) await attempt('bob@acme.test', `wrong-${i}-password`).expect(401);
    await attempt('bob@acme.test', PASSWORD).expect(429);
    const throttled = capture.lines.filter((line) => line.event === 'login.throttled');
    assert.equal(throttled.length, 1, capture.text());
    assert.equal(throttled[0].email, 'bob@acme.test');
    assert.equal(throttled[0].msg, 'sign-in refused: too many failed attempts');
    assert.equal(typeof throttled[0].retryAfterSeconds, 'number');
  });

  it('refuses a POST without the CSRF token with 403, and with a wrong one', async () => {
    const { app } = buildApp(store);
    const { agent, csrf } = await signIn(app, 'bob@acme.test');
    const missing = await agent.post('/preferences/email').type('form').send({ email: 'x@acme.test' }).expect(403);
    assert.match(missing.text, /expired or did not come from this site/);
    await agent.post('/preferences/email').type('form').send({ email: 'x@acme.test', _csrf: `${csrf}x` }).expect(403);
    await agent.post('/login').type('form').send({ email: 'bob@acme.test', password: PASSWORD }).expect(403);
    assert.equal(await store.models.MailAccount.countDocuments({ email: 'x@acme.test' }), 0);
  });

  it('throttles per account: after 5 failures it says "try again in N s", even for the right password, until the lock expires', async () => {
    let now = new Date('2026-03-01T10:00:00Z');
    const clock = () => now;
    const { app } = buildApp(store, { clock, throttle: new LoginThrottle(clock) });
    const agent = request.agent(app);
    const csrf = csrfFrom((await agent.get('/login')).text);
    for (let i = 0; i < 5; i++) {
      await agent.post('/login').type('form').send({ _csrf: csrf, email: 'bob@acme.test', password: `wrong-${i}-password` }).expect(401);
    }
    await agent.post('/login').type('form').send({ _csrf: csrf, email: 'bob@acme.test', password: 'wrong-again-pass' }).expect(401); // 6th: locks 30 s
    const locked = await agent.post('/login').type('form').send({ _csrf: csrf, email: 'bob@acme.test', password: PASSWORD }).expect(429);
    assert.match(locked.text, /Try again in 30 s\./);
    assert.equal(locked.headers['retry-after'], '30');
    now = new Date(now.getTime() + 12_000);
    const later = await agent.post('/login').type('form').send({ _csrf: csrf, email: 'BOB@acme.test', password: PASSWORD }).expect(429);
    assert.match(later.text, /Try again in 18 s\./);
    now = new Date(now.getTime() + 18_000);
    await agent.post('/login').type('form').send({ _csrf: csrf, email: 'bob@acme.test', password: PASSWORD }).expect(303);
  });

  it('counts guesses sent in parallel: a burst gets the 5 free failures, not one per request', async () => {
    const now = new Date('2026-03-01T10:00:00Z');
    const clock = () => now;
    const { app } = buildApp(store, { clock, throttle: new LoginThrottle(clock) });
    const agent = request.agent(app);
    const csrf = csrfFrom((await agent.get('/login')).text);
    // All sent before the first answer: each password check takes argon2 time, so they overlap.
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) =>
      agent.post('/login').type('form').send({ _csrf: csrf, email: 'admin@acme.test', password: `burst-guess-${i}` })));
    const statuses = answers.map((res) => res.status);
    const checked = statuses.filter((status) => status === 401).length;
    // As if they had come one after another: 5 free failures, and a 6th (the one that locks) only for a request
    // that arrived after the first five were answered.
    assert.ok(checked >= 5 && checked <= 6, `password checks made: ${statuses.join(' ')}`);
    assert.equal(statuses.filter((status) => status === 429).length, 30 - checked);
    if (checked === 5) await agent.post('/login').type('form').send({ _csrf: csrf, email: 'admin@acme.test', password: 'burst-guess-after' }).expect(401);
    // Locked now, even for the right password.
    await agent.post('/login').type('form').send({ _csrf: csrf, email: 'admin@acme.test', password: PASSWORD }).expect(429);
  });

  it('throttles per IP across many accounts (password spraying)', async () => {
    const now = new Date('2026-03-01T10:00:00Z');
    const clock = () => now;
    const { app } = buildApp(store, { clock, throttle: new LoginThrottle(clock) });
    const agent = request.agent(app);
    const csrf = csrfFrom((await agent.get('/login')).text);
    for (let i = 0; i < 21; i++) {
      await agent.post('/login').type('form').send({ _csrf: csrf, email: `user${i}@acme.test`, password: 'Spring2026!!' }).expect(401);
    }
    const res = await agent.post('/login').type('form').send({ _csrf: csrf, email: 'admin@acme.test', password: PASSWORD }).expect(429);
    assert.match(res.text, /Try again in 60 s/);
  });

  it('behind the reverse proxy (TRUST_PROXY), a forged X-Forwarded-For does not dodge the per-IP throttle', async () => {
    const now = new Date('2026-03-01T10:00:00Z');
    const clock = () => now;
    const { app } = buildApp(store, { clock, throttle: new LoginThrottle(clock), env: { TRUST_PROXY: 'true' } });
    const agent = request.agent(app);
    const csrf = csrfFrom((await agent.get('/login')).text);
    // What nginx's $proxy_add_x_forwarded_for passes on: the client's own header, then the address it saw.
    const via = (i: number) => ({ 'X-Forwarded-For': `198.51.100.${i}, 203.0.113.7` });
    for (let i = 0; i < 21; i++) {
      await agent.post('/login').set(via(i)).type('form').send({ _csrf: csrf, email: `sprayed${i}@acme.test`, password: 'Spring2026!!' }).expect(401);
    }
    const res = await agent.post('/login').set(via(99)).type('form').send({ _csrf: csrf, email: 'admin@acme.test', password: PASSWORD }).expect(429);
    assert.match(res.text, /Try again in 60 s/);
  });

  it('throttles an IPv6 client by its /64: a sprayer cannot take a fresh address of its own network for every guess', async () => {
    const now = new Date('2026-03-01T10:00:00Z');
    const clock = () => now;
    const { app } = buildApp(store, { clock, throttle: new LoginThrottle(clock), env: { TRUST_PROXY: 'true' } });
    const agent = request.agent(app);
    const csrf = csrfFrom((await agent.get('/login')).text);
    // The client addresses the reverse proxy saw: all in 2001:db8:7:1::/64, which one host may use whole (RFC 7934).
    for (let i = 0; i < 21; i++) {
      await agent.post('/login').set('X-Forwarded-For', `2001:db8:7:1:${(i + 1).toString(16)}::${(i * 7 + 3).toString(16)}`).type('form')
        .send({ _csrf: csrf, email: `v6-sprayed${i}@acme.test`, password: 'Spring2026!!' }).expect(401);
    }
    const res = await agent.post('/login').set('X-Forwarded-For', '2001:db8:7:1:ffff::1').type('form').send({ _csrf: csrf, email: 'admin@acme.test', password: PASSWORD }).expect(429);
    assert.match(res.text, /Try again in 60 s/);
    // Another network is another key.
    await agent.post('/login').set('X-Forwarded-For', '2001:db8:7:2::1').type('form').send({ _csrf: csrf, email: 'admin@acme.test', password: PASSWORD }).expect(303);
  });

  it('signs out: the session is destroyed and pages redirect to sign-in again', async () => {
    const { app } = buildApp(store);
    const { agent, csrf } = await signIn(app, 'bob@acme.test');
    await agent.post('/logout').type('form').send({ _csrf: csrf }).expect(303).expect('Location', '/login');
    await agent.get('/').expect(303);
  });

  it('stays signed out when a request of the same browser was still running at Sign out (a slow Authenticate in another tab)', async () => {
    const owner = await makeUser(store, 'tabs@acme.test');
    const { app } = buildApp(store);
    const session = await signIn(app, 'tabs@acme.test');
    const slow = await holdAuthenticate(store, owner, session, 'tab-imap@acme.test');
    try {
      await session.agent.post('/logout').type('form').send({ _csrf: session.csrf }).expect(303).expect('Location', '/login');
      assert.equal((await slow.finish()).status, 303);
      assert.equal((await store.models.MailAccount.findById(slow.accountId).lean())!.imap!.status, 'authenticated', 'the slow request did finish its work');
      await session.agent.get('/preferences/profile').expect(303).expect('Location', '/login?next=%2Fpreferences%2Fprofile');
    } finally {
      slow.close();
    }
  });

  it('keeps signed-in pages out of every cache, so Back after Sign out cannot show them again', async () => {
    const { app } = buildApp(store);
    const { agent } = await signIn(app, 'bob@acme.test');
    for (const page of ['/', '/preferences/email', '/preferences/profile']) {
      const res = await agent.get(page).expect(200);
      assert.equal(res.headers['cache-control'], 'no-store', page);
    }
  });

  it('sends a form posted after the session ended to sign-in, and back to the form\'s page', async () => {
    const { app } = buildApp(store);
    // Two tabs of one browser share the cookie: tab A signs out, tab B still shows forms with the old token.
    const { agent: browser, csrf } = await signIn(app, 'bob@acme.test');
    await browser.post('/logout').type('form').send({ _csrf: csrf }).expect(303).expect('Location', '/login');

    // Sign out again in the other tab: already done, no error page.
    await browser.post('/logout').type('form').send({ _csrf: csrf }).expect(303).expect('Location', '/login');
    // Save a form in the other tab: sign in first, then back to that form's page.
    const saved = await browser
      .post('/preferences/email')
      .set('Host', 'postroom.acme.test')
      .set('Referer', 'http://postroom.acme.test/preferences/email/new')
      .type('form')
      .send({ _csrf: csrf, email: 'late@acme.test' })
      .expect(303);
    assert.equal(saved.headers.location, '/login?next=%2Fpreferences%2Femail%2Fnew');
    // Another site's page is never where sign-in sends the user back to.
    const foreign = await browser.post('/preferences/email').set('Referer', 'http://evil.test/preferences/email/new').type('form').send({ _csrf: csrf, email: 'late@acme.test' }).expect(303);
    assert.equal(foreign.headers.location, '/login');
    const login = await browser.get(saved.headers.location).expect(200);
    assert.match(login.text, /Your session has ended, so that form was not saved\. Sign in and try again\./);
    const back = await browser.post('/login').type('form').send({ _csrf: csrfFrom(login.text), email: 'bob@acme.test', password: PASSWORD, next: '/preferences/email/new' }).expect(303);
    assert.equal(back.headers.location, '/preferences/email/new');
    assert.equal(await store.models.MailAccount.countDocuments({ email: 'late@acme.test' }), 0);
  });

  it('stores no session for an anonymous visitor, even on the sign-in form, and a signed-in one for 12 hours', async () => {
    const { app } = buildApp(store);
    const before = await store.models.Session.countDocuments({});
    for (let i = 0; i < 5; i++) await request(app).get(`/no-such-page-${i}`).expect(404);
    await request(app).get('/messages/not-an-id/attachments/x').expect(303);
    // Anyone can open the sign-in page as often as they like: each used to store a session (an hour each).
    for (let i = 0; i < 5; i++) assert.match(csrfFrom((await request(app).get('/login').expect(200)).text), /^[A-Za-z0-9_-]{43}$/);
    assert.equal(await store.models.Session.countDocuments({}), before, 'an anonymous request stored a session');
    const agent = request.agent(app);
    const form = await agent.get('/login').expect(200);
    assert.doesNotMatch(String(form.headers['set-cookie']), /postroom\.sid=/, 'no session cookie before signing in');
    const sid = (res: request.Response) => decodeURIComponent(/postroom\.sid=([^;]+)/.exec(String(res.headers['set-cookie']))![1]).slice(2).split('.')[0];
    const signedIn = await agent.post('/login').type('form').send({ _csrf: csrfFrom(form.text), email: 'bob@acme.test', password: PASSWORD }).expect(303).expect('Location', '/');
    const session = await store.models.Session.findById(sid(signedIn)).lean();
    assert.ok(session!.expiresAt.getTime() > Date.now() + 11 * 3600_000);
  });

  it('binds a sign-in form\'s token to its browser, and never lets such a token stand in for a signed-in session\'s', async () => {
    const { app } = buildApp(store);
    // Login CSRF: another site posts its own visitor token to our sign-in form, from the victim's browser.
    const attacker = request.agent(app);
    const attackerToken = csrfFrom((await attacker.get('/login').expect(200)).text);
    const victim = request.agent(app);
    await victim.get('/login').expect(200);
    await victim.post('/login').type('form').send({ _csrf: attackerToken, email: 'bob@acme.test', password: PASSWORD }).expect(303).expect('Location', '/login');
    assert.match((await victim.get('/login').expect(200)).text, /That form had expired\. Please try again\./);
    // A visitor cookie and its token (which anyone can get) planted in a signed-in browser unlock none of its forms.
    const { agent, csrf } = await signIn(app, 'bob@acme.test');
    const attackerCookie = /postroom\.csrf=([^;]+)/.exec(String((await request(app).get('/login')).headers['set-cookie']))![1];
    const pair = csrfFrom((await request(app).get('/login').set('Cookie', `postroom.csrf=${attackerCookie}`)).text);
    const planted = await agent.post('/preferences/email').set('Cookie', `postroom.csrf=${attackerCookie}`).type('form').send({ _csrf: pair, email: 'planted@acme.test' });
    assert.equal(planted.status, 403);
    assert.equal(await store.models.MailAccount.countDocuments({ email: 'planted@acme.test' }), 0);
    await agent.post('/preferences/email').type('form').send({ _csrf: csrf, email: 'own@acme.test' }).expect(303);
    assert.equal(await store.models.MailAccount.countDocuments({ email: 'own@acme.test' }), 1, 'the session\'s own token still works');
  });

  it('shows an expired sign-in form again instead of an error page', async () => {
    const { app } = buildApp(store);
    const stale = csrfFrom((await request(app).get('/login').expect(200)).text);
    // A new browser session (the old one expired): its token is not this session's.
    const agent = request.agent(app);
    await agent.post('/login').type('form').send({ _csrf: stale, email: 'bob@acme.test', password: PASSWORD }).expect(303).expect('Location', '/login');
    const again = await agent.get('/login').expect(200);
    assert.match(again.text, /That form had expired\. Please try again\./);
    await agent.post('/login').type('form').send({ _csrf: csrfFrom(again.text), email: 'bob@acme.test', password: PASSWORD }).expect(303).expect('Location', '/');
  });

  it('ends the session of a user disabled while signed in', async () => {
    const { app } = buildApp(store);
    const carol = await makeUser(store, 'carol@acme.test');
    const { agent } = await signIn(app, carol.email);
    await agent.get('/').expect(200);
    await store.models.User.updateOne({ email: carol.email }, { $set: { disabled: true } });
    await agent.get('/').expect(303);
  });

  it('ends a session seven days after its sign-in, however often it was used', async () => {
    const { app } = buildApp(store);
    const { agent } = await signIn(app, 'bob@acme.test');
    const page = await agent.get('/').expect(200);
    const sid = decodeURIComponent(/postroom\.sid=([^;]+)/.exec(String(page.headers['set-cookie']))![1]).slice(2).split('.')[0];
    // A session in daily use never reaches its 12 idle hours; move its sign-in back instead of waiting days.
    const signedInDaysAgo = async (days: number) => {
      const row = await store.models.Session.findById(sid).lean();
      const data = JSON.parse(row!.data);
      data.signedInAt = Date.now() - days * 24 * 3600 * 1000;
      await store.models.Session.updateOne({ _id: sid }, { $set: { data: JSON.stringify(data) } });
    };
    await signedInDaysAgo(6.9);
    await agent.get('/').expect(200);
    await signedInDaysAgo(7.01);
    await agent.get('/preferences/profile').expect(303).expect('Location', '/login?next=%2Fpreferences%2Fprofile');
  });

  it('expires sessions by expiresAt on read (no TTL index) and sweeps them', async () => {
    let now = new Date();
    const clock = () => now;
    const { app } = buildApp(store, { clock });
    const { agent } = await signIn(app, 'bob@acme.test');
    await agent.get('/').expect(200);
    now = new Date(now.getTime() + 13 * 3600 * 1000); // past the 12 h lifetime
    await agent.get('/').expect(303);
    const expired = await store.models.Session.countDocuments({ expiresAt: { $lte: now } });
    assert.ok(expired > 0, 'sessions from the earlier tests are expired by now');
    assert.ok((await app.locals.deps.sessions.sweep()) > 0);
    assert.equal(await store.models.Session.countDocuments({ expiresAt: { $lte: now } }), 0);
  });
});
