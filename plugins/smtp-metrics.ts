import { metrics } from '../gateway/core/metrics';

/** Count one transaction answered at the end of DATA (gateway/core/metrics.ts), with the time since `startedMs`. */
export function countTransaction(code: number, outcome: 'stored' | 'duplicate' | 'rejected' | 'tempfail', startedMs: number): void {
  const { smtpTransactions, smtpTransactionSeconds } = metrics();
  smtpTransactions.inc({ code: String(code), outcome });
  smtpTransactionSeconds.observe({ outcome }, (Date.now() - startedMs) / 1000);
}
