import { strict as assert } from 'node:assert';
import mongoose from 'mongoose';
import { silentLogger } from '../../gateway/core/log';
import { ingest } from '../../gateway/mail/ingest';
import { openTestStore } from '../support/store';

/**
 * RFC 5322 §3.3 requires a zone in the Date header; mail without one exists. It reads the same on every
 * server: as UTC ("-0000"), never in the zone the server process happens to run in (TZ).
 */
describe('ingest: a Date header without a zone, or out of range', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  const savedTz = process.env.TZ;
  before(async () => {
    store = await openTestStore('zoneless_date');
  });
  afterEach(() => {
    if (savedTz === undefined) delete process.env.TZ;
    else process.env.TZ = savedTz;
  });
  after(async () => store.drop());

  async function storedDate(date: string, tz: string) {
    process.env.TZ = tz;
    const raw = Buffer.from(`From: a@customer.test\r\nTo: b@acme.test\r\nSubject: zone ${date}\r\nDate: ${date}\r\nMessage-ID: <${new mongoose.Types.ObjectId().toString()}@customer.test>\r\n\r\nhello\r\n`);
    const ownerId = new mongoose.Types.ObjectId();
    const result = await ingest({ store, log: silentLogger }, { raw, mailboxKey: `dropbox:${ownerId}`, ownerId, source: { kind: 'mx' } });
    return { date: (await store.models.Message.findById(result.id).lean())?.date?.toISOString(), key: result.dedupeKey };
  }

  const cases: Array<[string, string]> = [
    ['Sun, 29 Mar 2026 10:00:00', '2026-03-29T10:00:00.000Z'],
    ['29 Mar 2026 10:00 (local time)', '2026-03-29T10:00:00.000Z'],
    ['Sun, 29 Mar 26 10:00:00', '2026-03-29T10:00:00.000Z'],
    ['Sun, 29 Mar 2026 10:00:00 -0000', '2026-03-29T10:00:00.000Z'],
    ['Sun, 29 Mar 2026 10:00:00 +0200 (CEST)', '2026-03-29T08:00:00.000Z'],
    ['Sun, 29 Mar 2026 10:00:00 EST', '2026-03-29T15:00:00.000Z'],
    ['Thu, 1 Jan 1970 00:00:00 +0000', '1970-01-01T00:00:00.000Z'],
    ['Mon, 31 Dec 2026 99:00', ''],
    ['Fri, 31 Dec 9999 23:59:59 +0000', '9999-12-31T23:59:59.000Z'],
    ['Sun, 29 Mar 12026 10:00:00 +0000', ''],
  ];
  for (const [header, expected] of cases) {
    it(`${JSON.stringify(header)} is ${expected || 'no date'} on a server in New York and on one in Berlin`, async () => {
      const newYork = await storedDate(header, 'America/New_York');
      const berlin = await storedDate(header, 'Europe/Berlin');
      assert.equal(newYork.date, expected || undefined);
      assert.equal(berlin.date, expected || undefined);
    });
  }
});
