/**
 * Pure decisions of the folder sync: is a folder unchanged, how to cut the
 * work into batches, how to write a UID set.
 */

export interface CursorState {
  uidValidity?: string | null;
  lastUid?: number | null;
  /** UIDNEXT as the last pass saw it. */
  uidNext?: number | null;
  backfill?: { completed?: boolean | null } | null;
  /** HIGHESTMODSEQ (RFC 7162) as the last pass that read the flags saw it; empty when the server has none. */
  highestModSeq?: string | null;
}

/**
 * A folder needs no EXAMINE and no FETCH when its UIDVALIDITY is the one the
 * cursor was built under, its backfill is done, and UIDNEXT shows no UID was
 * assigned above the cursor (RFC 3501 §2.3.1.1: UIDs only grow). Flag
 * changes are seenSince()'s question, asked separately.
 * UIDNEXT below the one the last pass saw is not "unchanged" either: UIDs
 * are being handed out again (a mailbox restored from a backup), see
 * uidsReused().
 */
export function isUnchanged(state: CursorState | null | undefined, status: { uidValidity?: bigint; uidNext?: number } | undefined): boolean {
  if (!state || !status || status.uidValidity === undefined || status.uidNext === undefined) return false;
  if (uidsReused(state, status.uidNext)) return false;
  return state.backfill?.completed === true && state.uidValidity === status.uidValidity.toString() && status.uidNext <= (state.lastUid ?? 0) + 1;
}

/**
 * UIDNEXT went back under the same UIDVALIDITY. RFC 3501 §2.3.1.1 forbids
 * it, but a provider that restores a mailbox from a backup brings back the
 * UIDNEXT of that day with the same UIDVALIDITY: the next mail gets UIDs
 * the cursor has already passed and would never be read. Such a folder's
 * UIDs cannot be trusted, so it is read again like one whose UIDVALIDITY
 * changed (ingest's de-duplication keeps it from storing anything twice).
 * Servers that (also against the RFC) report the highest UID + 1 go back
 * too when their newest message is expunged: re-read as well, which costs
 * time, not mail.
 */
export function uidsReused(state: CursorState | null | undefined, uidNext: number): boolean {
  return (state?.uidNext ?? 0) > uidNext;
}

export interface SizedUid {
  uid: number;
  size: number;
}

/**
 * Cut a list (already in processing order) into batches of at most
 * `maxCount` messages and about `maxBytes` bytes; a message bigger than
 * `maxBytes` on its own forms a batch. `messageCap` is the most bytes one
 * message can cost (larger ones are fetched truncated to it).
 */
export function planBatches<T extends SizedUid>(items: readonly T[], limits: { maxCount: number; maxBytes: number; messageCap?: number }): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const cost = Math.min(item.size, limits.messageCap ?? Infinity);
    if (current.length > 0 && (current.length >= limits.maxCount || bytes + cost > limits.maxBytes)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += cost;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * A compact UID set (RFC 3501 §9 sequence-set): `1:5,7,9:12`. Servers limit
 * command length (Dovecot: 64 KB), so thousands of UIDs must go as ranges.
 */
export function uidSet(uids: readonly number[]): string {
  const sorted = [...new Set(uids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * The most characters of UID set one command carries. Servers cap the
 * command line: Dovecot at 64 KB, others lower; RFC 7162 §4 asks clients
 * to stay within 8192 octets. Ranges make a run of UIDs short, but the
 * UIDs of a backfill window can be scattered (a mailbox migrated in no date
 * order, or mostly deleted): thousands of single UIDs, one command too long.
 */
export const MAX_UID_SET_CHARS = 800;

/** uidSet() cut into sets of at most `maxChars` characters each (a single UID never split). */
export function uidSets(uids: readonly number[], maxChars = MAX_UID_SET_CHARS): string[] {
  const parts = uidSet(uids).split(',').filter(Boolean);
  const sets: string[] = [];
  let current = '';
  for (const part of parts) {
    if (current && current.length + 1 + part.length > maxChars) {
      sets.push(current);
      current = '';
    }
    current = current ? `${current},${part}` : part;
  }
  if (current) sets.push(current);
  return sets;
}

/**
 * The mod-sequence to ask CHANGEDSINCE of (RFC 7162 §3.1.4.1) when flags
 * changed in a folder since the last pass: its HIGHESTMODSEQ grew. Undefined
 * when nothing changed, or when either side has no mod-sequence (a server
 * without CONDSTORE, a folder first read by this pass): then there is
 * nothing to catch up with.
 */
export function seenSince(state: CursorState | null | undefined, highestModSeq: bigint | undefined): bigint | undefined {
  const saved = state?.highestModSeq;
  if (!saved || !/^\d+$/.test(saved) || highestModSeq === undefined) return undefined;
  const before = BigInt(saved);
  // Mod-sequences start at 1 (RFC 7162 §3.1.1); imapflow would drop CHANGEDSINCE 0 and fetch every flag.
  return before > 0n && highestModSeq > before ? before : undefined;
}
