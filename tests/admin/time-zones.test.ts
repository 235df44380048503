import { strict as assert } from 'node:assert';
import { Types } from 'mongoose';
import request from 'supertest';
import { createApiToken, toPublicUser } from '../../gateway/accounts';
import { silentLogger } from '../../gateway/core/log';
import { createObject } from '../../gateway/crm/objects';
import { buildApp, makeAccount, makeUser, signIn, storeMessage, type SignedIn, type TestApp, type TestStore } from './fixtures';
import { openTestStore } from '../support/store';

/**
 * A business in New York, an employee in Berlin, one in Los Angeles: every time the console shows is on
 * the reader's clock with its zone named, and a day typed into the search is the reader's day (DST
 * included). The API keeps UTC.
 */
describe('admin: time zones (business zone, personal zone, dates read in them)', () => {
  let store: TestStore;
  let testApp: TestApp;
  let admin: SignedIn;
  let berlin: SignedIn;
  let angeles: SignedIn;
  let laUserId: string;

  async function setProfileZone(session: SignedIn, timeZone: string, name = '') {
    return session.agent.post('/preferences/profile').type('form').send({ _csrf: session.csrf, name, timeZone });
  }

  /** The receivedAt times (ISO) of the inbox rows a page lists, via each row's link to its message. */
  async function listedIds(session: SignedIn, query: string): Promise<string[]> {
    const res = await session.agent.get(`/${query}`).expect(200);
    return [...res.text.matchAll(/class="msg-row[^"]*" href="\/messages\/([0-9a-f]{24})"/g)].map((m) => m[1]);
  }

  before(async () => {
    store = await openTestStore('admin_time_zones');
    testApp = buildApp(store);
    await makeUser(store, 'admin@acme.test', 'admin');
    await makeUser(store, 'berlin@acme.test');
    laUserId = (await makeUser(store, 'la@acme.test')).id;
    admin = await signIn(testApp.app, 'admin@acme.test');
    berlin = await signIn(testApp.app, 'berlin@acme.test');
    angeles = await signIn(testApp.app, 'la@acme.test');
  });
  after(async () => store.drop());

  it('shows UTC, named, until anyone chooses a zone', async () => {
    const owner = (await store.models.User.findOne({ email: 'berlin@acme.test' }).lean())!;
    const { id } = await storeMessage(store, { subject: 'Zone-less' }, { ownerId: owner._id.toString(), receivedAt: new Date('2026-03-29T12:00:00Z') });
    const page = await berlin.agent.get(`/messages/${id}`).expect(200);
    assert.match(page.text, /<dt>Received<\/dt><dd>2026-03-29 12:00 UTC<\/dd>/);
    const profile = await berlin.agent.get('/preferences/profile').expect(200);
    assert.match(profile.text, /<option value="" selected>Same as the business \(UTC\)<\/option>/);
  });

  it('an admin sets the business zone: everyone without their own sees New York time, zone named, on every page with a time', async () => {
    const form = await admin.agent.get('/preferences/business').expect(200);
    assert.match(form.text, /<option value="America\/New_York" >America\/New_York<\/option>/, 'the Business page offers the IANA zones');
    await admin.agent.post('/preferences/business').type('form')
      .send({ _csrf: admin.csrf, name: 'Acme', domains: 'acme.test', authPolicy: 'quarantine', retentionDays: '0', timeZone: 'America/New_York' }).expect(303);
    assert.equal((await store.models.BusinessSettings.findById('business').lean())?.timeZone, 'America/New_York');

    const owner = (await store.models.User.findOne({ email: 'berlin@acme.test' }).lean())!;
    // Summer time in New York (EDT, UTC-4) since 8 March 2026.
    const { id } = await storeMessage(store, { subject: 'Quarterly numbers', date: new Date('2026-03-29T11:58:00Z') }, { ownerId: owner._id.toString(), receivedAt: new Date('2026-03-29T12:00:00Z') });
    const message = await berlin.agent.get(`/messages/${id}`).expect(200);
    assert.match(message.text, /<dt>Received<\/dt><dd>2026-03-29 08:00 EDT<\/dd>/);
    assert.match(message.text, /<dt>Date<\/dt><dd>2026-03-29 07:58 EDT<\/dd>/);
    const inbox = await berlin.agent.get('/?q=Quarterly').expect(200);
    assert.match(inbox.text, /<span class="when">2026-03-29 08:00 EDT<\/span>/);
    assert.match(inbox.text, /id="time-zone-note" data-shown-zone="America\/New_York">Days and times in America\/New_York/);
    // The audit log (an admin's page) records the settings change in the same zone.
    const audit = await admin.agent.get('/audit').expect(200);
    const saved = await store.models.AuditEvent.findOne({ action: 'settings.update' }).lean();
    const eastern = new Intl.DateTimeFormat('en-CA', { timeZone: 'America/New_York', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .format(saved!.at).replace(', ', ' ');
    assert.match(audit.text, new RegExp(`${eastern} E[SD]T`), `the audit log shows ${eastern} Eastern time`);
    assert.doesNotMatch(audit.text, / UTC</);
  });

  it('an employee chooses their own zone on Profile; the business zone stays for the others', async () => {
    const res = await setProfileZone(berlin, 'Europe/Berlin');
    assert.equal(res.status, 303);
    const owner = (await store.models.User.findOne({ email: 'berlin@acme.test' }).lean())!;
    assert.equal(owner.timeZone, 'Europe/Berlin');
    const { id } = await storeMessage(store, { subject: 'Berlin view' }, { ownerId: owner._id.toString(), receivedAt: new Date('2026-03-29T12:00:00Z') });
    const page = await berlin.agent.get(`/messages/${id}`).expect(200);
    assert.match(page.text, /<dt>Received<\/dt><dd>2026-03-29 14:00 GMT\+2<\/dd>/, 'CEST: Berlin moved its clocks on 29 March at 01:00 UTC');
    // Before the change that night, Berlin was still UTC+1.
    const { id: earlier } = await storeMessage(store, { subject: 'Before the change' }, { ownerId: owner._id.toString(), receivedAt: new Date('2026-03-29T00:30:00Z') });
    assert.match((await berlin.agent.get(`/messages/${earlier}`).expect(200)).text, /<dd>2026-03-29 01:30 GMT\+1<\/dd>/);
    // The admin, who chose nothing, still reads the business's zone on the same message.
    assert.match((await admin.agent.get(`/messages/${id}`).expect(200)).text, /<dt>Received<\/dt><dd>2026-03-29 08:00 EDT<\/dd>/);
    const profile = await berlin.agent.get('/preferences/profile').expect(200);
    assert.match(profile.text, /<option value="Europe\/Berlin" selected>/);
    assert.match(profile.text, /Same as the business \(America\/New_York\)/);
  });

  it('a reply\'s attribution line gives the date on the replier\'s clock, with its offset', async () => {
    const owner = (await store.models.User.findOne({ email: 'berlin@acme.test' }).lean())!;
    const { id } = await storeMessage(store, { subject: 'Delivery', from: 'Alice <alice@customer.test>', text: 'When can you deliver?', date: new Date('2026-03-29T12:00:00Z') },
      { ownerId: owner._id.toString(), receivedAt: new Date('2026-03-29T12:01:00Z') });
    const reply = await berlin.agent.get(`/compose?original=${id}&action=reply`).expect(200);
    assert.match(reply.text, /On Sun, 29 Mar 2026 14:00:00 \+0200, Alice &lt;alice@customer\.test&gt; wrote:/);
    const forward = await berlin.agent.get(`/compose?original=${id}&action=forward`).expect(200);
    assert.match(forward.text, /Date: Sun, 29 Mar 2026 14:00:00 \+0200/);
  });

  it('the account page\'s "3 hours ago" times carry the exact time on the reader\'s clock', async () => {
    const owner = (await store.models.User.findOne({ email: 'berlin@acme.test' }).lean())!;
    const account = await makeAccount(store, toPublicUser(owner), 'berlin@acme.test');
    await store.models.MailAccount.updateOne({ _id: account.id }, {
      $set: { 'forwarding.status': 'verified', 'forwarding.verifiedAt': new Date('2026-03-29T12:00:00Z'), 'forwarding.lastForwardedAt': new Date('2026-03-30T06:15:00Z'), lastMailAt: new Date('2026-03-30T06:15:00Z') },
    });
    const page = await berlin.agent.get(`/preferences/email/${account.id}`).expect(200);
    assert.match(page.text, /<dt>Verified<\/dt><dd id="forwarding-verified-at"><time datetime="2026-03-29T12:00:00\.000Z" title="2026-03-29 14:00 GMT\+2">\d+ (day|month)s? ago<\/time><\/dd>/);
    assert.match(page.text, /<dt>Last forwarded mail<\/dt><dd><time datetime="2026-03-30T06:15:00\.000Z" title="2026-03-30 08:15 GMT\+2">/);
    const list = await berlin.agent.get('/preferences/email').expect(200);
    assert.match(list.text, /Last mail: <time datetime="2026-03-30T06:15:00\.000Z" title="2026-03-30 08:15 GMT\+2">/);
  });

  it('the audit log shows one day of the admin\'s clock', async () => {
    // The admin reads New York time (EDT, UTC-4): 29 March is 04:00 UTC to 04:00 UTC.
    await store.models.AuditEvent.insertMany([
      { at: new Date('2026-03-29T03:59:00Z'), actorEmail: 'cli', action: 'zone.test.before' },
      { at: new Date('2026-03-29T04:00:00Z'), actorEmail: 'cli', action: 'zone.test.first' },
      { at: new Date('2026-03-30T03:59:00Z'), actorEmail: 'cli', action: 'zone.test.last' },
      { at: new Date('2026-03-30T04:00:00Z'), actorEmail: 'cli', action: 'zone.test.after' },
    ]);
    const res = await admin.agent.get('/audit?day=2026-03-29&actor=cli').expect(200);
    const actions = [...res.text.matchAll(/<code>(zone\.test\.\w+)<\/code>/g)].map((m) => m[1]);
    assert.deepEqual(actions, ['zone.test.last', 'zone.test.first']);
    assert.match(res.text, /<input type="date" id="audit-day" name="day" value="2026-03-29"/);
    assert.match(res.text, /id="audit-day-hint">In America\/New_York</);
    const empty = await admin.agent.get('/audit?day=2020-01-01').expect(200);
    assert.match(empty.text, /Nothing was recorded on 2020-01-01 \(America\/New_York\)/);
    const bad = await admin.agent.get('/audit?day=29%2F03%2F2026').expect(400);
    assert.match(bad.text, /id="audit-day-error">Day must be a date written YYYY-MM-DD/);
  });

  it('the message page says when the sender\'s date is far from the arrival, which orders the inbox', async () => {
    const owner = (await store.models.User.findOne({ email: 'berlin@acme.test' }).lean())!;
    const receivedAt = new Date('2026-03-29T12:00:00Z');
    const old = await storeMessage(store, { subject: 'Resent', date: new Date('2019-03-29T12:00:00Z') }, { ownerId: owner._id.toString(), receivedAt });
    const ahead = await storeMessage(store, { subject: 'Ahead', date: new Date('2026-04-08T12:00:00Z') }, { ownerId: owner._id.toString(), receivedAt });
    const close = await storeMessage(store, { subject: 'Close', date: new Date('2026-03-29T02:00:00Z') }, { ownerId: owner._id.toString(), receivedAt });
    assert.match((await berlin.agent.get(`/messages/${old.id}`).expect(200)).text, /id="date-drift">\(written 7 years before it arrived; the inbox lists mail by arrival\)/);
    assert.match((await berlin.agent.get(`/messages/${ahead.id}`).expect(200)).text, /id="date-drift">\(dated 10 days after it arrived/);
    assert.doesNotMatch((await berlin.agent.get(`/messages/${close.id}`).expect(200)).text, /date-drift/);
  });

  it('the Outbox shows when a message was queued and its next attempt on the reader\'s clock', async () => {
    const owner = (await store.models.User.findOne({ email: 'berlin@acme.test' }).lean())!;
    const account = await store.models.MailAccount.findOne({ ownerId: owner._id }).lean();
    await store.models.Outbox.collection.insertOne({
      accountId: account!._id, ownerId: owner._id, messageId: '<queued@acme.test>', subject: 'Queued in spring', envelopeFrom: 'berlin@acme.test', status: 'queued', attempts: 1,
      recipients: [{ address: 'alice@customer.test', state: 'pending', reply: '', at: null }], to: [{ address: 'alice@customer.test', name: '' }], cc: [], bcc: [],
      createdAt: new Date('2026-03-29T12:00:00Z'), updatedAt: new Date('2026-03-29T12:00:00Z'), nextAttemptAt: new Date('2026-03-29T12:30:00Z'),
    });
    const outbox = await berlin.agent.get('/outbox').expect(200);
    assert.match(outbox.text, /2026-03-29 14:00 GMT\+2/);
    assert.match(outbox.text, /next 2026-03-29 14:30 GMT\+2/);
  });

  it('an object\'s timeline (CRM activity) shows its mail on the reader\'s clock', async () => {
    const owner = (await store.models.User.findOne({ email: 'berlin@acme.test' }).lean())!;
    const { object } = await createObject({ store, log: silentLogger }, { type: 'contact', name: 'Carl Timeline', emails: ['carl@hooli.test'] });
    const { id } = await storeMessage(store, { subject: 'Timeline entry', from: 'Carl <carl@hooli.test>' }, { ownerId: owner._id.toString(), receivedAt: new Date('2026-03-29T12:00:00Z') });
    await store.models.Message.updateOne({ _id: id }, { $set: { linkedObjectIds: [new Types.ObjectId(object.id)] } });
    const page = await berlin.agent.get(`/objects/${object.id}`).expect(200);
    assert.match(page.text, /Timeline entry/);
    assert.match(page.text, /<td class="nowrap small">2026-03-29 14:00 GMT\+2<\/td>/);
  });

  it('refuses a zone that is not one, on the form, and keeps the one chosen', async () => {
    const res = await setProfileZone(berlin, 'Mars/Olympus_Mons');
    assert.equal(res.status, 400);
    assert.match(res.text, /id="timeZone-error"[^>]*>[^<]*is not a time zone/);
    const offset = await setProfileZone(berlin, '+02:00');
    assert.equal(offset.status, 400, 'a fixed offset is wrong for half the year');
    assert.equal((await store.models.User.findOne({ email: 'berlin@acme.test' }).lean())?.timeZone, 'Europe/Berlin');
    const business = await admin.agent.post('/preferences/business').type('form')
      .send({ _csrf: admin.csrf, name: 'Acme', domains: 'acme.test', authPolicy: 'quarantine', retentionDays: '0', timeZone: 'Eastern' });
    assert.equal(business.status, 400);
    assert.match(business.text, /id="timeZone-error"[^>]*>[^<]*is not a time zone/);
    assert.equal((await store.models.BusinessSettings.findById('business').lean())?.timeZone, 'America/New_York');
  });

  it('a stored zone the time zone data does not know falls back instead of failing every page', async () => {
    await store.models.User.updateOne({ email: 'berlin@acme.test' }, { $set: { timeZone: 'Atlantis/Capital' } });
    try {
      const inbox = await berlin.agent.get('/').expect(200);
      assert.match(inbox.text, /Days and times in America\/New_York/, 'the business zone');
    } finally {
      await store.models.User.updateOne({ email: 'berlin@acme.test' }, { $set: { timeZone: 'Europe/Berlin' } });
    }
  });

  describe('days typed into the search are the reader\'s days', () => {
    const ids: Record<string, string> = {};
    // Los Angeles: PST (UTC-8) until 8 March 2026 02:00, then PDT (UTC-7): 8 March is 23 hours long.
    const arrivals: Record<string, string> = {
      'mar28-late': '2026-03-29T06:30:00Z', // 28 March 23:30 PDT
      'mar29-early': '2026-03-29T08:00:00Z', // 29 March 01:00 PDT
      'mar29-late': '2026-03-30T06:59:00Z', // 29 March 23:59 PDT
      'mar30-first': '2026-03-30T07:00:00Z', // 30 March 00:00 PDT
      'mar7-last': '2026-03-08T07:59:00Z', // 7 March 23:59 PST
      'mar8-first': '2026-03-08T08:00:00Z', // 8 March 00:00 PST
      'mar8-last': '2026-03-09T06:59:00Z', // 8 March 23:59 PDT
      'mar9-first': '2026-03-09T07:00:00Z', // 9 March 00:00 PDT (a UTC day, or "midnight + 24 h", puts it on the 8th)
    };
    before(async () => {
      assert.equal((await setProfileZone(angeles, 'America/Los_Angeles')).status, 303);
      for (const [name, at] of Object.entries(arrivals)) {
        ids[name] = (await storeMessage(store, { subject: `Dated ${name}` }, { ownerId: laUserId, receivedAt: new Date(at) })).id;
      }
    });
    const named = (list: string[]) => list.map((id) => Object.keys(ids).find((name) => ids[name] === id)).sort();

    it('2026-03-29 in Los Angeles runs from 07:00 UTC to 07:00 UTC the next day', async () => {
      assert.deepEqual(named(await listedIds(angeles, '?since=2026-03-29&until=2026-03-29')), ['mar29-early', 'mar29-late']);
      assert.deepEqual(named(await listedIds(angeles, '?until=2026-03-28&since=2026-03-28')), ['mar28-late']);
      assert.deepEqual(named(await listedIds(angeles, '?since=2026-03-30')), ['mar30-first']);
    });

    it('the spring-forward day is 23 hours long', async () => {
      assert.deepEqual(named(await listedIds(angeles, '?since=2026-03-08&until=2026-03-08')), ['mar8-first', 'mar8-last']);
      assert.deepEqual(named(await listedIds(angeles, '?since=2026-03-09&until=2026-03-09')), ['mar9-first']);
      assert.deepEqual(named(await listedIds(angeles, '?until=2026-03-07')), ['mar7-last']);
    });

    it('keeps the days in the form, the paging links and the zone note', async () => {
      const res = await angeles.agent.get('/?since=2026-03-08&until=2026-03-09').expect(200);
      assert.match(res.text, /<input type="date" id="since" name="since" value="2026-03-08"/);
      assert.match(res.text, /<input type="date" id="until" name="until" value="2026-03-09"/);
      assert.match(res.text, /Days and times in America\/Los_Angeles/);
      assert.match(res.text, /<span class="when">2026-03-08 00:00 PST<\/span>/);
      assert.match(res.text, /<span class="when">2026-03-09 00:00 PDT<\/span>/);
    });

    it('says what is wrong with a date that is not one', async () => {
      const bad = await angeles.agent.get('/?since=29.03.2026').expect(400);
      assert.match(bad.text, /id="filter-error">Received from must be a date written YYYY-MM-DD/);
      const impossible = await angeles.agent.get('/?until=2026-02-30').expect(400);
      assert.match(impossible.text, /Received to must be a date written YYYY-MM-DD/);
      const backwards = await angeles.agent.get('/?since=2026-03-29&until=2026-03-28').expect(400);
      assert.match(backwards.text, /Received to must not be before the first day \(2026-03-29\)/);
    });

    it('the API reads the days in the token user\'s zone, pages within them, and answers in UTC ISO 8601', async () => {
      const { token } = await createApiToken(store, 'la@acme.test', { name: 'zones' }, {});
      const api = (path: string) => request(testApp.app).get(`/api/v1${path}`).set('Authorization', `Bearer ${token}`);
      const first = await api('/messages?since=2026-03-08&until=2026-03-08&limit=1').expect(200);
      assert.equal(first.body.messages.length, 1);
      assert.equal(first.body.messages[0].receivedAt, '2026-03-09T06:59:00.000Z');
      assert.ok(first.body.nextCursor);
      const second = await api(`/messages?since=2026-03-08&until=2026-03-08&limit=1&cursor=${encodeURIComponent(first.body.nextCursor)}`).expect(200);
      assert.deepEqual(second.body.messages.map((m: { receivedAt: string }) => m.receivedAt), ['2026-03-08T08:00:00.000Z']);
      // The day's last page: the next page must not run on into 7 March.
      if (second.body.nextCursor) {
        const third = await api(`/messages?since=2026-03-08&until=2026-03-08&limit=1&cursor=${encodeURIComponent(second.body.nextCursor)}`).expect(200);
        assert.deepEqual(third.body.messages, []);
      }
      const one = await api(`/messages/${ids['mar9-first']}`).expect(200);
      assert.equal(one.body.receivedAt, '2026-03-09T07:00:00.000Z');
      const bad = await api('/messages?since=yesterday').expect(400);
      assert.equal(bad.body.error.fields.since, 'must be a date written YYYY-MM-DD (example: 2026-03-29)');
    });

    it('the 30-day chart counts mail into the reader\'s days', async () => {
      // 03:00 UTC on 31 March is still the evening of the 30th in Los Angeles.
      const clocked = buildApp(store, { clock: () => new Date('2026-03-31T03:00:00Z') });
      const la = await signIn(clocked.app, 'la@acme.test');
      const res = await la.agent.get('/').expect(200);
      // 28 March 23:30 PDT is a mail of the 28th, not of 29 March UTC.
      assert.match(res.text, /<title>2026-03-28: 1 /);
      assert.match(res.text, /<title>2026-03-29: 2 /);
      assert.match(res.text, /<title>2026-03-30: 1 /, 'the last bar is today in Los Angeles');
      assert.doesNotMatch(res.text, /<title>2026-03-31/);
    });
  });

});
