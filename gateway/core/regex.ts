/** Text to match literally inside a regular expression (the store's, or ours). */
export function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
