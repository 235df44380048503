import { strict as assert } from 'node:assert';
import { CALENDAR_PART_MAX_BYTES, calendarPartIndex, describeInvite } from '../../gateway/mail/calendar';

const ics = (...lines: string[]) => ['BEGIN:VCALENDAR', 'VERSION:2.0', ...lines, 'END:VCALENDAR', ''].join('\r\n');
const event = (...lines: string[]) => ['BEGIN:VEVENT', 'UID:1@test', ...lines, 'END:VEVENT'];

describe('mail/calendar: invitations read with ical.js', () => {
  it('converts a time in a zone the calendar defines (Outlook VTIMEZONE) to UTC, summer and winter', () => {
    const zone = ['BEGIN:VTIMEZONE', 'TZID:W. Europe Standard Time',
      'BEGIN:STANDARD', 'DTSTART:16010101T030000', 'TZOFFSETFROM:+0200', 'TZOFFSETTO:+0100', 'RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10', 'END:STANDARD',
      'BEGIN:DAYLIGHT', 'DTSTART:16010101T020000', 'TZOFFSETFROM:+0100', 'TZOFFSETTO:+0200', 'RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3', 'END:DAYLIGHT', 'END:VTIMEZONE'];
    const summer = describeInvite(ics('METHOD:REQUEST', ...zone, ...event('DTSTART;TZID=W. Europe Standard Time:20250714T140000', 'DTEND;TZID=W. Europe Standard Time:20250714T150000', 'SUMMARY:Review')))!;
    assert.equal(summer.start?.toISOString(), '2025-07-14T12:00:00.000Z');
    assert.equal(summer.end?.toISOString(), '2025-07-14T13:00:00.000Z');
    assert.equal(summer.floating, false);
    const winter = describeInvite(ics('METHOD:REQUEST', ...zone, ...event('DTSTART;TZID=W. Europe Standard Time:20250114T140000')))!;
    assert.equal(winter.start?.toISOString(), '2025-01-14T13:00:00.000Z');
  });

  it('names the method: invitation, update, cancellation, reply with the answer', () => {
    assert.equal(describeInvite(ics('METHOD:REQUEST', ...event('DTSTART:20250114T090000Z')))!.headline, 'Invitation');
    assert.equal(describeInvite(ics('METHOD:REQUEST', ...event('DTSTART:20250114T090000Z', 'SEQUENCE:2')))!.headline, 'Updated invitation');
    const cancel = describeInvite(ics('METHOD:CANCEL', ...event('DTSTART:20250114T090000Z', 'STATUS:CANCELLED')))!;
    assert.equal(cancel.headline, 'Cancelled event');
    assert.equal(cancel.cancelled, true);
    const reply = describeInvite(ics('METHOD:REPLY', ...event('DTSTART:20250114T090000Z', 'ATTENDEE;PARTSTAT=DECLINED;CN="Alice C":mailto:Alice@Customer.test')))!;
    assert.equal(reply.headline, 'Reply to an invitation');
    assert.deepEqual(reply.reply, { attendee: { name: 'Alice C', address: 'alice@customer.test' }, answer: 'declined' });
    assert.equal(describeInvite(ics('METHOD:PUBLISH', ...event('DTSTART:20250114T090000Z')))!.headline, 'Calendar event');
  });

  it('keeps whole days and floating times as written, and ends a DURATION', () => {
    const allDay = describeInvite(ics(...event('DTSTART;VALUE=DATE:20250301', 'DTEND;VALUE=DATE:20250303')))!;
    assert.equal(allDay.allDay, true);
    assert.equal(allDay.start?.toISOString(), '2025-03-01T00:00:00.000Z');
    assert.equal(allDay.end?.toISOString(), '2025-03-03T00:00:00.000Z');
    const floating = describeInvite(ics(...event('DTSTART:20250301T100000', 'DURATION:PT1H30M', 'RRULE:FREQ=WEEKLY')))!;
    assert.equal(floating.floating, true);
    assert.equal(floating.start?.toISOString(), '2025-03-01T10:00:00.000Z');
    assert.equal(floating.end?.toISOString(), '2025-03-01T11:30:00.000Z');
    assert.equal(floating.recurring, true);
  });

  it('gives null for text that is not a calendar with an event, or cannot be read', () => {
    assert.equal(describeInvite('not a calendar'), null);
    assert.equal(describeInvite(ics()), null);
    assert.equal(describeInvite(ics('BEGIN:VTODO', 'SUMMARY:x', 'END:VTODO')), null);
    // The bad-input corpus's calendar: never closed, an impossible date, an endless rule.
    const hostile = describeInvite('BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:99999999T999999Z\r\nRRULE:FREQ=SECONDLY;COUNT=999999999\r\n');
    assert.ok(hostile === null || hostile.start === null);
  });

  it('reads a hostile invitation at once: a zone rule no zone has, an endless duration, values that are not values', () => {
    // Each of these kept ical.js (and the console's one process, every user waiting behind it) busy for
    // ever when the message was opened, or threw instead of giving null.
    const zone = (rule: string) => ['BEGIN:VTIMEZONE', 'TZID:Hostile',
      'BEGIN:STANDARD', 'DTSTART:16010101T030000', 'TZOFFSETFROM:+0200', 'TZOFFSETTO:+0100', `RRULE:${rule}`, 'END:STANDARD', 'END:VTIMEZONE'];
    for (const rule of ['FREQ=SECONDLY', 'FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31;BYDAY=MO', 'FREQ=YEARLY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23;BYMINUTE=0,10,20,30,40,50']) {
      const invite = describeInvite(ics('METHOD:REQUEST', ...zone(rule), ...event('DTSTART;TZID=Hostile:20250714T140000')))!;
      assert.equal(invite.start?.toISOString(), '2025-07-14T13:00:00.000Z', `${rule}: the zone's one offset, from its start`);
    }
    // A yearly rule in year 9999 (expanded from 1601 for seconds): past any meeting, not read.
    const far = describeInvite(ics('METHOD:REQUEST', ...zone('FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU'), ...event('DTSTART;TZID=Hostile:99990714T140000', 'SUMMARY:Far')))!;
    assert.equal(far.summary, 'Far');
    assert.equal(far.start, null);
    const endless = describeInvite(ics('METHOD:REQUEST', ...event('DTSTART:20250714T140000Z', 'DURATION:P99999999999W')))!;
    assert.equal(endless.start?.toISOString(), '2025-07-14T14:00:00.000Z');
    assert.equal(endless.end, null);
    assert.equal(describeInvite(ics('METHOD:REQUEST', ...event('DTSTART:garbage'))), null);
    assert.equal(describeInvite(ics('METHOD:REQUEST', ...event('DTSTART;VALUE=DATE:2026xx01'))), null);
  });

  it('reads the text/calendar part before an application/ics copy, and none over the size limit', () => {
    assert.equal(calendarPartIndex([{ contentType: 'application/pdf' }, { contentType: 'application/ics', size: 10 }, { contentType: 'Text/Calendar', size: 10 }]), 2);
    assert.equal(calendarPartIndex([{ contentType: 'application/ics', size: 10 }]), 0);
    assert.equal(calendarPartIndex([{ contentType: 'text/calendar', size: CALENDAR_PART_MAX_BYTES + 1 }]), -1);
    assert.equal(calendarPartIndex([]), -1);
  });
});
