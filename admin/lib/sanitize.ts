import sanitizeHtml from 'sanitize-html';
import { contentIdOfUrl } from '../../gateway/mail/inline-images';

export interface SanitizedHtml {
  html: string;
  /** Remote images that were withheld (the "load images" button shows when > 0). */
  blockedImages: number;
  /** The Content-IDs that images refer to with `cid:` URLs, normalised, in order, each once. */
  contentIds: string[];
}

export interface SanitizeOptions {
  /** Show remote (http/https) images; otherwise they are withheld and counted. */
  loadImages: boolean;
  /**
   * The message's own images as data: URLs, by normalised Content-ID
   * (gateway/accounts inlineImageUrls). A `cid:` image without one loses
   * its src and keeps its alt text.
   */
  inlineImages?: ReadonlyMap<string, string>;
  /** Leave `cid:` image sources as they are (the JSON API: clients resolve them against the attachments' contentId). */
  keepContentIdLinks?: boolean;
}

// `id`: the targets of a mail's own #links (its own document, no script to confuse).
const KEEP_ATTRIBUTES = ['style', 'class', 'align', 'valign', 'width', 'height', 'bgcolor', 'color', 'dir', 'title', 'lang', 'id'];

/**
 * Mail HTML through sanitize-html (an allow-list parser, not regexes):
 * no scripts, event handlers, forms, frames, objects or `javascript:` URLs.
 * Remote images (tracking pixels) are withheld until the reader asks; links
 * open outside the frame. The result is still only shown in a sandboxed
 * iframe under its own CSP (admin/middleware/security.ts).
 */
export function sanitizeMessageHtml(html: string, options: SanitizeOptions): SanitizedHtml {
  let blockedImages = 0;
  const contentIds = new Set<string>();
  const clean = sanitizeHtml(html, {
    // <style>: Outlook writes every line as <p class=MsoNormal> and zeroes its margin in a style sheet; without
    // it a mail from Outlook came out double-spaced, and newsletters lost their layout. CSS cannot run script, and
    // what it could fetch is held by the frame's CSP: remote images only after "load images" (counted below),
    // no fonts, no @import (style-src allows inline style only). sanitize-html calls the tag "vulnerable"
    // because it passes its text on as it is: a page must not let it reach a document with script, and this
    // frame has none (sandbox without allow-scripts, script-src none).
    allowedTags: [...sanitizeHtml.defaults.allowedTags, 'img', 'font', 'center', 'big', 'style'],
    allowVulnerableTags: true,
    allowedAttributes: {
      '*': KEEP_ATTRIBUTES,
      a: ['href', 'name', 'target', 'rel'],
      img: ['src', 'alt', 'width', 'height', 'title', 'border'],
      font: ['face', 'size', 'color'],
      table: ['border', 'cellpadding', 'cellspacing', 'width', 'bgcolor', 'align'],
      td: ['colspan', 'rowspan', 'nowrap'],
      th: ['colspan', 'rowspan', 'nowrap', 'scope'],
      ol: ['start', 'type'],
    },
    allowedSchemes: ['http', 'https', 'mailto'],
    allowedSchemesByTag: { img: ['http', 'https', 'data', ...(options.keepContentIdLinks ? ['cid'] : [])] },
    allowProtocolRelative: false,
    // Drop the content of these, not only the tags (a <script> body is not text to show).
    nonTextTags: ['script', 'textarea', 'option', 'noscript', 'title'],
    transformTags: {
      // The <body> of a mail is dropped with the document around it, and with it the colours the mail is written
      // for: white text meant for a dark body came out white on white. A <div> keeps them (`text` is the
      // body's old attribute for its text colour).
      body: (_tagName, attribs) => ({ tagName: 'div', attribs: bodyAttributes(attribs) }),
      // Arabic and Hebrew mail often sets its direction only on <html dir="rtl"> (Outlook), which went with the
      // document around it: the mail was shown left to right, its punctuation and numbers at the wrong end.
      html: (_tagName, attribs) => ({ tagName: 'div', attribs: { ...(attribs.dir ? { dir: attribs.dir } : {}), ...(attribs.lang ? { lang: attribs.lang } : {}) } }),
      a: (tagName, attribs) => {
        const href = (attribs.href ?? '').trim();
        // A link within the mail (a newsletter's table of contents) scrolls the frame; a new tab showed the mail alone.
        if (href.startsWith('#')) return { tagName, attribs: { ...attribs, href } };
        // A relative link has no base in a mail: it pointed into the console ("/relative" opened this site).
        if (href && !/^[a-z][a-z0-9+.-]*:/i.test(href)) {
          const { href: _href, ...rest } = attribs;
          return { tagName, attribs: rest };
        }
        return { tagName, attribs: { ...attribs, target: '_blank', rel: 'noopener noreferrer nofollow' } };
      },
      img: (tagName, attribs) => {
        const src = attribs.src ?? '';
        // An image of the message itself (RFC 2392): local, so shown without "load images", from a data: URL.
        const contentId = contentIdOfUrl(src);
        if (contentId) {
          contentIds.add(contentId);
          const dataUrl = options.inlineImages?.get(contentId);
          if (dataUrl) return { tagName, attribs: { ...attribs, src: dataUrl } };
          if (options.keepContentIdLinks) return { tagName, attribs };
          const { src: _src, ...rest } = attribs;
          return { tagName, attribs: { ...rest, alt: attribs.alt || '[image]' } };
        }
        if (/^https?:/i.test(src) && !options.loadImages) {
          blockedImages++;
          const { src: _src, ...rest } = attribs;
          return { tagName, attribs: { ...rest, alt: attribs.alt || '[image]' } };
        }
        return { tagName, attribs };
      },
    },
  });
  // Remote backgrounds in style attributes and style sheets (a newsletter's banner) are held back by the frame's
  // CSP until the reader loads images: they count too, or a mail whose only pictures are backgrounds offered no button.
  if (!options.loadImages) {
    for (const [, attribute, sheet] of clean.matchAll(/\sstyle="([^"]*)"|<style>([\s\S]*?)<\/style>/g)) {
      blockedImages += (attribute ?? sheet ?? '').match(/url\(\s*(?:&quot;|["'])?\s*https?:/gi)?.length ?? 0;
    }
  }
  return { html: clean, blockedImages, contentIds: [...contentIds] };
}

const COLOUR = /^#?[a-z0-9]{1,20}$/i;

function bodyAttributes(attribs: Record<string, string>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of KEEP_ATTRIBUTES) if (attribs[name] !== undefined) kept[name] = attribs[name];
  const colours = [attribs.bgcolor && COLOUR.test(attribs.bgcolor) ? `background-color: ${attribs.bgcolor}` : '', attribs.text && COLOUR.test(attribs.text) ? `color: ${attribs.text}` : ''];
  // The mail's own style comes last and wins, as on its <body>.
  const style = [...colours, attribs.style ?? ''].filter(Boolean).join('; ');
  if (style) kept.style = style;
  delete kept.bgcolor;
  return kept;
}

/** The document served into the message iframe. */
export function messageFrameDocument(body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<style>body{margin:12px;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;word-wrap:break-word}img{max-width:100%;height:auto}table{max-width:100%}` +
    `.postroom-message:focus-visible{outline:2px solid #2f5bea;outline-offset:6px}</style>` +
    // Focusable, so a keyboard reaches a mail without links and scrolls it with the arrow keys and Page Down:
    // the frame is shorter than a long mail, and Tab went straight past it.
    // dir="auto": a mail that sets no direction of its own is shown in the direction of its first words (Arabic, Hebrew).
    `</head><body><div class="postroom-message" tabindex="0" dir="auto">${body}</div></body></html>`;
}
