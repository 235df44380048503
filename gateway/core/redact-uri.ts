/** Strip credentials from a connection string before it reaches a log or error. */
export function redactUri(uri: string): string {
  return uri.replace(/\/\/([^@/]+)@/, '//[redacted]@');
}
