import type { Logger } from '../core/log';
import { AppError, notFound, isDuplicateKeyError } from '../core/errors';
import { randomAddressToken, randomToken, sha256Hex } from '../core/crypto';
import { canonicalTimeZone, TIME_ZONE_PROBLEM } from '../core/time-zone';
import { ROLES, type Role } from '../models/user';
import type { Store } from '../store';
import { recordAudit, SYSTEM_ACTOR, type Actor } from './audit';
import { emailProblem, normalizeEmail } from './email-address';
import { parseObjectId, type ObjectId } from './ids';
import { claimUnderLease, newHolderId, runExclusive } from '../sync/lease';
import { hashPassword, passwordProblem, timingDummyHash, verifyPassword } from './passwords';

/** Invite links expire after a week unless the caller says otherwise. */
export const INVITE_TTL_MS = 7 * 24 * 3600 * 1000;

export interface PublicUser {
  id: string;
  email: string;
  name: string;
  role: Role;
  disabled: boolean;
  hasPassword: boolean;
  invitePending: boolean;
  inviteExpiresAt: Date | null;
  lastLoginAt: Date | null;
  /** Console sessions signed in before this are ended (admin/middleware/auth.ts). */
  passwordChangedAt: Date | null;
  createdAt: Date | null;
  /** The zone the user chose for the console; '' follows the business's zone. */
  timeZone: string;
}

type UserRow = {
  _id: ObjectId; email: string; name?: string | null; role: string; disabled?: boolean | null; passwordHash?: string | null;
  invite?: { tokenHash?: string | null; expiresAt?: Date | null } | null; lastLoginAt?: Date | null; passwordChangedAt?: Date | null; createdAt?: Date | null;
  timeZone?: string | null;
};

export function toPublicUser(user: UserRow): PublicUser {
  return {
    id: user._id.toString(),
    email: user.email,
    name: user.name ?? '',
    role: user.role as Role,
    disabled: Boolean(user.disabled),
    hasPassword: Boolean(user.passwordHash),
    invitePending: Boolean(user.invite?.tokenHash),
    inviteExpiresAt: user.invite?.expiresAt ?? null,
    lastLoginAt: user.lastLoginAt ?? null,
    passwordChangedAt: user.passwordChangedAt ?? null,
    createdAt: user.createdAt ?? null,
    timeZone: user.timeZone ?? '',
  };
}


function checkRole(role: string): Role {
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new AppError('VALIDATION_FAILED', `role must be one of ${ROLES.join(', ')}`, { status: 400, fields: { role: `must be one of ${ROLES.join(', ')}` } });
  }
  return role as Role;
}

export interface CreateUserInput {
  email: string;
  password?: string;
  name?: string;
  role?: string;
}

/** Create a user with a password (CLI, first admin, tests). Duplicate email → 409 EMAIL_TAKEN. */
export async function createUser(store: Store, input: CreateUserInput, actor: Actor = SYSTEM_ACTOR): Promise<PublicUser> {
  const fields: Record<string, string> = {};
  const emailIssue = emailProblem(input.email);
  if (emailIssue) fields.email = emailIssue;
  if (input.password !== undefined) {
    const issue = passwordProblem(input.password);
    if (issue) fields.password = issue;
  }
  if (Object.keys(fields).length > 0) throw new AppError('VALIDATION_FAILED', describeFields(fields), { status: 400, fields });
  const role = checkRole(input.role ?? 'employee');
  const email = normalizeEmail(input.email);
  try {
    const user = await store.models.User.create({
      email,
      name: (input.name ?? '').trim(),
      role,
      passwordHash: input.password ? await hashPassword(input.password) : '',
      dropboxToken: randomAddressToken(16),
    });
    await recordAudit(store, actor, { action: 'user.create', targetType: 'user', targetId: user._id.toString(), details: { email, role } });
    return toPublicUser(user);
  } catch (err) {
    if (isDuplicateKeyError(err)) throw new AppError('EMAIL_TAKEN', `a user with the email ${email} already exists`, { status: 409, fields: { email: 'is already a user' } });
    throw err;
  }
}

export function describeFields(fields: Record<string, string>): string {
  return Object.entries(fields).map(([name, problem]) => `${name} ${problem}`).join('; ');
}

/** Why a sign-in was refused, for the operator's log (the person signing in is told only "wrong email or password"). */
export type SignInRefusal = 'unknown user' | 'no password yet' | 'wrong password' | 'user disabled';

export interface SignInOutcome {
  user: PublicUser | null;
  refused?: SignInRefusal;
  /** The user the email names, when there is one (also when refused). */
  userId?: string;
}

/**
 * Check an email and password. Unknown users cost the same argon2
 * verification as known ones, so response time does not reveal which
 * addresses have accounts. Disabled users and users without a password
 * (pending invite) never authenticate.
 */
export async function signIn(store: Store, email: string, password: string, now: Date = new Date()): Promise<SignInOutcome> {
  const user = await store.models.User.findOne({ email: normalizeEmail(email) }).lean();
  if (!user || !user.passwordHash) {
    await verifyPassword(await timingDummyHash(), password);
    return user ? { user: null, refused: 'no password yet', userId: user._id.toString() } : { user: null, refused: 'unknown user' };
  }
  if (!(await verifyPassword(user.passwordHash, password))) return { user: null, refused: 'wrong password', userId: user._id.toString() };
  if (user.disabled) return { user: null, refused: 'user disabled', userId: user._id.toString() };
  await store.models.User.updateOne({ _id: user._id }, { $set: { lastLoginAt: now } });
  return { user: toPublicUser({ ...user, lastLoginAt: now }) };
}

/** The user with this email and password, or null (see signIn). */
export async function authenticateUser(store: Store, email: string, password: string, now: Date = new Date()): Promise<PublicUser | null> {
  return (await signIn(store, email, password, now)).user;
}

export async function getUser(store: Store, id: string | ObjectId): Promise<PublicUser | null> {
  const objectId = typeof id === 'string' ? parseObjectId(id) : id;
  if (!objectId) return null;
  const user = await store.models.User.findById(objectId).lean();
  return user ? toPublicUser(user) : null;
}

export async function findUserByEmail(store: Store, email: string): Promise<PublicUser | null> {
  const user = await store.models.User.findOne({ email: normalizeEmail(email) }).lean();
  return user ? toPublicUser(user) : null;
}

export async function listUsers(store: Store): Promise<PublicUser[]> {
  const users = await store.models.User.find({}).sort({ email: 1 }).limit(1000).lean();
  return users.map(toPublicUser);
}

async function requireUser(store: Store, id: string | ObjectId) {
  const objectId = typeof id === 'string' ? parseObjectId(id) : id;
  const user = objectId ? await store.models.User.findById(objectId) : null;
  if (!user) throw notFound('user');
  return user;
}

export interface SetPasswordOptions {
  /** The console session that made the change stays signed in (its own password change). */
  keepSessionId?: string;
  /** Accepting an invite: the password is set only while this token hash is still the user's invite. */
  inviteTokenHash?: string;
  now?: Date;
}

const inviteInvalid = () => new AppError('INVITE_INVALID', 'this invite link is invalid or has expired; ask an admin for a new one', { status: 404 });

/**
 * Set a new password (CLI reset, invite acceptance, profile change). Clears a
 * pending invite, and signs the user out everywhere else: a password is
 * changed or reset because someone else may know it, and a session opened
 * with the old one must not outlive it (OWASP Session Management Cheat
 * Sheet, "Renew the session ID after any privilege level change"). The
 * sessions are deleted, and `passwordChangedAt` ends them for good: a
 * request of one of them still in progress saves its session again when it
 * ends, and the console refuses sessions signed in before that time.
 */
/** Using an invite link takes well under this; a lease left by an admin process that died then frees itself. */
const INVITE_LEASE_TTL_MS = 30_000;

export async function setPassword(store: Store, id: string | ObjectId, password: string, actor: Actor = SYSTEM_ACTOR, options: SetPasswordOptions = {}): Promise<void> {
  const issue = passwordProblem(password);
  if (issue) throw new AppError('VALIDATION_FAILED', `password ${issue}`, { status: 400, fields: { password: issue } });
  const user = await requireUser(store, id);
  const passwordHash = await hashPassword(password);
  // A conditional write: with the invite's token in the filter, of two forms sent with one link at the
  // same moment only one matches, so the link is used once. FerretDB applies such a write as a read, then a
  // write, where both could match: the invite's lease (a unique insert) lets one form at a time try.
  const filter = { _id: user._id, ...(options.inviteTokenHash ? { 'invite.tokenHash': options.inviteTokenHash } : {}) };
  const passwordChangedAt = options.now ?? new Date();
  const write = () => store.models.User.updateOne(filter, { $set: { passwordHash, passwordChangedAt, invite: { tokenHash: '', expiresAt: null, invitedBy: null } } });
  const written = options.inviteTokenHash ? await claimUnderLease(store, `invite:${user._id.toString()}`, newHolderId(), INVITE_LEASE_TTL_MS, write) : await write();
  if (written?.matchedCount !== 1) throw options.inviteTokenHash ? inviteInvalid() : notFound('user');
  const others = await store.models.Session.deleteMany({ userId: user._id, ...(options.keepSessionId ? { _id: { $ne: options.keepSessionId } } : {}) });
  await recordAudit(store, actor, { action: 'user.password', targetType: 'user', targetId: user._id.toString(), details: { email: user.email, passwordChanged: true, sessionsEnded: others.deletedCount ?? 0 } });
}

export interface PasswordChange {
  currentPassword: string;
  newPassword: string;
  /** The new password typed again (forms); checked when given. */
  confirm?: string;
}

/**
 * A signed-in user changing their own password must prove they know the
 * current one. Every problem is reported at once (400 VALIDATION_FAILED,
 * fields currentPassword, newPassword, confirm), so the form is fixed in
 * one go. The current password is checked even when the new one has
 * problems: the answer tells nothing a correct new password would not.
 * Guesses are throttled by the caller, with sign-in's throttle
 * (admin/routes/preferences.ts).
 */
export async function changeOwnPassword(store: Store, id: ObjectId, change: PasswordChange, actor: Actor, options: SetPasswordOptions = {}): Promise<void> {
  const user = await requireUser(store, id);
  const fields: Record<string, string> = {};
  if (!change.currentPassword) fields.currentPassword = 'enter your current password';
  else if (!(await verifyPassword(user.passwordHash ?? '', change.currentPassword))) fields.currentPassword = 'is not correct';
  const issue = passwordProblem(change.newPassword);
  if (issue) fields.newPassword = issue;
  if (change.confirm !== undefined && change.confirm !== change.newPassword) fields.confirm = 'does not match the new password';
  if (Object.keys(fields).length > 0) throw new AppError('VALIDATION_FAILED', describeFields(fields), { status: 400, fields });
  await setPassword(store, id, change.newPassword, actor, options);
}

export async function updateProfile(store: Store, id: ObjectId, input: { name: string; timeZone?: string }, actor: Actor): Promise<PublicUser> {
  const name = input.name.trim();
  const fields: Record<string, string> = {};
  if (name.length > 200) fields.name = 'must be at most 200 characters';
  // '' follows the business's zone; anything else must be a zone Intl knows, stored as Intl spells it.
  const timeZone = input.timeZone === undefined || input.timeZone.trim() === '' ? input.timeZone?.trim() : canonicalTimeZone(input.timeZone);
  if (timeZone === null) fields.timeZone = TIME_ZONE_PROBLEM;
  if (Object.keys(fields).length > 0) throw new AppError('VALIDATION_FAILED', describeFields(fields), { status: 400, fields });
  const user = await requireUser(store, id);
  user.name = name;
  if (typeof timeZone === 'string') user.timeZone = timeZone;
  await user.save();
  await recordAudit(store, actor, { action: 'user.profile', targetType: 'user', targetId: user._id.toString(), details: { name, ...(typeof timeZone === 'string' ? { timeZone } : {}) } });
  return toPublicUser(user);
}

/** There must always be one enabled admin with a password, or nobody can manage the appliance. */
async function assertAnotherAdmin(store: Store, exceptId: ObjectId): Promise<void> {
  const others = await store.models.User.countDocuments({ role: 'admin', disabled: false, _id: { $ne: exceptId } });
  if (others === 0) throw new AppError('LAST_ADMIN', 'this is the last enabled admin; make another user admin first', { status: 409 });
}

/**
 * Changes that can take an admin away (role, disabled) run one at a time: the "another enabled admin?"
 * check and the write are one step for everyone else. Two admins demoting or disabling each other at the
 * same moment each saw the other still an admin, and the business was left with none.
 */
function oneAdminChangeAtATime<T>(store: Store, change: () => Promise<T>): Promise<T> {
  return runExclusive(store, 'users:admins', {
    ttlMs: 30_000,
    waitMs: 10_000,
    busy: () => new AppError('BUSY', 'users are being changed by another admin right now; try again', { status: 409 }),
  }, change);
}

export async function setUserRole(store: Store, id: string | ObjectId, role: string, actor: Actor): Promise<PublicUser> {
  const newRole = checkRole(role);
  return oneAdminChangeAtATime(store, () => setRoleNow(store, id, newRole, actor));
}

async function setRoleNow(store: Store, id: string | ObjectId, newRole: Role, actor: Actor): Promise<PublicUser> {
  const user = await requireUser(store, id);
  if (user.role === 'admin' && newRole !== 'admin') await assertAnotherAdmin(store, user._id);
  const before = user.role;
  user.role = newRole;
  await user.save();
  await recordAudit(store, actor, { action: 'user.role', targetType: 'user', targetId: user._id.toString(), details: { email: user.email, from: before, to: newRole } });
  return toPublicUser(user);
}

/** Disable or enable a user. Disabling also revokes their API tokens and ends their sessions (the caller's session store sweeps by userId). */
export async function setUserDisabled(store: Store, id: string | ObjectId, disabled: boolean, actor: Actor, now: Date = new Date()): Promise<PublicUser> {
  return oneAdminChangeAtATime(store, () => setDisabledNow(store, id, disabled, actor, now));
}

async function setDisabledNow(store: Store, id: string | ObjectId, disabled: boolean, actor: Actor, now: Date): Promise<PublicUser> {
  const user = await requireUser(store, id);
  if (disabled && actor.id && actor.id.equals(user._id)) throw new AppError('CANNOT_DISABLE_SELF', 'you cannot disable your own user', { status: 409 });
  if (disabled && user.role === 'admin') await assertAnotherAdmin(store, user._id);
  user.disabled = disabled;
  await user.save();
  if (disabled) await store.models.ApiToken.updateMany({ userId: user._id, revokedAt: null }, { $set: { revokedAt: now } });
  await recordAudit(store, actor, { action: disabled ? 'user.disable' : 'user.enable', targetType: 'user', targetId: user._id.toString(), details: { email: user.email } }, now);
  return toPublicUser(user);
}

export interface Invite {
  user: PublicUser;
  /** The secret for the link; only its SHA-256 is stored. */
  token: string;
  expiresAt: Date;
  /** A link made earlier for this user, still usable until now, stopped working (only one link works at a time). */
  replacedLink: boolean;
}

/**
 * Invite someone (or re-invite a user who has not set a password yet): a
 * user without a password plus a one-time token that expires. The link is
 * `${PUBLIC_URL}/invite/<token>`. Only the newest link works: re-inviting
 * says whether that made an earlier, unexpired link stop working
 * (`replacedLink`), so the admin can tell the invitee which one to use.
 */
export async function inviteUser(store: Store, input: { email: string; role?: string; name?: string }, actor: Actor, options: { ttlMs?: number; now?: Date } = {}): Promise<Invite> {
  const emailIssue = emailProblem(input.email);
  if (emailIssue) throw new AppError('VALIDATION_FAILED', `email ${emailIssue}`, { status: 400, fields: { email: emailIssue } });
  const role = checkRole(input.role ?? 'employee');
  const email = normalizeEmail(input.email);
  const now = options.now ?? new Date();
  const token = randomToken(24);
  const expiresAt = new Date(now.getTime() + (options.ttlMs ?? INVITE_TTL_MS));
  const invite = { tokenHash: sha256Hex(token), expiresAt, invitedBy: actor.id ?? null };
  let user = await store.models.User.findOne({ email });
  let replacedLink = false;
  if (user) {
    if (user.passwordHash) throw new AppError('EMAIL_TAKEN', `${email} is already a user`, { status: 409, fields: { email: 'is already a user' } });
    replacedLink = Boolean(user.invite?.tokenHash) && (user.invite?.expiresAt?.getTime() ?? 0) > now.getTime();
    user.invite = invite;
    user.role = role;
    if (input.name !== undefined) user.name = input.name.trim();
    await user.save();
  } else {
    try {
      user = await store.models.User.create({ email, role, name: (input.name ?? '').trim(), dropboxToken: randomAddressToken(16), invite });
    } catch (err) {
      if (isDuplicateKeyError(err)) throw new AppError('EMAIL_TAKEN', `${email} is already a user`, { status: 409, fields: { email: 'is already a user' } });
      throw err;
    }
  }
  await recordAudit(store, actor, { action: 'user.invite', targetType: 'user', targetId: user._id.toString(), details: { email, role, expiresAt: expiresAt.toISOString(), replacedLink } }, now);
  return { user: toPublicUser(user), token, expiresAt, replacedLink };
}

/** A password reset link works for a day: long enough to reach the person, short for a link that replaces a password. */
export const RESET_LINK_TTL_MS = 24 * 3600 * 1000;

/**
 * A one-time link with which a user who forgot their password sets a new
 * one (an admin hands it over, as an invite link), instead of the admin
 * choosing a password and sending it in clear text. It is the invite
 * mechanism on an existing user: the current password keeps working until
 * the link is used, and using it signs the user out everywhere else
 * (setPassword). A disabled user gets none (enable them first).
 */
export async function makePasswordResetLink(store: Store, id: string | ObjectId, actor: Actor, options: { ttlMs?: number; now?: Date } = {}): Promise<Invite> {
  const user = await requireUser(store, id);
  if (user.disabled) throw new AppError('USER_DISABLED', `${user.email} is disabled; enable the user first`, { status: 409 });
  const now = options.now ?? new Date();
  const token = randomToken(24);
  const expiresAt = new Date(now.getTime() + (options.ttlMs ?? RESET_LINK_TTL_MS));
  const replacedLink = Boolean(user.invite?.tokenHash) && (user.invite?.expiresAt?.getTime() ?? 0) > now.getTime();
  user.invite = { tokenHash: sha256Hex(token), expiresAt, invitedBy: actor.id ?? null };
  await user.save();
  await recordAudit(store, actor, { action: 'user.reset_link', targetType: 'user', targetId: user._id.toString(), details: { email: user.email, expiresAt: expiresAt.toISOString(), replacedLink } }, now);
  return { user: toPublicUser(user), token, expiresAt, replacedLink };
}

/** The invited user for a link token, or null when unknown, used or expired. */
export async function findInvite(store: Store, token: string, now: Date = new Date()): Promise<PublicUser | null> {
  if (!/^[A-Za-z0-9_-]{16,64}$/.test(token)) return null;
  const user = await store.models.User.findOne({ 'invite.tokenHash': sha256Hex(token) }).lean();
  if (!user || user.disabled || !user.invite?.expiresAt || user.invite.expiresAt.getTime() <= now.getTime()) return null;
  return toPublicUser(user);
}

/** Set the invited user's password; the token stops working. */
export async function acceptInvite(store: Store, token: string, input: { password: string; name?: string }, now: Date = new Date()): Promise<PublicUser> {
  const invited = await findInvite(store, token, now);
  if (!invited) throw inviteInvalid();
  const actor: Actor = { id: parseObjectId(invited.id), email: invited.email };
  const issue = passwordProblem(input.password);
  if (issue) throw new AppError('VALIDATION_FAILED', `password ${issue}`, { status: 400, fields: { password: issue } });
  await setPassword(store, invited.id, input.password, actor, { inviteTokenHash: sha256Hex(token), now });
  if (input.name !== undefined && input.name.trim()) await updateProfile(store, parseObjectId(invited.id)!, { name: input.name }, actor);
  return (await getUser(store, invited.id))!;
}

/**
 * First start: create the admin from ADMIN_EMAIL / ADMIN_PASSWORD when no
 * admin exists yet. Idempotent: later starts change nothing (the password
 * variable is only read on creation, so rotating it in .env has no effect;
 * use `npm run cli -- reset-password`).
 */
/** How the operator makes the first admin, for the log and the sign-in page of an appliance that has none. */
export const FIRST_ADMIN_HINT = 'start it with ADMIN_EMAIL and ADMIN_PASSWORD set, or run the CLI: npm run cli -- create-user --email you@example.com --password … --role admin (Docker: docker compose exec admin node dist/gateway/bin/cli.js create-user …)';

const adminSeen = new WeakSet<Store>();

/** Whether any admin exists; once one does, the store is not asked again (admins are never all deleted by a start). */
export async function hasAdmin(store: Store): Promise<boolean> {
  if (adminSeen.has(store)) return true;
  const found = (await store.models.User.exists({ role: 'admin' })) !== null;
  if (found) adminSeen.add(store);
  return found;
}

export async function ensureFirstAdmin(store: Store, input: { email?: string; password?: string }, log: Logger): Promise<'created' | 'exists' | 'missing'> {
  const admins = await store.models.User.countDocuments({ role: 'admin' });
  if (admins > 0) return 'exists';
  if (!input.email || !input.password) {
    log.warn(`no admin user exists: ${FIRST_ADMIN_HINT}`);
    return 'missing';
  }
  const existing = await store.models.User.findOne({ email: normalizeEmail(input.email) });
  if (existing) {
    existing.role = 'admin';
    if (!existing.passwordHash) existing.passwordHash = await hashPassword(input.password);
    await existing.save();
    await recordAudit(store, SYSTEM_ACTOR, { action: 'user.role', targetType: 'user', targetId: existing._id.toString(), details: { email: existing.email, to: 'admin', reason: 'ADMIN_EMAIL' } });
  } else {
    await createUser(store, { email: input.email, password: input.password, role: 'admin' }, SYSTEM_ACTOR);
  }
  log.info({ email: normalizeEmail(input.email) }, 'created the first admin from ADMIN_EMAIL');
  return 'created';
}
