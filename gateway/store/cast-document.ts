import type { Model, Schema, SchemaType } from 'mongoose';

/**
 * A plain object cast, defaulted, validated and time-stamped by the model's
 * schema — what `Model.create` would write — without building a mongoose
 * document. Hydrating a message document (a sub-document per header,
 * address and source) cost about 1 ms of CPU per message under load, as
 * much as parsing it; the ingest pipeline writes one per message.
 *
 * Casting, defaults and timestamps are mongoose's own (`castObject`,
 * `applyDefaults`, `applyTimestamps`). Validation covers what the schemas
 * declare — `required` and `enum`, nested and in arrays of sub-documents —
 * and throws a ValidationError naming every failing path, like
 * `validate()`. Fields are put in schema order, as a mongoose document
 * writes them: MongoDB compares embedded documents field by field in order,
 * so `$addToSet` of a message source only recognises the same source in
 * the same order. tests/store/group-write.test.ts compares the BSON with
 * `new Model(input).toBSON()` for the models written through here.
 */

// Any model: the schema's type parameters do not matter here.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type CastableModel = Model<any>;

export class DocumentValidationError extends Error {
  override name = 'ValidationError';
  constructor(
    modelName: string,
    readonly paths: string[],
  ) {
    super(`${modelName} validation failed: ${paths.join(', ')}`);
  }
}

export function castDocument(model: CastableModel, input: Record<string, unknown>): Record<string, unknown> {
  const cast = model.castObject(input) as Record<string, unknown>;
  model.applyDefaults(cast);
  const problems: string[] = [];
  const doc = inSchemaOrder(model.schema, cast, '', problems);
  if (problems.length > 0) throw new DocumentValidationError(model.modelName, problems);
  model.applyTimestamps(doc);
  return doc;
}

function valueAt(doc: Record<string, unknown>, path: string): unknown {
  let value: unknown = doc;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function enumOf(type: SchemaType): unknown[] | null {
  const declared = (type.options as { enum?: unknown }).enum;
  if (Array.isArray(declared)) return declared;
  if (declared && typeof declared === 'object' && Array.isArray((declared as { values?: unknown }).values)) return (declared as { values: unknown[] }).values;
  return null;
}

function setAt(doc: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let target = doc;
  for (const key of keys.slice(0, -1)) {
    target[key] ??= {};
    target = target[key] as Record<string, unknown>;
  }
  target[keys[keys.length - 1]] = value;
}

/** A copy of `doc` with its fields in schema order, nested and in sub-documents; schema violations go to `problems`. */
function inSchemaOrder(schema: Schema, doc: Record<string, unknown>, prefix: string, problems: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  schema.eachPath((path, type) => {
    let value = valueAt(doc, path);
    const where = `${prefix}${path}`;
    if (type.isRequired && (value === undefined || value === null || !(type as unknown as { checkRequired(v: unknown): boolean }).checkRequired(value))) {
      problems.push(`${where}: Path \`${where}\` is required.`);
    }
    const allowed = enumOf(type);
    if (allowed && value !== undefined && value !== null && !allowed.includes(value)) {
      problems.push(`${where}: \`${String(value)}\` is not a valid enum value for path \`${where}\`.`);
    }
    const nested = (type as SchemaType & { schema?: Schema }).schema;
    if (nested && Array.isArray(value)) {
      value = value.map((item, i) => (item && typeof item === 'object' ? inSchemaOrder(nested, item as Record<string, unknown>, `${where}.${i}.`, problems) : item));
    } else if (nested && value && typeof value === 'object') {
      value = inSchemaOrder(nested, value as Record<string, unknown>, `${where}.`, problems);
    }
    if (value !== undefined) setAt(out, path, value);
  });
  // Whatever the cast kept beyond the declared paths (none in strict schemas).
  for (const [key, value] of Object.entries(doc)) if (!(key in out)) out[key] = value;
  return out;
}
