/**
 * Wall-clock time in a person's time zone. Instants are stored and exchanged
 * (API, logs) in UTC; only what a person reads or types as a day or a time of
 * day is in a zone. The zone rules (DST, changed offsets) come from the ICU
 * data in Node's Intl, through luxon where a local day has to become an
 * instant: nothing here knows when a clock changes.
 */
import { DateTime } from 'luxon';

/** The zone a store that never chose one uses: what the console showed before zones could be chosen. */
export const DEFAULT_TIME_ZONE = 'UTC';

/**
 * The IANA name of a time zone as Intl spells it ("europe/berlin" → "Europe/Berlin", "Etc/UTC" stays), or
 * null when it is not one. Offsets ("+02:00") are refused: a fixed offset is wrong for half the year.
 */
export function canonicalTimeZone(value: string): string | null {
  const name = value.trim();
  if (!name || !/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(name)) return null;
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

/** Said of a refused zone, on a form or in an API answer. */
export const TIME_ZONE_PROBLEM = 'is not a time zone: choose one from the list (an IANA name such as Europe/Berlin or America/New_York)';

let zoneList: string[] | null = null;

/** Every zone a person can choose, by IANA name ("UTC" first). */
export function timeZoneNames(): string[] {
  zoneList ??= ['UTC', ...Intl.supportedValuesOf('timeZone').filter((name) => name !== 'UTC')];
  return zoneList;
}

const formats = new Map<string, Intl.DateTimeFormat>();

function formatFor(zone: string): Intl.DateTimeFormat {
  let format = formats.get(zone);
  if (!format) {
    // en-US for the zone's name: "EDT", "PST"; zones without a common abbreviation read "GMT+2", never a guess.
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short',
    });
    formats.set(zone, format);
  }
  return format;
}

/** "2026-03-29 14:05 GMT+2": the date and time on the reader's clock, with the zone so nobody has to guess it. */
export function formatInZone(date: Date, zone: string): string {
  const parts = Object.fromEntries(formatFor(zone).formatToParts(date).map((part) => [part.type, part.value]));
  // Years before 1000 or after 9999 (a forged Date header) keep their digits; Intl pads to at least 4.
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} ${parts.timeZoneName}`;
}

/**
 * An RFC 5322 §3.3 date on a zone's clock, with its offset ("Sun, 29 Mar 2026 14:00:00 +0200"), as mail
 * programs write it in a reply's attribution line.
 */
export function rfc5322DateInZone(date: Date, zone: string): string {
  return DateTime.fromJSDate(date, { zone }).toRFC2822() ?? '';
}

const dayFormats = new Map<string, Intl.DateTimeFormat>();

/** The day ("2026-03-29") an instant falls on in a zone. Called per message by the chart: one cached formatter a zone. */
export function dayInZone(date: Date, zone: string): string {
  let format = dayFormats.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' });
    dayFormats.set(zone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(date).map((part) => [part.type, part.value]));
  return `${parts.year}-${parts.month}-${parts.day}`;
}

/** Is this "YYYY-MM-DD" a real calendar day? */
export function isCalendarDay(value: string): boolean {
  return /^\d{4}-\d{2}-\d{2}$/.test(value) && DateTime.fromISO(value, { zone: 'UTC' }).isValid;
}

/**
 * The first instant of a day in a zone: its midnight, or, where a clock change skips midnight (America/Santiago,
 * Asia/Beirut), the first minute that exists. A day is not always 24 hours long: the day after is its own start.
 */
export function startOfDayInZone(day: string, zone: string): Date {
  return DateTime.fromISO(day, { zone }).startOf('day').toJSDate();
}

/** The day `count` calendar days after (or before) a "YYYY-MM-DD" day. */
export function addDays(day: string, count: number): string {
  return DateTime.fromISO(day, { zone: 'UTC' }).plus({ days: count }).toISODate() ?? '';
}
