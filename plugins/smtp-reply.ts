import DSN from 'haraka-dsn';
import * as constants from 'haraka-constants';
import { AppError } from '../gateway/core/errors';

/**
 * The one place engine errors become SMTP replies. An AppError carries its
 * reply (smtpCode + RFC 3463 enhancedCode); a temporary failure also carries
 * a short tag that appears in the reply and in the log line, so an admin can
 * grep from a bounce to its cause. Anything else is a bug on our side: the
 * sender is asked to retry (4xx) — never 250, and never a permanent
 * rejection of mail that may be fine.
 */

export interface SmtpReply {
  /** haraka-constants action: DENY (5xx) or DENYSOFT (4xx). */
  action: number;
  dsn: DSN;
  code: number;
  enhancedCode: string;
  tag: string;
  text: string;
  /** True for errors that are our bug rather than the sender's problem or a known store outage. */
  unexpected: boolean;
}

export function smtpReply(err: unknown): SmtpReply {
  const known = err instanceof AppError && err.smtpCode !== undefined;
  const code = known ? err.smtpCode! : 451;
  const enhancedCode = known && err.enhancedCode ? err.enhancedCode : code >= 500 ? '5.0.0' : '4.3.0';
  const tag = known ? (err.tag ?? '') : 'GW99';
  const message = known ? err.message : 'Temporary local problem, please retry';
  const text = tag ? `${message} [${tag}]` : message;
  const [, subject, detail] = enhancedCode.split('.').map(Number);
  return {
    action: code >= 500 ? constants.deny : constants.denysoft,
    dsn: DSN.create(code, text, subject, detail),
    code,
    enhancedCode,
    tag,
    text,
    unexpected: !known,
  };
}
