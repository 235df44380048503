import { AppError, notFound } from '../core/errors';
import { randomToken, sha256Hex } from '../core/crypto';
import type { Store } from '../store';
import { recordAudit, type Actor } from './audit';
import { findUserByEmail, getUser, toPublicUser, type PublicUser } from './users';
import { parseObjectId, type ObjectId } from './ids';
import { TOKEN_ACCESS, type TokenAccess } from '../models/api-token';

/**
 * API bearer tokens (RFC 6750). The token is `pr_` + 32 random bytes
 * (base64url), shown once; only its SHA-256 is stored, so a leaked database
 * does not leak usable tokens. A plain hash (not argon2) is right here:
 * the input has 256 bits of entropy, and lookups must be one indexed query.
 */
const PREFIX = 'pr_';

export interface ApiTokenView {
  id: string;
  userId: string;
  userEmail?: string;
  name: string;
  prefix: string;
  access: TokenAccess;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

type TokenRow = { _id: ObjectId; userId: ObjectId; name?: string | null; prefix?: string | null; access?: string | null; createdAt: Date; lastUsedAt?: Date | null; revokedAt?: Date | null };

function accessOf(row: { access?: string | null }): TokenAccess {
  return row.access === 'read' ? 'read' : 'full';
}

function toView(row: TokenRow, userEmail?: string): ApiTokenView {
  return {
    id: row._id.toString(),
    userId: row.userId.toString(),
    userEmail,
    name: row.name ?? '',
    prefix: row.prefix ?? '',
    access: accessOf(row),
    createdAt: row.createdAt,
    lastUsedAt: row.lastUsedAt ?? null,
    revokedAt: row.revokedAt ?? null,
  };
}

/** Create a token for the user with this email (CLI, console). Returns the secret once. */
export async function createApiToken(store: Store, userEmail: string, input: { name?: string; access?: string }, actor: Actor, now: Date = new Date()): Promise<{ token: string; view: ApiTokenView }> {
  const access = (input.access === undefined || input.access === '' ? 'full' : input.access) as TokenAccess;
  if (!TOKEN_ACCESS.includes(access)) {
    throw new AppError('VALIDATION_FAILED', `access must be ${TOKEN_ACCESS.join(' or ')}`, { status: 400, fields: { access: `must be ${TOKEN_ACCESS.join(' or ')}` } });
  }
  const user = await findUserByEmail(store, userEmail);
  if (!user) throw new AppError('NOT_FOUND', `no user with the email ${userEmail}`, { status: 404, fields: { user: `no user with the email ${userEmail}` } });
  if (user.disabled) throw new AppError('USER_DISABLED', `${user.email} is disabled`, { status: 409 });
  const name = (input.name ?? '').trim().slice(0, 100);
  const token = PREFIX + randomToken(32);
  const row = await store.models.ApiToken.create({ userId: parseObjectId(user.id)!, name, tokenHash: sha256Hex(token), prefix: token.slice(0, 10), access, createdAt: now });
  await recordAudit(store, actor, { action: 'token.create', targetType: 'api_token', targetId: row._id.toString(), details: { user: user.email, name, access } }, now);
  return { token, view: toView(row, user.email) };
}

/** Tokens of one user, or of everyone for admins, newest first. */
export async function listApiTokens(store: Store, options: { userId?: ObjectId } = {}): Promise<ApiTokenView[]> {
  const filter = options.userId ? { userId: options.userId } : {};
  const rows = await store.models.ApiToken.find(filter).sort({ createdAt: -1 }).limit(500).lean();
  const userIds = [...new Set(rows.map((row) => row.userId.toString()))];
  const users = await store.models.User.find({ _id: { $in: userIds } }, { email: 1 }).lean();
  const emailById = new Map(users.map((user) => [user._id.toString(), user.email]));
  return rows.map((row) => toView(row as TokenRow, emailById.get(row.userId.toString())));
}

/** Revoke a token; idempotent. `userId` limits it to that user's tokens (employees). */
export async function revokeApiToken(store: Store, id: string, actor: Actor, options: { userId?: ObjectId; now?: Date } = {}): Promise<void> {
  const objectId = parseObjectId(id);
  const row = objectId ? await store.models.ApiToken.findOne({ _id: objectId, ...(options.userId ? { userId: options.userId } : {}) }) : null;
  if (!row) throw notFound('API token');
  if (!row.revokedAt) {
    row.revokedAt = options.now ?? new Date();
    await row.save();
    await recordAudit(store, actor, { action: 'token.revoke', targetType: 'api_token', targetId: row._id.toString(), details: { name: row.name } }, options.now);
  }
}

/** Why a bearer token was refused, for the operator's log (the client is told only "unknown, revoked, or its user is disabled"). */
export interface ApiTokenCheck {
  user: PublicUser | null;
  refused?: 'unknown token' | 'revoked' | 'user disabled';
  /** The token's id, display prefix, user and access, when the token is known (also when refused). */
  token?: { id: string; prefix: string; name: string; userEmail: string; access: TokenAccess };
}

/**
 * Check a bearer token. lastUsedAt is refreshed at most once a minute so a
 * busy client does not turn every read into a write.
 */
export async function checkApiToken(store: Store, token: string, now: Date = new Date()): Promise<ApiTokenCheck> {
  if (!token.startsWith(PREFIX) || token.length > 200) return { user: null, refused: 'unknown token' };
  const row = await store.models.ApiToken.findOne({ tokenHash: sha256Hex(token) }).lean();
  if (!row) return { user: null, refused: 'unknown token' };
  const user = await getUser(store, row.userId);
  const known = { id: row._id.toString(), prefix: row.prefix, name: row.name ?? '', userEmail: user?.email ?? '', access: accessOf(row) };
  if (row.revokedAt) return { user: null, refused: 'revoked', token: known };
  if (!user || user.disabled) return { user: null, refused: 'user disabled', token: known };
  if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() > 60_000) {
    await store.models.ApiToken.updateOne({ _id: row._id }, { $set: { lastUsedAt: now } });
  }
  return { user, token: known };
}

/** The user a bearer token belongs to, or null when the token is unknown, revoked, or its user is disabled. */
export async function resolveApiToken(store: Store, token: string, now: Date = new Date()): Promise<PublicUser | null> {
  return (await checkApiToken(store, token, now)).user;
}

export { toPublicUser };
