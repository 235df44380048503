import { AppError } from '../core/errors';
import { classifyNetworkError, SMTP_WORDING, systemCode } from '../accounts/network-errors';

/** Stable codes the console, the API and the outbox show and act on. */
export const SMTP_ERROR_CODES = [
  'AUTH_FAILED', 'HOST_NOT_FOUND', 'CONNECTION_REFUSED', 'TLS_ERROR', 'TIMEOUT', 'MAIL_SERVER_BLOCKED',
  'RECIPIENT_REFUSED', 'SENDER_REFUSED', 'MESSAGE_REFUSED', 'MESSAGE_TOO_LARGE', 'SMTP_TEMPORARY', 'SMTP_ERROR',
] as const;
export type SmtpErrorCode = (typeof SMTP_ERROR_CODES)[number];

/** What nodemailer puts on its errors (smtp-connection `_formatError`). */
type NodemailerError = Error & {
  code?: string;
  originalCode?: string;
  /** The server's full reply, e.g. "550 5.1.1 <x@y>: Recipient address rejected". */
  response?: string;
  responseCode?: number;
  /** The SMTP command that got the reply: 'CONN', 'AUTH PLAIN', 'MAIL FROM', 'RCPT TO', 'DATA'. */
  command?: string;
  /** Per-recipient errors when every recipient was refused. */
  rejectedErrors?: NodemailerError[];
  cause?: unknown;
};

export interface ClassifiedSmtpError {
  error: AppError;
  /**
   * Worth retrying later: a 4xx reply (RFC 5321 §4.2.1: "transient negative
   * completion") or the server could not be reached. Authentication and TLS
   * failures need the user, so they are not retried.
   */
  transient: boolean;
  /** The server's reply text when there was one, as the user should see it. */
  serverReply: string;
}

const TRANSIENT_NETWORK = new Set(['HOST_NOT_FOUND', 'CONNECTION_REFUSED', 'TIMEOUT']);

function replyOf(e: NodemailerError): string {
  return (e.response ?? '').replace(/\s+/g, ' ').trim().slice(0, 500);
}

/** RFC 3463 enhanced code from a reply, e.g. '5.3.4'. */
function enhancedOf(reply: string): string {
  return /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\b/.exec(reply)?.[1] ?? '';
}

/**
 * Turn what nodemailer threw into an AppError with one of SMTP_ERROR_CODES,
 * the server's own words, and whether to retry. The message never contains
 * the password (nodemailer does not put it in errors; we echo host, port and
 * server text only). Status 422: the settings or the message are the problem,
 * not the request's syntax.
 */
export function classifySmtpError(err: unknown, target?: { host?: string; port?: number }): ClassifiedSmtpError {
  const e = (err ?? {}) as NodemailerError;
  const where = target?.host ? `${target.host}:${target.port ?? ''}`.replace(/:$/, '') : 'the SMTP server';
  const reply = replyOf(e);
  const responseCode = e.responseCode ?? (Number(/^(\d{3})\b/.exec(reply)?.[1]) || 0);
  const make = (code: SmtpErrorCode, message: string, transient: boolean) => ({
    error: new AppError(code, message, {
      status: 422,
      smtpCode: responseCode || undefined,
      enhancedCode: enhancedOf(reply) || undefined,
      cause: err,
    }),
    transient,
    serverReply: reply,
  });

  // RFC 4954 §6: 535 wrong credentials, 534 "authentication mechanism is too weak"
  // (also Gmail's "application-specific password required"); 454 is temporary.
  if (e.code === 'EAUTH' || e.code === 'ENOAUTH') {
    if (responseCode >= 400 && responseCode < 500) {
      return make('SMTP_TEMPORARY', `${where} could not check the password just now${reply ? `: "${reply}"` : ''}. Postroom will try again.`, true);
    }
    return make('AUTH_FAILED', `The server rejected the user name or password${reply ? `: "${reply}"` : ''}. Check them; most providers need an app password for SMTP.`, false);
  }

  // A reply from the server, per RFC 5321 §4.2.1: 4yz transient, 5yz permanent.
  if (responseCode >= 400 && responseCode < 500) {
    return make('SMTP_TEMPORARY', `${where} answered "${reply}" (a temporary failure): Postroom will try again.`, true);
  }
  if (responseCode >= 500 && responseCode < 600) {
    const enhanced = enhancedOf(reply);
    // RFC 1870 §6.1 (552 over SIZE), RFC 3463 X.3.4 "message too big for system".
    if (enhanced === '5.3.4' || (responseCode === 552 && (enhanced === '' || /size|too (big|large)/i.test(reply)))) {
      return make('MESSAGE_TOO_LARGE', `The message is too large for ${where}: "${reply}". Remove or shrink attachments.`, false);
    }
    if (e.command === 'RCPT TO') {
      const refused = (e.rejectedErrors ?? []).map(replyOf).filter(Boolean);
      const detail = refused.length > 1 ? refused.map((r) => `"${r}"`).join('; ') : `"${reply}"`;
      return make('RECIPIENT_REFUSED', `${where} refused the recipient${refused.length > 1 ? 's' : ''}: ${detail}. Nothing was sent.`, false);
    }
    if (e.command === 'MAIL FROM') return make('SENDER_REFUSED', `${where} refused the sender address: "${reply}". Nothing was sent.`, false);
    return make('MESSAGE_REFUSED', `${where} refused the message: "${reply}". Nothing was sent.`, false);
  }

  // nodemailer refuses before sending when the server announced SIZE (RFC 1870) and the message is bigger.
  if (e.code === 'EMESSAGE' && /size larger than allowed/i.test(e.message ?? '')) {
    return make('MESSAGE_TOO_LARGE', `The message is larger than ${where} accepts (${e.message}). Remove or shrink attachments.`, false);
  }

  const network = classifyNetworkError(err, target, SMTP_WORDING);
  if (network) return make(network.code, network.message, TRANSIENT_NETWORK.has(network.code));

  // The connection dropped (RFC 5321 §3.8: a lost connection is a temporary failure).
  const code = systemCode(err);
  if (['ECONNECTION', 'ESOCKET', 'ECONNRESET', 'EPIPE'].includes(e.code ?? '') || code === 'EPIPE') {
    return make('CONNECTION_REFUSED', `The connection to ${where} failed (${e.message || code}). Postroom will try again.`, true);
  }
  if (e.cause && e.cause !== err) {
    const inner = classifySmtpError(e.cause, target);
    if (inner.error.code !== 'SMTP_ERROR') return inner;
  }
  return make('SMTP_ERROR', `${where} answered with an error: ${reply || e.message || code || 'unknown error'}`, false);
}
