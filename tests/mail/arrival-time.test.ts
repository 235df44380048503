import { strict as assert } from 'node:assert';
import { arrivalTime } from '../../gateway/mail/arrival-time';

describe('arrivalTime: when a message reached the mailbox', () => {
  const now = new Date('2026-03-29T12:00:00Z');
  const header = new Date('2026-03-28T09:00:00Z');
  const cases: Array<[string, Date | undefined, Date | null, Date]> = [
    ['a true server time is kept', new Date('2026-03-29T11:00:00Z'), header, new Date('2026-03-29T11:00:00Z')],
    ['a server time of 2020 is true too', new Date('2020-01-01T00:00:00Z'), header, new Date('2020-01-01T00:00:00Z')],
    ['now itself is kept', now, header, now],
    ['ahead of now: now (it is here, so it has arrived)', new Date('2099-01-01T00:00:00Z'), header, now],
    ['a second ahead: now', new Date(now.getTime() + 1000), header, now],
    ['a zero timestamp: the Date header', new Date(0), header, header],
    ['a zero timestamp and no Date header: now', new Date(0), null, now],
    ['a zero timestamp and a Date header ahead: now', new Date(0), new Date('2030-01-01T00:00:00Z'), now],
    ['an unreadable server time and a Date header from 1970: now', new Date(Number.NaN), new Date(0), now],
    ['none reported: the Date header', undefined, header, header],
  ];
  for (const [name, reported, headerDate, expected] of cases) {
    it(name, () => assert.equal(arrivalTime(reported, headerDate, now).toISOString(), expected.toISOString()));
  }
});
