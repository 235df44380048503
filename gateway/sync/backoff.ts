/**
 * Delay before the next attempt after `failures` consecutive network, TLS or
 * timeout failures of one account: base, 2×base, 4×base … capped (1 min →
 * 1 h by default). Only that account waits; the others keep syncing.
 */
export function backoffDelayMs(failures: number, baseMs: number, capMs: number): number {
  if (failures < 1) return 0;
  const exponent = Math.min(failures - 1, 30); // 2^30 × base already exceeds any sane cap
  return Math.min(capMs, baseMs * 2 ** exponent);
}
