import type { z } from 'zod';

/**
 * The zod error map of the JSON API: every issue becomes the problem text
 * of one field, in the product's voice ("is required", "must be a string"),
 * the way the engine words its own checks (`name is required`,
 * `imap.port must be a whole number from 1 to 65535`). Given to each parse
 * (validate.ts) rather than set globally, so the configuration parser and
 * anything else using zod keep their own messages. Messages set on a schema
 * (a refine's 'must be base64', wholeNumber below) take precedence over it.
 */

type Issue = z.core.$ZodRawIssue;

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  bigint: 'a whole number',
  boolean: 'true or false',
  array: 'an array',
  object: 'an object',
  null: 'null',
  date: 'a date',
};

const typeName = (expected: string) => TYPE_NAMES[expected] ?? expected;

/** "a, b or c". */
export const orList = (items: string[]) => (items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`);

/** "must be a string or an array" when every branch of a union failed on the type alone. */
function unionProblem(issue: Extract<Issue, { code: 'invalid_union' }>): string {
  const expected: string[] = [];
  for (const branch of issue.errors) {
    const [only] = branch;
    if (branch.length !== 1 || only.code !== 'invalid_type' || only.path.length > 0) return 'is not valid';
    expected.push(typeName(only.expected));
  }
  return expected.length > 0 ? `must be ${orList([...new Set(expected)])}` : 'is not valid';
}

function sizeProblem(issue: Extract<Issue, { code: 'too_big' | 'too_small' }>): string {
  const most = issue.code === 'too_big';
  const bound = Number(most ? issue.maximum : issue.minimum);
  const limit = most ? 'at most' : 'at least';
  switch (issue.origin) {
    case 'string':
      return !most && bound === 1 ? 'must not be empty' : `must be ${limit} ${bound} characters`;
    case 'array':
    case 'set':
      return `must have ${limit} ${bound} ${bound === 1 ? 'entry' : 'entries'}`;
    case 'number':
    case 'int':
    case 'bigint':
      return `must be ${limit} ${bound}`;
    default:
      return most ? 'is too large' : 'is too small';
  }
}

/** The problem with one field, without its name (the caller prefixes the path). */
export function fieldProblem(issue: Issue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? 'is required' : `must be ${typeName(issue.expected)}`;
    case 'too_big':
    case 'too_small':
      return sizeProblem(issue);
    case 'invalid_value':
      return issue.values.length === 1 ? `must be ${JSON.stringify(issue.values[0])}` : `must be one of ${issue.values.map(String).join(', ')}`;
    case 'invalid_format':
      return issue.format === 'email' ? 'is not an email address' : issue.format === 'regex' ? 'is not in the expected form' : `must be a valid ${issue.format}`;
    case 'invalid_union':
      return unionProblem(issue);
    case 'unrecognized_keys':
      return 'is not a known field';
    case 'not_multiple_of':
      return `must be a multiple of ${String(issue.divisor)}`;
    default:
      return 'is not valid';
  }
}
