import type { Response } from 'express';
import { AppError } from '../../gateway/core/errors';

/**
 * Large bodies held in memory at once, per user. Compose (multer's memory
 * storage) and the API's send (JSON with base64 attachments) hold a whole
 * message of up to SMTP_MAX_MESSAGE_SIZE, and more, until it is sent: one
 * signed-in script posting fifty at once made the admin process hold
 * gigabytes, and it serves everyone. Two at a time per user is more than a
 * person sends; further ones are refused before their body is read (429,
 * Retry-After), and a slot is free again when its response has gone.
 */
export const UPLOADS_PER_USER = 2;
const RETRY_AFTER_SECONDS = 5;

export class UploadSlots {
  private readonly inUse = new Map<string, number>();

  constructor(private readonly perUser: number = UPLOADS_PER_USER) {}

  /** Take a slot for `userId` until `res` is done, or answer false when the user has none left. */
  take(userId: string, res: Response): boolean {
    const used = this.inUse.get(userId) ?? 0;
    if (used >= this.perUser) return false;
    this.inUse.set(userId, used + 1);
    let held = true;
    // 'close' comes after 'finish' too, and also when the client went away first.
    res.once('close', () => {
      if (!held) return;
      held = false;
      const left = (this.inUse.get(userId) ?? 1) - 1;
      if (left > 0) this.inUse.set(userId, left);
      else this.inUse.delete(userId);
    });
    return true;
  }

  /** Slots `userId` holds now. */
  held(userId: string): number {
    return this.inUse.get(userId) ?? 0;
  }

  /** The refusal: 429 TOO_MANY_UPLOADS with Retry-After. */
  static refusal(): AppError {
    const error = new AppError('TOO_MANY_UPLOADS', `${UPLOADS_PER_USER} messages of yours are being received or sent right now; send this one when one of them is done.`, { status: 429 });
    return Object.assign(error, { retryAfter: RETRY_AFTER_SECONDS });
  }
}
