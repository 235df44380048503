import { strict as assert } from 'node:assert';
import { loadConfig } from '../../gateway/core/config';
import { startSyncer } from '../../gateway/sync/schedule';
import { openTestStore } from '../support/store';
import { captureLog, testConfig, testSecrets } from './helpers';

/**
 * IMAP_SYNC_CRON "0 2 * * *" (a nightly pass at 02:00) is 02:00 on the clock IMAP_SYNC_TIMEZONE names
 * (UTC unless set), whatever zone the process runs in: node-cron reads an expression in the process's
 * TZ unless told, so the same .env ran the pass at other hours in Docker (UTC) and on a server set to
 * Tokyo.
 */
describe('IMAP sync schedule: the zone of IMAP_SYNC_CRON', () => {
  let store: Awaited<ReturnType<typeof openTestStore>>;
  const savedTz = process.env.TZ;
  before(async () => {
    store = await openTestStore('sync_schedule_zone');
  });
  afterEach(() => {
    if (savedTz === undefined) delete process.env.TZ;
    else process.env.TZ = savedTz;
  });
  after(async () => store.drop());

  async function nextPass(env: Record<string, string>): Promise<Date> {
    const capture = captureLog('info');
    const syncer = startSyncer({ config: testConfig({ IMAP_SYNC_CRON: '0 2 * * *', ...env }), log: capture.log, store, secretBox: testSecrets, associate: null });
    try {
      const line = capture.lines.find((l) => l.msg === 'IMAP syncer scheduled');
      assert.ok(line, capture.text());
      return new Date(line.nextPassAt as string);
    } finally {
      await syncer.stop();
    }
  }

  const clock = (date: Date, timeZone: string) =>
    new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(date);

  it('runs at 02:00 UTC by default, on a server whose own zone is Tokyo', async () => {
    process.env.TZ = 'Asia/Tokyo';
    const next = await nextPass({});
    assert.equal(clock(next, 'UTC'), '02:00');
    assert.ok(next.getTime() - Date.now() <= 24 * 3600_000, 'within the next day');
  });

  it('runs at 02:00 in the zone IMAP_SYNC_TIMEZONE names', async () => {
    process.env.TZ = 'Asia/Tokyo';
    assert.equal(clock(await nextPass({ IMAP_SYNC_TIMEZONE: 'America/Los_Angeles' }), 'America/Los_Angeles'), '02:00');
    assert.equal(clock(await nextPass({ IMAP_SYNC_TIMEZONE: 'europe/berlin' }), 'Europe/Berlin'), '02:00');
  });

  it('warns a server upgraded outside UTC that its nightly pass moved, naming the setting that keeps it', () => {
    process.env.TZ = 'Asia/Tokyo';
    const scheduled = (env: Record<string, string>) => {
      const capture = captureLog('info');
      const syncer = startSyncer({ config: testConfig(env), log: capture.log, store, secretBox: testSecrets, associate: null });
      void syncer.stop();
      return capture.lines.filter((l) => l.level === 40).map((l) => String(l.msg));
    };
    assert.deepEqual(scheduled({ IMAP_SYNC_CRON: '0 2 * * *' }), ['IMAP_SYNC_CRON "0 2 * * *" is read in UTC, not in this machine\'s zone Asia/Tokyo as before IMAP_SYNC_TIMEZONE existed: set IMAP_SYNC_TIMEZONE=Asia/Tokyo to keep the times it ran at']);
    assert.deepEqual(scheduled({ IMAP_SYNC_CRON: '0 2 * * *', IMAP_SYNC_TIMEZONE: 'UTC' }), [], 'UTC chosen on purpose');
    assert.deepEqual(scheduled({ IMAP_SYNC_CRON: '*/5 * * * *' }), [], 'every five minutes, in any zone');
    process.env.TZ = 'UTC';
    assert.deepEqual(scheduled({ IMAP_SYNC_CRON: '0 2 * * *' }), [], 'a machine on UTC runs it when it did');
  });

  it('refuses a zone that is not one, naming the variable', () => {
    assert.throws(() => loadConfig({ NODE_ENV: 'test', IMAP_SYNC_TIMEZONE: '+02:00' }), /IMAP_SYNC_TIMEZONE.*must be an IANA time zone such as Europe\/Berlin/s);
    assert.throws(() => loadConfig({ NODE_ENV: 'test', IMAP_SYNC_TIMEZONE: 'Mars/Base' }), /IMAP_SYNC_TIMEZONE/);
    assert.equal(loadConfig({ NODE_ENV: 'test', IMAP_SYNC_TIMEZONE: 'europe/berlin' }).imapSyncTimeZone, 'Europe/Berlin');
  });
});
