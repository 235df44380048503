import { Router, type Request, type Response } from 'express';
import { changeOwnPassword, dropboxAddress, getBusinessSettings, MIN_PASSWORD_LENGTH, updateBusinessSettings, updateProfile, viewerTimeZone } from '../../gateway/accounts';
import { AppError, isAppError } from '../../gateway/core/errors';
import { canonicalTimeZone, timeZoneNames } from '../../gateway/core/time-zone';
import { field, queryParam } from '../lib/forms';
import { flash, requireUser } from '../middleware/auth';
import type { AdminDeps } from '../types';

/** Preferences → Business (admins change, everyone reads) and Profile. */
export function preferencesRouter(deps: AdminDeps): Router {
  const router = Router();
  const defaults = { businessDomains: deps.config.businessDomains };

  async function renderBusiness(req: Request, res: Response, status = 200, errors: Record<string, string> = {}, form?: Record<string, string>) {
    const settings = await getBusinessSettings(deps.store, defaults);
    res.status(status).render('preferences/business', {
      title: 'Business',
      section: 'business',
      settings,
      canEdit: req.user!.role === 'admin',
      errors,
      form: form ?? { name: settings.name, domains: settings.domains.join('\n'), authPolicy: settings.authPolicy, retentionDays: String(settings.retentionDays), timeZone: settings.timeZone },
      timeZones: timeZoneNames(),
    });
  }

  router.get('/preferences/business', requireUser, (req, res) => renderBusiness(req, res));

  router.post('/preferences/business', requireUser, async (req, res) => {
    if (req.user!.role !== 'admin') throw new AppError('FORBIDDEN', 'Only admins can change business settings.', { status: 403 });
    const form = { name: field(req, 'name'), domains: field(req, 'domains'), authPolicy: field(req, 'authPolicy'), retentionDays: field(req, 'retentionDays'), timeZone: field(req, 'timeZone') };
    try {
      // A form without the zone field (a page opened before it existed) leaves the zone as it is.
      await updateBusinessSettings(deps.store, { ...form, timeZone: req.body?.timeZone === undefined ? undefined : form.timeZone }, req.actor!, defaults);
    } catch (err) {
      if (isAppError(err) && err.fields) return renderBusiness(req, res, 400, err.fields, form);
      throw err;
    }
    flash(req, 'success', 'Business settings saved.');
    res.redirect(303, '/preferences/business');
  });

  const renderProfile = async (req: Request, res: Response, status = 200, errors: Record<string, string> = {}, name?: string, timeZone?: string) =>
    res.status(status).render('preferences/profile', {
      title: 'Profile',
      section: 'profile',
      name: name ?? req.user!.name,
      timeZone: timeZone ?? req.user!.timeZone,
      timeZones: timeZoneNames(),
      // What "Same as the business" means today.
      businessTimeZone: await viewerTimeZone(deps.store, null),
      errors,
      minLength: MIN_PASSWORD_LENGTH,
      dropbox: '',
    });

  router.get('/preferences/profile', requireUser, async (req, res) => {
    const user = await deps.store.models.User.findById(req.viewer!.id, { dropboxToken: 1 }).lean();
    res.locals.dropboxAddress = user ? dropboxAddress(user.dropboxToken, deps.config.gatewayDomain) : '';
    // "Use it" on the inbox's zone note (app.js) offers this computer's zone: preselected, saved only by Save.
    const offered = canonicalTimeZone(queryParam(req, 'timeZone'));
    await renderProfile(req, res, 200, {}, undefined, offered ?? undefined);
  });

  router.post('/preferences/profile', requireUser, async (req, res) => {
    const name = field(req, 'name');
    // A form without the zone field (an older page still open) leaves the zone as it is.
    const timeZone = req.body?.timeZone === undefined ? undefined : field(req, 'timeZone');
    try {
      await updateProfile(deps.store, req.viewer!.id, { name, timeZone }, req.actor!);
    } catch (err) {
      if (isAppError(err) && err.fields) return renderProfile(req, res, 400, err.fields, name, timeZone);
      throw err;
    }
    flash(req, 'success', 'Profile saved.');
    res.redirect(303, '/preferences/profile');
  });

  router.post('/preferences/profile/password', requireUser, async (req, res) => {
    const change = { currentPassword: field(req, 'currentPassword'), newPassword: field(req, 'newPassword'), confirm: field(req, 'confirm') };
    // The current password is guessed here as at sign-in (a session left open on a shared computer):
    // the same throttle counts both, so neither page gets more attempts than the other.
    const email = req.user!.email;
    const ip = req.ip ?? 'unknown';
    const verdict = deps.throttle.begin(email, ip);
    if (!verdict.allowed) {
      res.set('Retry-After', String(verdict.retryAfterSeconds));
      return renderProfile(req, res, 429, { currentPassword: `too many wrong passwords; try again in ${verdict.retryAfterSeconds} s` });
    }
    try {
      // Other sessions of this user end (gateway/accounts setPassword); this one stays signed in.
      const now = deps.clock();
      await changeOwnPassword(deps.store, req.viewer!.id, change, req.actor!, { keepSessionId: req.sessionID, now });
      req.session.signedInAt = now.getTime();
      verdict.attempt.succeeded();
    } catch (err) {
      if (isAppError(err) && err.fields?.currentPassword === 'is not correct') verdict.attempt.failed();
      // Every problem at once; the password fields are never filled back in.
      if (isAppError(err) && err.fields) return renderProfile(req, res, 400, err.fields);
      throw err;
    } finally {
      verdict.attempt.release();
    }
    flash(req, 'success', 'Password changed.');
    res.redirect(303, '/preferences/profile');
  });

  return router;
}
