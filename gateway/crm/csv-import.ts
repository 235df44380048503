import mongoose from 'mongoose';
import { parse } from 'csv-parse/sync';
import { AppError } from '../core/errors';
import { recordAudit, SYSTEM_ACTOR, type Actor } from '../accounts/audit';
import type { Store } from '../store';
import { createJob } from './backfill';
import type { ObjectServiceDeps, ObjectRow } from './objects';
import { normalizeObjectInput, parseBoolean, searchTermsFor, type FieldErrors, type NormalizedObject, type ObjectInput, type ObjectTypeName } from './object-input';
import { loadCrmSettings, type CrmSettings } from './settings';
import { decodeCsvFile, sniffDelimiter } from './csv-text';

type ObjectId = mongoose.Types.ObjectId;

/**
 * CSV import of CRM objects: preview (every row validated, errors per row
 * and field, what would be created or updated), then commit (valid rows
 * only, written with bulkWrite — 10,000 rows are a handful of round trips).
 *
 * Fields are separated by ',', ';' or tabs, whichever the header row uses.
 * Columns (header row, any case; spaces, '-' and '_' ignored):
 *   type        customer | contact | lead (or the import's default type)
 *   name        required (or first_name and/or last_name, joined)
 *   emails      one or more, separated by ';', ',' or spaces (also "email")
 *   domains     customers only (also "domain")
 *   company     free text (leads)
 *   customer    contacts: external id or exact name of a customer, in the file or already stored
 *   external_id the CRM's id (also "externalid", "id"); rows with one are upserted by (type, external id)
 *   link_bulk   true/false: link newsletters and automated mail too
 * Rows without an external id update the record of the same type that
 * shares an address (customers: a domain, else the same name), so importing
 * a file twice does not duplicate it; for the same reason a later row that
 * shares one with an earlier row of the file is reported as its duplicate.
 */

export const MAX_IMPORT_ROWS = 50_000;
export const MAX_IMPORT_BYTES = 12 * 1024 * 1024;
/** Characters in one row: a customer with many addresses and domains is a few KB; a 12 MB row is not a record. */
export const MAX_IMPORT_ROW_CHARS = 64 * 1024;

const HEADER_ALIASES: Record<string, keyof ImportColumns> = {
  type: 'type', kind: 'type',
  name: 'name', fullname: 'name', companyname: 'name',
  firstname: 'firstName', givenname: 'firstName', lastname: 'lastName', surname: 'lastName', familyname: 'lastName',
  email: 'emails', emails: 'emails', emailaddress: 'emails', emailaddresses: 'emails',
  domain: 'domains', domains: 'domains',
  company: 'company',
  customer: 'customer', customerid: 'customer', customerexternalid: 'customer', account: 'customer',
  externalid: 'externalId', id: 'externalId', crmid: 'externalId',
  linkbulk: 'linkBulk',
};

interface ImportColumns {
  type: string;
  name: string;
  /** CRM exports (Salesforce, HubSpot) split names: "First Name", "Last Name"; joined when there is no name. */
  firstName: string;
  lastName: string;
  emails: string;
  domains: string;
  company: string;
  customer: string;
  externalId: string;
  linkBulk: string;
}

export interface ImportRow {
  /** 1-based line of the file on which the row starts (the header is line 1). */
  line: number;
  name: string;
  type: string;
  externalId: string;
  errors: FieldErrors;
  action: 'create' | 'update' | 'skip';
}

export interface ImportPreview {
  total: number;
  valid: number;
  invalid: number;
  creates: number;
  updates: number;
  /** Columns found in the header and what they map to; unknown columns are ignored. */
  columns: Array<{ header: string; field: string | null }>;
  rows: ImportRow[];
}

interface PlannedRow extends ImportRow {
  value: NormalizedObject;
  customerRef: string;
  existing: ObjectRow | null;
  /** Resolved at commit for contacts referencing a customer from the same file. */
  customerId?: ObjectId | null;
  newId?: ObjectId;
}

const key = (type: string, externalId: string) => `${type}\u0000${externalId}`;

function fail(message: string): AppError {
  return new AppError('CSV_INVALID', message, { status: 400, fields: { file: message } });
}

const rowTooLong = (line: number | string) => `a row is longer than ${MAX_IMPORT_ROW_CHARS / 1024} KB by line ${line}: is a quote left open, or is it not a CSV file?`;

/**
 * The first line (1-based) longer than MAX_IMPORT_ROW_CHARS, or 0. csv-parse's max_record_size counts the
 * characters in a row's cells, not its delimiters: a line of 12 MB of commas is twelve million empty cells
 * (3 s and 300 MB of the admin's thread). A row ends only at a line break, so a line this long is a row this long.
 */
function overlongLine(csv: string): number {
  let line = 1;
  let start = 0;
  // The next LF and CR at or after `start`, each looked up again only once passed (native indexOf: 12 MB in ~10 ms).
  let lf = csv.indexOf('\n');
  let cr = csv.indexOf('\r');
  for (;;) {
    if (lf !== -1 && lf < start) lf = csv.indexOf('\n', start);
    if (cr !== -1 && cr < start) cr = csv.indexOf('\r', start);
    const end = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
    if (end === -1) return csv.length - start > MAX_IMPORT_ROW_CHARS ? line : 0;
    if (end - start > MAX_IMPORT_ROW_CHARS) return line;
    // CR LF is one line break; a lone CR (classic Mac exports) or LF is one too.
    start = end + (end === cr && lf === cr + 1 ? 2 : 1);
    line += 1;
  }
}

/** Text as it is; bytes decoded by their byte-order mark, `charset` (HTTP Content-Type) or content (csv-text.ts). */
function readCsv(file: string | Buffer, charset?: string): { header: string[]; records: Array<{ line: number; cells: string[] }> } {
  const size = typeof file === 'string' ? Buffer.byteLength(file) : file.length;
  if (size === 0) throw fail('the file is empty');
  if (size > MAX_IMPORT_BYTES) throw fail(`the file is larger than ${MAX_IMPORT_BYTES / 1024 / 1024} MB; split it`);
  const csv = typeof file === 'string' ? file : decodeCsvFile(file, charset).text;
  if (csv.includes('\u0000')) throw fail('the file contains NUL bytes: it is not a text CSV file');
  const longLine = overlongLine(csv);
  if (longLine > 0) throw fail(rowTooLong(longLine));
  let parsed: Array<{ record: string[]; info: { lines: number; bytes: number } }>;
  try {
    // Read no further than one record past the limit (`to`): 12 MB of one-letter lines are six million
    // records, which took 80 s of the admin process's only thread and 3 GB to parse before being refused.
    // A row is given up on once it is past MAX_IMPORT_ROW_CHARS: one 12 MB row held the admin's thread for 3 s and 300 MB.
    parsed = parse(csv, {
      bom: true, delimiter: sniffDelimiter(csv), info: true, relax_column_count: true, skip_empty_lines: true, trim: true, to: MAX_IMPORT_ROWS + 2,
      max_record_size: MAX_IMPORT_ROW_CHARS,
    }) as unknown as typeof parsed;
  } catch (err) {
    const e = err as Error & { lines?: number; code?: string };
    if (e.code === 'CSV_MAX_RECORD_SIZE') throw fail(rowTooLong(e.lines ?? '?'));
    throw fail(`not a readable CSV file${e.lines ? ` (line ${e.lines})` : ''}: ${e.message}`);
  }
  if (parsed.length === 0) throw fail('the file has no header row');
  const [head, ...rest] = parsed;
  if (rest.length > MAX_IMPORT_ROWS) throw fail(`the file has more than ${MAX_IMPORT_ROWS} rows; at most ${MAX_IMPORT_ROWS} per import: split it`);
  const lines = recordStartLines(csv, parsed.map((r) => r.info.bytes));
  return { header: head.record, records: rest.map((r, i) => ({ line: lines[i + 1], cells: r.record })) };
}

/**
 * The line of the file on which each record starts, as a text editor
 * numbers it. csv-parse's info.lines is the line a record ends on, and it
 * counts a CRLF inside a quoted cell (a multi-line address or note from
 * Excel) as two lines, so every later row was reported a line too far.
 * `ends` are the records' end offsets in UTF-8 bytes (info.bytes).
 */
function recordStartLines(text: string, ends: number[]): number[] {
  const bytes = Buffer.from(text, 'utf8');
  const CR = 0x0d;
  const LF = 0x0a;
  let line = 1;
  let pos = 0;
  const step = () => {
    if (bytes[pos] === CR) {
      line++;
      pos += bytes[pos + 1] === LF ? 2 : 1;
    } else {
      if (bytes[pos] === LF) line++;
      pos++;
    }
  };
  const starts: number[] = [];
  let start = 0;
  for (const end of ends) {
    while (pos < start) step();
    // Blank lines before the record (skipped by the parser).
    while (pos < bytes.length && (bytes[pos] === CR || bytes[pos] === LF)) step();
    starts.push(line);
    start = end;
  }
  return starts;
}

/** Map header cells to fields; a file without a name column (or a type, unless one is chosen) is refused. */
function mapColumns(header: string[], defaultType?: string) {
  const columns = header.map((h) => ({ header: h, field: HEADER_ALIASES[h.toLowerCase().replace(/[\s_-]+/g, '')] ?? null }));
  const index = new Map<keyof ImportColumns, number>();
  columns.forEach((c, i) => {
    if (c.field && !index.has(c.field as keyof ImportColumns)) index.set(c.field as keyof ImportColumns, i);
  });
  const splitName = index.has('firstName') || index.has('lastName');
  // In an export with split names, "Company Name" is the person's company, not their name.
  const companyName = columns.findIndex((c) => c.header.toLowerCase().replace(/[\s_-]+/g, '') === 'companyname');
  if (splitName && companyName >= 0 && index.get('name') === companyName) {
    index.delete('name');
    columns[companyName].field = 'company';
    if (!index.has('company')) index.set('company', companyName);
  }
  if (!index.has('name') && !splitName) throw fail('the header row has no "name" column (expected columns: type, name or first_name and last_name, emails, domains, company, customer, external_id, link_bulk)');
  if (!index.has('type') && !defaultType) throw fail('the header row has no "type" column; add one or choose a type for all rows');
  return { columns, index };
}

export interface ImportOptions {
  defaultType?: string;
  /** The declared charset of a file given as bytes. */
  charset?: string;
}

async function plan(store: Store, csv: string | Buffer, options: ImportOptions & { settings: CrmSettings }): Promise<{ preview: ImportPreview; rows: PlannedRow[] }> {
  const { header, records } = readCsv(csv, options.charset);
  const { columns, index } = mapColumns(header, options.defaultType);

  const cell = (cells: string[], field: keyof ImportColumns) => {
    const i = index.get(field);
    return i === undefined ? undefined : (cells[i] ?? '');
  };

  const rows: PlannedRow[] = [];
  const seen = new Map<string, number>();
  /**
   * A row without an external id is matched to a record by a shared address
   * (customers: domain, else name), so two such rows of one file that share
   * one are the same record: importing both would create it twice.
   */
  const firstLineOf = new Map<string, number>();
  const sameRecordInFile = (value: NormalizedObject, line: number, errors: FieldErrors) => {
    const type = value.type!;
    const keys: Array<[field: string, what: string, k: string]> = [
      ...(value.emails ?? []).map((e): [string, string, string] => ['emails', `address ${e}`, key(type, `@${e}`)]),
      ...(value.domains ?? []).map((d): [string, string, string] => ['domains', `domain ${d}`, key(type, `.${d}`)]),
    ];
    if (type === 'customer' && !value.externalId) keys.push(['name', `name "${value.name}"`, key(type, `=${value.nameLower}`)]);
    if (!value.externalId) {
      const dup = keys.find(([, , k]) => firstLineOf.has(k));
      if (dup) {
        errors[dup[0]] = `duplicate of line ${firstLineOf.get(dup[2])} (same ${dup[1]}; give each row an external id to keep both)`;
        return;
      }
    }
    for (const [, , k] of keys) if (!firstLineOf.has(k)) firstLineOf.set(k, line);
  };
  for (const { line, cells } of records) {
    const input: ObjectInput = {
      type: (cell(cells, 'type') || options.defaultType || '').toLowerCase(),
      name: cell(cells, 'name') || [cell(cells, 'firstName'), cell(cells, 'lastName')].filter(Boolean).join(' '),
      emails: cell(cells, 'emails'),
      domains: cell(cells, 'domains'),
      company: cell(cells, 'company'),
      externalId: cell(cells, 'externalId'),
    };
    const linkBulk = cell(cells, 'linkBulk');
    if (linkBulk !== undefined && linkBulk !== '') input.rules = { linkBulk };
    const { value, errors } = normalizeObjectInput(input, { partial: false, settings: options.settings });
    if (linkBulk !== undefined && linkBulk !== '' && parseBoolean(linkBulk) === null) errors.linkBulk = 'must be true or false';
    const customerRef = (cell(cells, 'customer') ?? '').trim();
    if (customerRef && value.type && value.type !== 'contact') errors.customer = 'only contacts belong to a customer';
    if (value.type && value.externalId) {
      const k = key(value.type, value.externalId);
      const first = seen.get(k);
      if (first !== undefined) errors.externalId = `duplicate of line ${first}`;
      else seen.set(k, line);
    }
    if (value.type && Object.keys(errors).length === 0) sameRecordInFile(value, line, errors);
    rows.push({
      line, name: value.name ?? String(input.name ?? ''), type: value.type ?? String(input.type ?? ''), externalId: value.externalId ?? '',
      errors, action: 'skip', value, customerRef, existing: null,
    });
  }

  // What already exists: by external id, else by shared address / domain / name.
  const valid = rows.filter((r) => Object.keys(r.errors).length === 0);
  const { CrmObject } = store.models;
  const withExternal = valid.filter((r) => r.value.externalId);
  const byExternal = new Map<string, ObjectRow>();
  if (withExternal.length > 0) {
    const found = (await CrmObject.find({ externalId: { $in: [...new Set(withExternal.map((r) => r.value.externalId!))] } }).lean()) as ObjectRow[];
    for (const row of found) byExternal.set(key(row.type, row.externalId), row);
  }
  const withoutExternal = valid.filter((r) => !r.value.externalId);
  const byEmail = new Map<string, ObjectRow>();
  const byDomain = new Map<string, ObjectRow>();
  const byName = new Map<string, ObjectRow>();
  if (withoutExternal.length > 0) {
    const emails = [...new Set(withoutExternal.flatMap((r) => r.value.emails ?? []))];
    const domains = [...new Set(withoutExternal.flatMap((r) => r.value.domains ?? []))];
    const names = [...new Set(withoutExternal.filter((r) => r.value.type === 'customer').map((r) => r.value.nameLower!))];
    const or: Array<Record<string, unknown>> = [];
    if (emails.length > 0) or.push({ emails: { $in: emails } });
    if (domains.length > 0) or.push({ domains: { $in: domains } });
    if (names.length > 0) or.push({ type: 'customer', nameLower: { $in: names } });
    if (or.length > 0) {
      for (const row of (await CrmObject.find({ $or: or }).lean()) as ObjectRow[]) {
        for (const e of row.emails ?? []) byEmail.set(key(row.type, e), row);
        for (const d of row.domains ?? []) byDomain.set(key(row.type, d), row);
        if (row.type === 'customer') byName.set(row.name.toLowerCase(), row);
      }
    }
  }
  for (const row of valid) {
    const type = row.value.type!;
    if (row.value.externalId) row.existing = byExternal.get(key(type, row.value.externalId)) ?? null;
    else {
      row.existing =
        (row.value.emails ?? []).map((e) => byEmail.get(key(type, e))).find(Boolean) ??
        (row.value.domains ?? []).map((d) => byDomain.get(key(type, d))).find(Boolean) ??
        (type === 'customer' ? byName.get(row.value.nameLower!) : undefined) ??
        null;
    }
  }

  // Contacts' customer references: a customer row of the file (by external id or name) or a stored customer.
  // A name is a reference only when one customer has it (the form refuses an ambiguous name the same way).
  const fileCustomers = new Set<string>();
  const recordsNamed = new Map<string, Set<string>>();
  const named = (nameLower: string, record: string) => recordsNamed.set(nameLower, (recordsNamed.get(nameLower) ?? new Set()).add(record));
  for (const row of valid) {
    if (row.value.type !== 'customer') continue;
    if (row.value.externalId) fileCustomers.add(`id:${row.value.externalId}`);
    fileCustomers.add(`name:${row.value.nameLower}`);
    named(row.value.nameLower!, row.existing ? row.existing._id.toString() : `line:${row.line}`);
  }
  const refs = [...new Set(valid.filter((r) => r.customerRef).map((r) => r.customerRef))];
  const storedRefs = new Set<string>();
  if (refs.length > 0) {
    const found = await CrmObject.find({ type: 'customer', $or: [{ externalId: { $in: refs } }, { nameLower: { $in: refs.map((r) => r.toLowerCase()) } }] }, { externalId: 1, nameLower: 1 }).lean();
    for (const row of found) {
      storedRefs.add(`id:${row.externalId}`);
      storedRefs.add(`name:${row.nameLower}`);
      // A stored customer the file renames keeps its old name until the import is written: count it by its new one only.
      const renamed = valid.some((r) => r.existing?._id.equals(row._id) && r.value.nameLower !== row.nameLower);
      if (!renamed) named(row.nameLower, row._id.toString());
    }
  }
  for (const row of valid) {
    if (!row.customerRef) continue;
    const refKeys = [`id:${row.customerRef}`, `name:${row.customerRef.toLowerCase()}`];
    if (fileCustomers.has(refKeys[0]) || storedRefs.has(refKeys[0])) continue;
    if (!refKeys.some((k) => fileCustomers.has(k) || storedRefs.has(k))) {
      row.errors.customer = `no customer with external id or name "${row.customerRef}" in this file or in Postroom`;
    } else if ((recordsNamed.get(row.customerRef.toLowerCase())?.size ?? 0) > 1) {
      row.errors.customer = `several customers are named "${row.customerRef}": use the customer's external id`;
    }
  }

  let creates = 0;
  let updates = 0;
  let invalid = 0;
  for (const row of rows) {
    if (Object.keys(row.errors).length > 0) {
      row.action = 'skip';
      invalid++;
    } else if (row.existing) {
      row.action = 'update';
      updates++;
    } else {
      row.action = 'create';
      creates++;
    }
  }
  const preview: ImportPreview = {
    total: rows.length,
    valid: rows.length - invalid,
    invalid,
    creates,
    updates,
    columns,
    rows: rows.map(({ line, name, type, externalId, errors, action }) => ({ line, name, type, externalId, errors, action })),
  };
  return { preview, rows };
}

/** Validate a CSV file without writing anything. */
export async function previewImport(deps: ObjectServiceDeps, csv: string | Buffer, options: ImportOptions = {}): Promise<ImportPreview> {
  const settings = await loadCrmSettings(deps.store, deps.settings);
  return (await plan(deps.store, csv, { ...options, settings })).preview;
}

export interface ImportResult extends ImportPreview {
  /** The job that links existing mail to the imported records (linkJobFor), and prune jobs for records that lost addresses. */
  jobIds: string[];
}

function setFields(row: PlannedRow, customerId: ObjectId | null | undefined): Record<string, unknown> {
  const v = row.value;
  const merged = {
    name: v.name!,
    company: v.company ?? row.existing?.company ?? '',
    emails: v.emails ?? row.existing?.emails ?? [],
    domains: v.domains ?? row.existing?.domains ?? [],
    externalId: v.externalId ?? row.existing?.externalId ?? '',
  };
  const set: Record<string, unknown> = { type: v.type, name: v.name, nameLower: v.nameLower, searchTerms: searchTermsFor(merged) };
  if (v.emails !== undefined) set.emails = v.emails;
  if (v.domains !== undefined) set.domains = v.domains;
  if (v.company !== undefined) set.company = v.company;
  if (v.linkBulk !== undefined) set['rules.linkBulk'] = v.linkBulk;
  if (customerId !== undefined) set.customerId = customerId;
  return set;
}

/**
 * Up to this many addresses and domains, the mail an import concerns is
 * looked up by them (the messages' addresses index); more, and one pass
 * over all stored mail is cheaper than a query with that many terms.
 */
const TARGETED_LINK_KEYS = 200;

/** The job that links existing mail to what an import wrote: by its addresses and domains, or (a large import) over all mail. */
function linkJobFor(rows: PlannedRow[]): { kind: 'backfill' | 'relink'; emails?: string[]; domains?: string[] } | null {
  const emails = new Set<string>();
  const domains = new Set<string>();
  for (const row of rows) {
    // An updated record may gain links through addresses it already had (link_bulk turned on).
    for (const email of row.value.emails ?? row.existing?.emails ?? []) emails.add(email);
    if (row.value.type === 'customer') for (const domain of row.value.domains ?? row.existing?.domains ?? []) domains.add(domain);
  }
  if (emails.size + domains.size === 0) return null;
  if (emails.size + domains.size > TARGETED_LINK_KEYS) return { kind: 'relink' };
  return { kind: 'backfill', emails: [...emails], domains: [...domains] };
}

/** Write the valid rows of a CSV file; invalid rows are skipped and reported. */
export async function commitImport(
  deps: ObjectServiceDeps,
  csv: string | Buffer,
  options: ImportOptions = {},
  actor: Actor = SYSTEM_ACTOR,
): Promise<ImportResult> {
  const settings = await loadCrmSettings(deps.store, deps.settings);
  const { preview, rows } = await plan(deps.store, csv, { ...options, settings });
  const { CrmObject } = deps.store.models;
  const writable = rows.filter((r) => r.action !== 'skip');
  const createdBy = actor.id ?? null;

  /**
   * New records are inserted (insertOne), existing ones updated by _id:
   * no upsert has to search by (type, externalId) per row, which keeps
   * stores without a real query planner (FerretDB) fast too. A record
   * another writer inserted meanwhile (duplicate key) is updated instead.
   */
  const write = async (batch: PlannedRow[]) => {
    const inserts: PlannedRow[] = [];
    const updates: Array<Record<string, unknown>> = [];
    for (const row of batch) {
      const set = setFields(row, row.customerId);
      if (row.existing) updates.push({ updateOne: { filter: { _id: row.existing._id }, update: { $set: set } } });
      else inserts.push(row);
    }
    const insertOp = (row: PlannedRow) => {
      row.newId = new mongoose.Types.ObjectId();
      const { 'rules.linkBulk': linkBulk, ...fields } = setFields(row, row.customerId);
      return {
        insertOne: {
          document: {
            _id: row.newId, ...fields, externalId: row.value.externalId ?? `local:${row.newId.toString()}`,
            rules: { linkBulk: Boolean(linkBulk), neverLink: [] }, createdBy,
          },
        },
      };
    };
    for (let i = 0; i < inserts.length; i += 5000) {
      const slice = inserts.slice(i, i + 5000);
      try {
        await CrmObject.bulkWrite(slice.map(insertOp) as never, { ordered: false });
      } catch (err) {
        const writeErrors = ((err as { writeErrors?: Array<{ index: number; code: number }> }).writeErrors ?? []);
        if (writeErrors.length === 0 || writeErrors.some((e) => e.code !== 11000)) throw err;
        for (const e of writeErrors) {
          const row = slice[e.index];
          updates.push({ updateOne: { filter: { type: row.value.type, externalId: row.value.externalId }, update: { $set: setFields(row, row.customerId) } } });
        }
      }
    }
    for (let i = 0; i < updates.length; i += 5000) {
      await CrmObject.bulkWrite(updates.slice(i, i + 5000) as never, { ordered: false });
    }
  };

  // Customers first, so contacts in the same file can reference them.
  await write(writable.filter((r) => r.value.type === 'customer'));
  const refs = [...new Set(writable.filter((r) => r.customerRef).map((r) => r.customerRef))];
  const customerIds = new Map<string, ObjectId>();
  if (refs.length > 0) {
    const found = await CrmObject.find({ type: 'customer', $or: [{ externalId: { $in: refs } }, { nameLower: { $in: refs.map((r) => r.toLowerCase()) } }] }, { externalId: 1, nameLower: 1 }).lean();
    for (const row of found) customerIds.set(`name:${row.nameLower}`, row._id);
    for (const row of found) customerIds.set(`id:${row.externalId}`, row._id); // an external id wins over a name
  }
  for (const row of writable) {
    if (row.customerRef) row.customerId = customerIds.get(`id:${row.customerRef}`) ?? customerIds.get(`name:${row.customerRef.toLowerCase()}`) ?? null;
  }
  await write(writable.filter((r) => r.value.type !== 'customer'));

  const jobIds: ObjectId[] = [];
  const linkJob = linkJobFor(writable);
  if (linkJob) jobIds.push(await createJob(deps.store, { ...linkJob, createdBy }));
  for (const row of writable) {
    if (!row.existing) continue;
    const removedEmails = (row.existing.emails ?? []).filter((e) => row.value.emails !== undefined && !row.value.emails.includes(e));
    const removedDomains = (row.existing.domains ?? []).filter((d) => row.value.domains !== undefined && !row.value.domains.includes(d));
    if (removedEmails.length + removedDomains.length > 0) {
      jobIds.push(await createJob(deps.store, { kind: 'prune', objectId: row.existing._id, emails: removedEmails, domains: removedDomains, createdBy }));
    }
  }
  if (jobIds.length > 0) deps.onJobsQueued?.();
  await recordAudit(deps.store, actor, {
    action: 'crm.import', targetType: 'crm-object', details: { rows: preview.total, created: preview.creates, updated: preview.updates, skipped: preview.invalid },
  });
  return { ...preview, jobIds: jobIds.map((id) => id.toString()) };
}

/**
 * Keep an uploaded file between preview and commit (console). The file is
 * checked (size, text, header) before it is stored; uploaded bytes are
 * decoded once here (csv-text.ts) and the encoding kept for the preview.
 */
export async function saveUpload(
  store: Store,
  input: { csv: string | Buffer; filename?: string; defaultType?: string; userId: ObjectId; charset?: string },
): Promise<ObjectId> {
  if (input.csv.length > MAX_IMPORT_BYTES) throw fail(`the file is larger than ${MAX_IMPORT_BYTES / 1024 / 1024} MB; split it`);
  const { text, encoding } = typeof input.csv === 'string' ? { text: input.csv, encoding: 'utf-8' } : decodeCsvFile(input.csv, input.charset);
  mapColumns(readCsv(text).header, input.defaultType || undefined);
  // Uploads older than a day were abandoned after their preview.
  await store.models.CsvImport.deleteMany({ createdAt: { $lt: new Date(Date.now() - 24 * 3600 * 1000) } });
  const doc = await store.models.CsvImport.create({
    createdBy: input.userId,
    filename: (input.filename ?? '').slice(0, 200),
    csv: text,
    encoding,
    defaultType: input.defaultType ?? '',
    createdAt: new Date(),
  });
  return doc._id;
}

export type { ObjectTypeName };
