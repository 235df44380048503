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
  return value instanceof ICAL.Time ? value : null;
}

function headlineOf(method: string, sequence: number, cancelled: boolean): string {
  if (method === 'CANCEL' || cancelled) return 'Cancelled event';
  if (method === 'REQUEST') return sequence > 0 ? 'Updated invitation' : 'Invitation';
  if (method === 'REPLY') return 'Reply to an invitation';
  if (method === 'COUNTER') return 'New time proposed';
  if (method === 'DECLINECOUNTER') return 'Proposed time declined';
  return 'Calendar event';
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
  const event = calendar.getFirstSubcomponent('vevent');
  if (!event) return null;
  const method = text(calendar, 'method').toUpperCase();
  const start = time(event, 'dtstart');
  let end = time(event, 'dtend');
  const duration = event.getFirstPropertyValue('duration');
  if (!end && start && duration instanceof ICAL.Duration) {
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
