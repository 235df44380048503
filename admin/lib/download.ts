import { pipeline, type Readable } from 'node:stream';
import type { Response } from 'express';

/**
 * Send a stored message's bytes (raw .eml or an attachment) as the response
 * body. pipeline(): a read that fails cuts the response (the client sees a
 * truncated download, never a complete-looking one), and a client that goes
 * away stops the read from the store (and the parse behind an attachment).
 */
export function streamDownload(res: Response, stream: Readable, onError?: (err: Error) => void): void {
  pipeline(stream, res, (err) => {
    // A client closing early is not a failure of ours.
    if (err && onError && !res.writableFinished && (err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') onError(err);
  });
}

/** A download name for a message: its subject, in letters, digits and a few safe marks. */
export function emlFilename(subject: string): string {
  return `${subject.replace(/[^\p{L}\p{N} ._-]+/gu, '_').slice(0, 80).trim() || 'message'}.eml`;
}

/** The position in `/attachments/:index`, or -1 when it is not one. */
export function attachmentIndex(param: unknown): number {
  return /^\d{1,4}$/.test(String(param)) ? Number(String(param)) : -1;
}

/** Headers of an attachment download: always a download, with its type when it is a plausible one. */
export function setAttachmentHeaders(res: Response, attachment: { filename: string; contentType: string }): void {
  res.attachment(attachment.filename);
  res.type(attachment.contentType.includes('/') ? attachment.contentType : 'application/octet-stream');
}
