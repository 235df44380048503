// linkify-it 5 ships no TypeScript types; the part admin/lib/view-helpers.ts uses.
declare module 'linkify-it' {
  interface Match {
    /** Where the link starts and ends in the text. */
    index: number;
    lastIndex: number;
    /** The text as written, and the URL it stands for (a scheme added to `www.…`, `mailto:` to an address). */
    raw: string;
    text: string;
    url: string;
    schema: string;
  }
  class LinkifyIt {
    constructor(schemas?: Record<string, unknown>, options?: { fuzzyLink?: boolean; fuzzyEmail?: boolean; fuzzyIP?: boolean });
    match(text: string): Match[] | null;
  }
  export = LinkifyIt;
}
