/**
 * Checks real /api/v1 answers against admin/openapi.json with Ajv (JSON
 * Schema 2020-12, the dialect of OpenAPI 3.1): the status must be documented
 * for the operation, a header it marks required must be there, the
 * Content-Type must be one of its media types, and a JSON body must match its
 * schema. Object schemas are read closed: a field the server sends that the
 * document does not declare is a mismatch, and so is a declared field the
 * server leaves out, unless the schema lists what is `required` itself (then
 * only those must be there).
 */
import fs from 'node:fs';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { fromRoot } from '../../gateway/core/paths';

type Json = Record<string, unknown>;
type Operation = { responses: Record<string, { content?: Record<string, { schema?: Json }> }> };
export type ApiDocument = { paths: Record<string, Record<string, Operation>>; components: Json };

export function loadApiDocument(): ApiDocument {
  return JSON.parse(fs.readFileSync(fromRoot('admin', 'openapi.json'), 'utf8')) as ApiDocument;
}

function closeObjects(node: unknown): void {
  if (Array.isArray(node)) return node.forEach(closeObjects);
  if (!node || typeof node !== 'object') return;
  const schema = node as Json;
  if (schema.properties && typeof schema.properties === 'object') {
    schema.additionalProperties ??= false;
    // A write-only field (a password) is never in an answer.
    schema.required ??= Object.entries(schema.properties as Record<string, Json>).filter(([, property]) => !property.writeOnly).map(([name]) => name);
  }
  for (const value of Object.values(schema)) closeObjects(value);
}

/** "application/pdf" is in "*\/*" and "application/*"; parameters (charset) are not compared. */
function mediaMatches(range: string, type: string): boolean {
  const [rangeMain, rangeSub] = range.split('/');
  const [main, sub] = type.split(';')[0].trim().toLowerCase().split('/');
  return (rangeMain === '*' || rangeMain === main) && (rangeSub === '*' || rangeSub === sub);
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  text?: string;
}

export function responseChecker(doc: ApiDocument = loadApiDocument()) {
  const closed = JSON.parse(JSON.stringify(doc)) as ApiDocument;
  closeObjects(closed);
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema(closed as unknown as Json, 'openapi');
  const seen = new Set<string>();
  const pointer = (...parts: string[]) => parts.map((part) => part.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

  return {
    /** "GET /messages/{id} 200" for each answer checked. */
    seen,
    /** What is wrong with `answer` to `method template` by the document; empty when it matches. */
    problems(method: string, template: string, answer: Answer): string[] {
      const name = `${method.toUpperCase()} ${template}`;
      const operation = doc.paths[template]?.[method.toLowerCase()];
      if (!operation) return [`${name} is not documented`];
      seen.add(`${name} ${answer.status}`);
      const documented = operation.responses[String(answer.status)] as Operation['responses'][string] & { $ref?: string };
      if (!documented) return [`${name}: status ${answer.status} is not documented (${answer.text?.slice(0, 200) ?? ''})`];
      // A shared answer (#/components/responses/…) is read, and its schema found, where it is written.
      const at = documented.$ref ? documented.$ref.slice(2).split('/') : ['paths', template, method.toLowerCase(), 'responses', String(answer.status)];
      const response = (documented.$ref ? at.slice(1).reduce<unknown>((node, key) => (node as Json)[key], doc.components) : documented) as Operation['responses'][string];
      const missingHeaders = Object.entries((response as { headers?: Record<string, { required?: boolean }> }).headers ?? {})
        .filter(([header, spec]) => spec.required && answer.headers[header.toLowerCase()] === undefined)
        .map(([header]) => `${name} ${answer.status}: no ${header} header`);
      if (missingHeaders.length > 0) return missingHeaders;
      const type = String(answer.headers['content-type'] ?? '');
      if (!response.content) return type ? [`${name} ${answer.status}: a ${type} body, none documented`] : [];
      const range = Object.keys(response.content).find((candidate) => mediaMatches(candidate, type));
      if (!range) return [`${name} ${answer.status}: Content-Type ${type || 'none'}, documented ${Object.keys(response.content).join(', ')}`];
      if (!/json/.test(range) || !response.content[range].schema) return [];
      const validate = ajv.getSchema(`openapi#/${pointer(...at, 'content', range, 'schema')}`)!;
      if (validate(answer.body)) return [];
      return [...new Set((validate.errors ?? []).map((e) => `${name} ${answer.status}: ${e.instancePath || '(body)'} ${e.message} ${JSON.stringify(e.params)}`))];
    },
  };
}
