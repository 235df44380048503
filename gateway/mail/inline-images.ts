/**
 * Inline images: parts of a message that its HTML shows by reference,
 * `<img src="cid:logo123">` pointing at the part with `Content-ID:
 * <logo123>` (RFC 2392), usually inside multipart/related (RFC 2387).
 * Signatures and logos come this way. The stored HTML keeps the `cid:`
 * references (parse.ts: skipImageLinks); which parts they name, and whether
 * they may be shown, is decided here from the stored descriptions alone, so
 * the message page (what to leave out of the attachment list) and the body
 * frame (what to read back and inline) agree without reading any bytes.
 */

/** One image may be inlined up to this decoded size; a larger one stays a broken image with its alt text. */
export const INLINE_IMAGE_MAX_BYTES = 2 * 1024 * 1024;
/** All inlined images of one message together (distinct parts, decoded). */
export const INLINE_IMAGES_MAX_TOTAL_BYTES = 10 * 1024 * 1024;

/** A type that can go into `data:<type>;base64,` as it is and that a browser shows in an <img>. */
const IMAGE_TYPE = /^image\/[a-z0-9][a-z0-9.+-]{0,100}$/i;

/**
 * A Content-ID made comparable with the cid: URLs that name it: without
 * angle brackets and surrounding space, lower-cased. RFC 2392 §2 compares
 * them as msg-ids; mail in the wild changes case between header and HTML,
 * and a false match within one message is not a risk worth a broken logo.
 */
export function normalizeContentId(contentId: string): string {
  return contentId.trim().replace(/^<|>$/g, '').trim().toLowerCase();
}

/**
 * The Content-ID a `cid:` URL names, normalised; null for any other URL.
 * RFC 2392 §2: the URL carries the addr-spec %-encoded (`cid:a%40b` is `<a@b>`).
 */
export function contentIdOfUrl(url: string): string | null {
  const match = /^\s*cid:(.+)$/is.exec(url);
  if (!match) return null;
  let id = match[1];
  try {
    id = decodeURIComponent(id);
  } catch {
    // A stray % that is not an escape: compare the text as it is.
  }
  const normalized = normalizeContentId(id);
  return normalized || null;
}

/** What inlining needs to know of a described part (gateway/mail/parse.ts ParsedAttachment). */
export interface DescribedPart {
  contentId?: string | null;
  contentType?: string | null;
  size?: number | null;
}

export interface InlineImage {
  /** Position of the part among the message's attachments (as the download route counts them). */
  index: number;
  /** Normalised, as contentIdOfUrl() gives it. */
  contentId: string;
  contentType: string;
  size: number;
}

export interface InlineLimits {
  perImage: number;
  total: number;
}

const DEFAULT_LIMITS: InlineLimits = { perImage: INLINE_IMAGE_MAX_BYTES, total: INLINE_IMAGES_MAX_TOTAL_BYTES };

/**
 * The parts to show inline for the `cid:` references an HTML part makes
 * (normalised Content-IDs, in the order the HTML makes them): each an image
 * part of the message with that Content-ID (the first, if several carry it),
 * no larger than `perImage`, while all of them together stay within `total`.
 * A reference to a missing part, a non-image or one past a limit is left out
 * (the image stays broken with its alt text, and the part stays listed as an
 * attachment).
 */
export function planInlineImages(contentIds: Iterable<string>, attachments: readonly DescribedPart[], limits: InlineLimits = DEFAULT_LIMITS): InlineImage[] {
  const byContentId = new Map<string, number>();
  attachments.forEach((part, index) => {
    const id = part.contentId ? normalizeContentId(part.contentId) : '';
    if (id && !byContentId.has(id)) byContentId.set(id, index);
  });
  const plan: InlineImage[] = [];
  const planned = new Set<number>();
  let total = 0;
  for (const contentId of contentIds) {
    const index = byContentId.get(contentId);
    if (index === undefined || planned.has(index)) continue;
    const part = attachments[index];
    const contentType = (part.contentType ?? '').trim().toLowerCase();
    const size = part.size ?? 0;
    if (!IMAGE_TYPE.test(contentType) || size > limits.perImage || total + size > limits.total) continue;
    planned.add(index);
    total += size;
    plan.push({ index, contentId, contentType, size });
  }
  return plan;
}

/**
 * Whether a part is, by its description alone, a picture the HTML shows
 * (an image with a Content-ID: a logo or a signature photo, RFC 2387)
 * rather than a file sent along. The inbox's attachment badge is decided
 * from this, without the HTML a list page does not read; the message page
 * refines it with the references the HTML actually makes (planInlineImages).
 */
export function isInlineImagePart(part: DescribedPart): boolean {
  return Boolean(part.contentId && normalizeContentId(part.contentId)) && IMAGE_TYPE.test((part.contentType ?? '').trim());
}

/** The data: URL an inline image is shown from (the body frame's CSP allows data: images and nothing else by default). */
export function imageDataUrl(contentType: string, bytes: Buffer): string {
  return `data:${contentType};base64,${bytes.toString('base64')}`;
}
