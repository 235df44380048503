// html-to-text 10 ships no TypeScript types; the part gateway/send/reply.ts uses.
declare module 'html-to-text' {
  interface SelectorDefinition {
    selector: string;
    format?: string;
    options?: Record<string, unknown>;
  }
  interface HtmlToTextOptions {
    /** Column to wrap at, or false for no wrapping. */
    wordwrap?: number | false | null;
    selectors?: SelectorDefinition[];
    limits?: { maxInputLength?: number; maxDepth?: number; maxChildNodes?: number };
  }
  export function convert(html: string, options?: HtmlToTextOptions): string;
}
