import ICAL from 'ical.js';

/**
 * Calendar invitations (iTIP, RFC 5546, carried in mail by iMIP, RFC 6047):
 * the event is in a text/calendar part (Outlook sends it only as an
 * alternative of the body, with no name; Google adds the same as
 * invite.ics). Outlook's body is only the organiser's note, so without
 * reading the calendar an employee does not see when or where the meeting
 * is, nor that an event was cancelled. Parsed with ical.js, never by hand.
 */

/** A calendar part larger than this is not read for the summary (it stays a download). */
export const CALENDAR_PART_MAX_BYTES = 256 * 1024;

const CALENDAR_TYPES = ['text/calendar', 'application/ics'];

/** Whether a part of this type is a calendar (an invitation's iMIP part or an .ics file). */
export function isCalendarType(contentType: string | null | undefined): boolean {
  return CALENDAR_TYPES.includes((contentType ?? '').trim().toLowerCase());
}

/**
 * The position of the calendar part to read among a message's described
 * attachments: the first text/calendar (the iMIP part, which carries the
 * METHOD), else an application/ics file; -1 when there is none (or it is
 * too large).
 */
export function calendarPartIndex(attachments: ReadonlyArray<{ contentType?: string | null; size?: number | null }>): number {
  for (const type of CALENDAR_TYPES) {
    const index = attachments.findIndex((part) => (part.contentType ?? '').trim().toLowerCase() === type && (part.size ?? 0) <= CALENDAR_PART_MAX_BYTES);
    if (index >= 0) return index;
  }
  return -1;
}

export interface InvitePerson {
  name: string;
  address: string;
}

export interface Invite {
  /** iTIP method (RFC 5546 §1.4): REQUEST, CANCEL, REPLY, PUBLISH, COUNTER …; '' when absent. */
  method: string;
  /** What the mail is, in words: "Invitation", "Updated invitation", "Cancelled", … */
  headline: string;
  summary: string;
  start: Date | null;
  end: Date | null;
  /** DTSTART is a date (RFC 5545 §3.3.4): the event takes whole days. */
  allDay: boolean;
  /** A time without a zone Postroom knows (floating, RFC 5545 §3.3.5): shown as written, not converted. */
  floating: boolean;
  location: string;
  organizer: InvitePerson | null;
  attendees: number;
  /** REPLY: the answer of the attendee who replied (accepted, declined, tentative). */
  reply: { attendee: InvitePerson; answer: string } | null;
  recurring: boolean;
  cancelled: boolean;
}

const PARTSTAT_WORDS: Record<string, string> = { ACCEPTED: 'accepted', DECLINED: 'declined', TENTATIVE: 'tentatively accepted', DELEGATED: 'delegated' };

function person(property: ICAL.Property | null): InvitePerson | null {
  if (!property) return null;
  const value = String(property.getFirstValue() ?? '');
  const address = value.replace(/^mailto:/i, '').trim().toLowerCase();
  const cn = property.getParameter('cn');
  const name = (Array.isArray(cn) ? cn[0] : cn) ?? '';
  return address || name ? { name: String(name).trim(), address } : null;
}

function text(component: ICAL.Component, name: string): string {
  const value = component.getFirstPropertyValue(name);
  return typeof value === 'string' ? value.trim().slice(0, 1000) : '';
}

function time(component: ICAL.Component, name: string): ICAL.Time | null {
  const value = component.getFirstPropertyValue(name);
  // Past LAST_EVENT_YEAR: not a meeting anyone attends, and a zone's rules would be expanded up to it.
  return value instanceof ICAL.Time && value.year <= LAST_EVENT_YEAR ? value : null;
}

function headlineOf(method: string, sequence: number, cancelled: boolean): string {
  if (method === 'CANCEL' || cancelled) return 'Cancelled event';
  if (method === 'REQUEST') return sequence > 0 ? 'Updated invitation' : 'Invitation';
  if (method === 'REPLY') return 'Reply to an invitation';
  if (method === 'COUNTER') return 'New time proposed';
  if (method === 'DECLINECOUNTER') return 'Proposed time declined';
  return 'Calendar event';
}

/** Parts of a time zone's yearly rule (RFC 5545 §3.6.5: "the last Sunday of March"), each with this many values at most. */
const ZONE_RULE_PARTS: Record<string, number> = { BYMONTH: 1, BYDAY: 1, BYMONTHDAY: 7, BYSETPOS: 1 };

/**
 * The years a zone's rules are expanded over. Outlook starts its rules in 1601; nobody is invited to a
 * meeting before 1900 or after 2200, and without these bounds a rule starting in year 1 with an event in
 * 9999 took seconds.
 */
const FIRST_ZONE_YEAR = 1900;
const LAST_EVENT_YEAR = 2200;

/** An event longer than this has no end worth showing (ical.js adds a duration a day at a time). */
const MAX_DURATION_SECONDS = 10 * 366 * 86_400;

/**
 * Whether a VTIMEZONE observance's RRULE is a time zone's: yearly, in one month. ical.js expands a zone's
 * rule from its start (1601 in Outlook's) to the event's year, synchronously: a hostile invitation with
 * FREQ=SECONDLY (or BYHOUR/BYMINUTE lists) kept the console's process busy for ever each time the
 * message was opened, every page of every user waiting behind it.
 */
function isZoneRule(property: ICAL.Property): boolean {
  try {
    const rule = property.getFirstValue() as ICAL.Recur;
    const parts = Object.entries(rule.parts ?? {});
    return rule.freq === 'YEARLY' && (rule.interval ?? 1) >= 1 && parts.some(([name]) => name === 'BYMONTH')
      && parts.every(([name, values]) => name in ZONE_RULE_PARTS && (!Array.isArray(values) || values.length <= ZONE_RULE_PARTS[name]))
      // Days every month has: ical.js searched for ever for a 31st February that is a Monday.
      && ((rule.parts.BYMONTHDAY as number[] | undefined) ?? []).every((day) => Math.abs(day) >= 1 && Math.abs(day) <= 28);
  } catch {
    return false;
  }
}

/**
 * Drop the rules no time zone has (the observance then applies from its DTSTART on: one offset, never a
 * loop), and start the others in FIRST_ZONE_YEAR at the earliest.
 */
function boundZoneRules(calendar: ICAL.Component): void {
  for (const zone of calendar.getAllSubcomponents('vtimezone')) {
    for (const observance of zone.getAllSubcomponents()) {
      for (const rule of observance.getAllProperties('rrule')) if (!isZoneRule(rule)) observance.removeProperty(rule);
      const start = observance.getFirstProperty('dtstart');
      const value = start?.getFirstValue();
      if (start && value instanceof ICAL.Time && value.year < FIRST_ZONE_YEAR) {
        const later = value.clone();
        later.year = FIRST_ZONE_YEAR;
        start.setValue(later);
      }
    }
  }
}

/** The event an iCalendar text describes (its first VEVENT), or null when it has none or cannot be read. */
export function describeInvite(ics: string): Invite | null {
  let calendar: ICAL.Component;
  try {
    const parsed: unknown = ICAL.parse(ics);
    // A text of several calendars parses to an array of them: the first is the one mailers send.
    calendar = new ICAL.Component((Array.isArray(parsed) && Array.isArray(parsed[0]) ? parsed[0] : parsed) as unknown[]);
  } catch {
    return null;
  }
  if (calendar.name !== 'vcalendar') return null;
  try {
    boundZoneRules(calendar);
    return eventOf(calendar);
  } catch {
    // A value ical.js cannot read (DTSTART:garbage, TZOFFSETTO:zz) is thrown when it is first asked for.
    return null;
  }
}

function eventOf(calendar: ICAL.Component): Invite | null {
  const event = calendar.getFirstSubcomponent('vevent');
  if (!event) return null;
  const method = text(calendar, 'method').toUpperCase();
  const start = time(event, 'dtstart');
  let end = time(event, 'dtend');
  const duration = event.getFirstPropertyValue('duration');
  if (!end && start && duration instanceof ICAL.Duration && Math.abs(duration.toSeconds()) <= MAX_DURATION_SECONDS) {
    end = start.clone();
    end.addDuration(duration);
  }
  const sequence = Number(event.getFirstPropertyValue('sequence') ?? 0) || 0;
  const cancelled = method === 'CANCEL' || text(event, 'status').toUpperCase() === 'CANCELLED';
  const attendees = event.getAllProperties('attendee');
  let reply: Invite['reply'] = null;
  if (method === 'REPLY' && attendees.length > 0) {
    const attendee = person(attendees[0]);
    const partstat = String(attendees[0].getParameter('partstat') ?? '').toUpperCase();
    if (attendee) reply = { attendee, answer: PARTSTAT_WORDS[partstat] ?? (partstat.toLowerCase() || 'answered') };
  }
  // A zone the calendar does not define (and UTC is not) leaves the time floating: ical.js cannot convert it.
  const floating = Boolean(start && !start.isDate && (!start.zone || start.zone.tzid === 'floating'));
  // A date or a floating time is a wall-clock reading, not an instant: kept as written (in the UTC fields),
  // not shifted by the server's own zone as toJSDate() would.
  const toDate = (value: ICAL.Time | null) => {
    if (!value) return null;
    const date = value.isDate || floating
      ? new Date(Date.UTC(value.year, value.month - 1, value.day, value.hour, value.minute, value.second))
      : value.toJSDate();
    return Number.isNaN(date.getTime()) ? null : date;
  };
  return {
    method,
    headline: headlineOf(method, sequence, cancelled),
    summary: text(event, 'summary'),
    start: toDate(start),
    end: toDate(end),
    allDay: Boolean(start?.isDate),
    floating,
    location: text(event, 'location'),
    organizer: person(event.getFirstProperty('organizer')),
    attendees: attendees.length,
    reply,
    recurring: Boolean(event.getFirstProperty('rrule')),
    cancelled,
  };
}
