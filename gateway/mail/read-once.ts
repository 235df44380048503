import { Readable } from 'node:stream';

/**
 * How the message received over SMTP is read for authentication and for
 * each stored copy. Haraka replays a message line by line (about 13,000
 * chunks for 1 MB), once per reader; for mail up to WHOLE_READ_MAX that
 * replay cost more CPU than parsing the message, so it is read once, whole,
 * and every use gets the same bytes (1 MB mail: 87 → 66 ms of gateway CPU
 * per message). Larger mail streams from Haraka's spool file each time, so a
 * 50 MB message is never held whole.
 *
 * The bytes held whole are bounded process-wide (WHOLE_READ_BUDGET): past
 * it a message streams like large mail, so memory does not grow with the
 * number of connections.
 */

export const WHOLE_READ_MAX = 2 * 1024 * 1024;
export const WHOLE_READ_BUDGET = 32 * 1024 * 1024;
/**
 * Readers get views of this size, not one large chunk: mailauth and
 * mailparser turn chunks into strings, and 1 MB strings from 20 concurrent
 * messages grew the V8 heap by ~35 MB that stayed after the load.
 */
export const WHOLE_READ_SLICE = 64 * 1024;

let held = 0;

/** Bytes currently held whole by this process (for tests and diagnostics). */
export function heldWholeBytes(): number {
  return held;
}

export interface RawSource {
  /** A fresh read of the message, each call. */
  open(): Readable | Buffer;
  /** Whether the bytes are held in memory (false: each open() streams from the SMTP server). */
  readonly whole: boolean;
  /** Give the held bytes back to the budget; call once the last reader is done. */
  release(): void;
}

export async function readOnce(openRaw: () => Readable, size: number | undefined): Promise<RawSource> {
  const streamed: RawSource = { open: openRaw, whole: false, release: () => undefined };
  if (size === undefined || size > WHOLE_READ_MAX || held + size > WHOLE_READ_BUDGET) return streamed;
  held += size;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    held -= size;
  };
  // Should the read fail, each use streams on its own (and reports its own error), as for large mail.
  const bytes = await readAll(openRaw()).catch(() => null);
  if (!bytes) {
    release();
    return streamed;
  }
  const open = () => (bytes.length <= WHOLE_READ_SLICE ? bytes : Readable.from(slices(bytes)));
  return { open, whole: true, release };
}

function* slices(bytes: Buffer): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += WHOLE_READ_SLICE) yield bytes.subarray(at, at + WHOLE_READ_SLICE);
}

/**
 * The stream's bytes in one buffer. stream/consumers' buffer() goes through
 * a Blob and copies the bytes twice more (about 1.5 ms per 1 MB message).
 */
async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    chunks.push(bytes);
    length += bytes.length;
  }
  return Buffer.concat(chunks, length);
}
