import mongoose from 'mongoose';

export type ObjectId = mongoose.Types.ObjectId;

/**
 * A strict 24-hex ObjectId from user input, or null. mongoose's isValid()
 * also accepts any 12-character string, which would turn "hello-world!"
 * into an id; the edges answer 404 for anything that is not 24 hex digits.
 */
/** What is wrong with a value parseObjectId() refuses, as a field problem. */
export const NOT_AN_ID = 'is not an id (24 hexadecimal digits)';

export function parseObjectId(value: unknown): ObjectId | null {
  if (typeof value !== 'string' || !/^[0-9a-f]{24}$/i.test(value)) return null;
  return new mongoose.Types.ObjectId(value.toLowerCase());
}
