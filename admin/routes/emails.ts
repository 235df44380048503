import { Router, type Request } from 'express';
import { automatedMailOf, BULK_KIND_LABELS, BULK_KIND_PHRASES } from '../../gateway/crm/bulk';
import { getObject } from '../../gateway/crm/objects';
import { messageLinks } from '../../gateway/crm/timeline';
import {
  attachedMessages, cachedUnreadCount, conversationOf, deleteMessage, deleteQuarantined, filterProblems, getMessageFor, inlineImageUrls, listMailAccounts, listMessages, markOpened, messageInvite, messageVolume, openAttachment, openRawMessage,
  releaseMessage, repliedMessage, setReadState, type MessageFilters, type ReadStateView, type Viewer, type VolumeDay,
} from '../../gateway/accounts';
import { AppError, isAppError, notFound } from '../../gateway/core/errors';
import { attachmentFilename } from '../../gateway/mail/attachments';
import { isCalendarType } from '../../gateway/mail/calendar';
import { planInlineImages } from '../../gateway/mail/inline-images';
import { listInfoOf } from '../../gateway/mail/list-headers';
import { secureMimeOf } from '../../gateway/mail/secure-mime';
import { SOURCE_KINDS, VERDICTS } from '../../gateway/models/message';
import { deletedByViewer } from '../lib/already-deleted';
import { attachmentIndex, emlFilename, setAttachmentHeaders, streamDownload } from '../lib/download';
import { field, queryParam } from '../lib/forms';
import { messageFrameDocument, sanitizeMessageHtml } from '../lib/sanitize';
import { renderVolumeChart, SOURCE_COLORS, SOURCE_LABELS } from '../lib/volume-chart';
import { flash, requireUser } from '../middleware/auth';
import { messageFrameCsp } from '../middleware/security';
import type { AdminDeps } from '../types';

const CHART_TTL_MS = 60_000;

/**
 * A refused filter of the inbox's form, named as the form labels it: a person typed into "Search", not into
 * "q". The others (status, object) only come in links, and keep the name they have in the address.
 */
const FILTER_LABELS: Record<string, string> = { q: 'Search', account: 'Account', source: 'Source', verdict: 'Authentication', since: 'Received from', until: 'Received to', unread: 'Unread only' };

/**
 * The inbox list a message was opened from, with its search, filters and page (`/?q=invoice&cursor=…`), from
 * the Referer (sent within the site: Referrer-Policy same-origin); '' when it was opened from elsewhere. Only
 * a path of this site's inbox comes out of it, so a foreign Referer can at most choose the inbox's filters.
 */
function inboxListFrom(referer: string | undefined): string {
  if (!referer) return '';
  try {
    const url = new URL(referer);
    return url.pathname === '/' ? `/${url.search}` : '';
  } catch {
    return '';
  }
}

/** The inbox list a form names to return to (inboxListFrom() put it there): an inbox path, else ''. */
function inboxListPath(value: string): string {
  return value === '/' || value.startsWith('/?') ? value : '';
}

/** The Emails inbox (dashboard), message view, downloads and quarantine actions. */
export function emailsRouter(deps: AdminDeps): Router {
  const router = Router();
  // The chart needs a scan of 30 days of mail; a minute-old picture is fine for a dashboard.
  const chartCache = new Map<string, { at: number; series: VolumeDay[] }>();
  async function volumeFor(viewer: Viewer, timeZone: string): Promise<VolumeDay[]> {
    // Per zone too: two admins in Berlin and New York count the same mail into different days.
    const key = `${viewer.role === 'admin' ? 'all' : viewer.id.toString()} ${timeZone}`;
    const now = deps.clock();
    const cached = chartCache.get(key);
    if (cached && now.getTime() - cached.at < CHART_TTL_MS) return cached.series;
    const series = await messageVolume(deps.store, viewer, { now, timeZone });
    chartCache.set(key, { at: now.getTime(), series });
    if (chartCache.size > 1000) chartCache.delete(chartCache.keys().next().value as string);
    return series;
  }

  function filtersFrom(req: Request): MessageFilters {
    return {
      accountId: queryParam(req, 'account') || undefined,
      source: queryParam(req, 'source') || undefined,
      verdict: queryParam(req, 'verdict') || undefined,
      status: queryParam(req, 'status') || undefined,
      objectId: queryParam(req, 'object') || undefined,
      q: queryParam(req, 'q') || undefined,
      since: queryParam(req, 'since').trim() || undefined,
      until: queryParam(req, 'until').trim() || undefined,
      unread: queryParam(req, 'unread') || undefined,
      // The days typed are the reader's: "29 March" on a Los Angeles desk starts at 07:00 UTC.
      timeZone: req.timeZone,
    };
  }

  router.get('/', requireUser, async (req, res) => {
    const viewer = req.viewer!;
    const filters = filtersFrom(req);
    const problems = filterProblems(filters);
    const cursor = queryParam(req, 'cursor') || undefined;
    // The chart is the page's costliest read (30 days of everyone's mail for an admin) and only the first page
    // of the inbox shows it: paging on or opening the quarantine must not pay for it when the cache is cold.
    const showChart = !cursor && filters.status !== 'quarantine';
    const [accounts, volume] = await Promise.all([listMailAccounts(deps.store, viewer), showChart ? volumeFor(viewer, req.timeZone!) : Promise.resolve([])]);
    let page: Awaited<ReturnType<typeof listMessages>> = { messages: [], nextCursor: null };
    let filterError = '';
    if (Object.keys(problems).length > 0) {
      filterError = Object.entries(problems).map(([name, problem]) => `${FILTER_LABELS[name] ?? name} ${problem}`).join('; ');
    } else {
      try {
        page = await listMessages(deps.store, viewer, filters, { cursor });
      } catch (err) {
        if (!(err instanceof AppError) || err.status !== 400) throw err;
        filterError = err.fields?.cursor ? 'This link to older mail is out of date or damaged: go back to the newest and page on from there.' : err.message;
      }
    }
    // The view's unread count (the viewer's own mail, one per entry): on the first page, as the chart. On MongoDB
    // an index answers it; on FerretDB it is one more read of the whole collection, so it is reused for a minute
    // unless it cannot be right (read-state.ts cachedUnreadCount), and paging on never pays for it.
    const view = (['inbox', 'quarantine', 'all'].includes(filters.status ?? '') ? filters.status : 'inbox') as ReadStateView;
    const newestShown = page.messages.length > 0 ? new Date(Math.max(...page.messages.map((m) => new Date(m.receivedAt).getTime()))) : null;
    const unread = !cursor && !filterError ? await cachedUnreadCount(deps.store, viewer, view, { newestShown }) : null;
    // A first test message fails authentication more often than not (a script, no DKIM): an empty
    // inbox says where it went instead of "No mail yet". One read of at most one document.
    const inboxView = !filters.status || filters.status === 'inbox';
    const quarantineHasMatches = inboxView && !filterError && !cursor && page.messages.length === 0 && accounts.length > 0
      && (await listMessages(deps.store, viewer, { ...filters, status: 'quarantine' }, { limit: 1 })).messages.length > 0;
    // "All mail" of an object says whose mail this is: the list alone does not (a customer's mail comes from many people).
    const linkedObject = filters.objectId && !problems.object ? await getObject(deps.store, filters.objectId).catch((err: unknown) => {
      if (err instanceof AppError && err.status === 404) return null;
      throw err;
    }) : null;
    const accountEmail = new Map(accounts.map((account) => [account.id, account.email]));
    // A code to copy back, or (Yahoo, Gmail without a code) only a link to open: either way the employee has a step to do.
    const pendingCodes = accounts.filter(
      (account) => (account.forwarding.confirmationCode || account.forwarding.confirmationLink) && account.forwarding.status === 'code_received',
    );
    res.status(filterError ? 400 : 200).render('emails/index', {
      title: filters.status === 'quarantine' ? 'Quarantine' : 'Emails',
      filters: { account: filters.accountId ?? '', source: filters.source ?? '', verdict: filters.verdict ?? '', status: filters.status ?? '', object: filters.objectId ?? '', q: filters.q ?? '', since: filters.since ?? '', until: filters.until ?? '', unread: filters.unread ?? '' },
      unreadCount: unread,
      viewerId: viewer.id.toString(),
      filterError,
      quarantineHasMatches,
      linkedObject,
      invalidFilters: Object.keys(problems),
      accounts,
      accountEmail,
      page,
      firstPage: !cursor,
      pendingCodes,
      sourceKinds: SOURCE_KINDS,
      verdicts: VERDICTS,
      showChart,
      chart: showChart ? renderVolumeChart(volume) : '',
      chartLegend: Object.keys(SOURCE_COLORS).map((kind) => ({ kind, label: SOURCE_LABELS[kind], color: SOURCE_COLORS[kind] })),
      chartTotal: volume.reduce((sum, day) => sum + day.total, 0),
    });
  });

  router.get('/messages/:id', requireUser, async (req, res) => {
    const message = await getMessageFor(deps.store, req.viewer!, String(req.params.id));
    if (!message) throw notFound('message');
    // Opened by its owner: read now (with its copies). An admin reading someone else's mail changes nothing.
    if (await markOpened(deps.store, req.viewer!, message)) message.unread = false;
    const loadImages = queryParam(req, 'images') === '1';
    const sanitized = message.html ? sanitizeMessageHtml(message.html, { loadImages }) : { html: '', blockedImages: 0, contentIds: [] };
    // When and where a meeting is lives only in the calendar part (Outlook's body is the organiser's note).
    const invite = await messageInvite(deps.store, message).catch((err: Error) => {
      deps.log.warn({ err, messageId: message._id.toString() }, 'the calendar part could not be read; the invitation stays a download');
      return null;
    });
    // Parts the body frame shows in place (the same plan as /body) are not listed again as attachments;
    // they keep their position, so the download route still serves them by index.
    const notListed = new Set(planInlineImages(sanitized.contentIds, message.attachments ?? []).map((image) => image.index));
    // Google sends the invitation twice, as the body's calendar alternative and as invite.ics: the panel offers
    // the one it read, the list the other, not two files of the same name.
    if (invite && (message.attachments ?? []).some((part, index) => index !== invite.partIndex && isCalendarType(part.contentType))) notListed.add(invite.partIndex);
    const attachments = (message.attachments ?? [])
      .map((attachment, index) => ({
        index, filename: attachmentFilename(attachment, index), size: attachment.size ?? 0,
        // Outlook's TNEF (MS-OXTNEF) wrapper: opens in Outlook only, and may be where the real attachments are.
        tnef: /^application\/(?:vnd\.)?ms-tnef$/i.test((attachment.contentType ?? '').trim()) || /^winmail\.dat$/i.test((attachment.filename ?? '').trim()),
      }))
      .filter((attachment) => !notListed.has(attachment.index));
    const account = message.accountId ? await deps.store.models.MailAccount.findById(message.accountId, { email: 1 }).lean() : null;
    const conversation = await conversationOf(deps.store, req.viewer!, message);
    // The message this one answers is in its conversation; looked up on its own only past the listed part of a long one.
    const inReplyTo = !message.inReplyTo ? null
      : conversation?.messages.find((entry) => entry.messageId === message.inReplyTo && !entry._id.equals(message._id))
        ?? (conversation?.more ? await repliedMessage(deps.store, req.viewer!, message) : null);
    // A forwarded-as-attachment mail is read here, not only offered as an .eml to open elsewhere.
    const attached = await attachedMessages(deps.store, message).catch((err: Error) => {
      deps.log.warn({ err, messageId: message._id.toString() }, 'the attached messages could not be read; they stay downloads');
      return [];
    });
    // Each link with why it was made (address and rule), as issue 6 asks the console to show.
    const linked = message.linkedObjectIds?.length
      ? (await messageLinks(deps.store, message._id)).map((link) => ({
          _id: link.object.id,
          type: link.object.type,
          name: link.object.name,
          why: link.reasons.length
            ? link.reasons.map((r) => `${r.address} (${r.rule}${r.role ? `, ${r.role}` : ''})`).join('; ')
            : `${link.address} (${link.rule})`,
        }))
      : [];
    const automated = automatedMailOf(message);
    res.render('emails/message', {
      title: message.subject || '(no subject)',
      automated: automated ? { label: BULK_KIND_LABELS[automated.kind], phrase: BULK_KIND_PHRASES[automated.kind], reason: automated.reason } : null,
      secureMime: secureMimeOf(message.headers ?? []),
      mailingList: listInfoOf(message.headers ?? []),
      invite,
      attached,
      // "Back" returns to the search, filters and page the message was opened from, not to the top of the inbox.
      backTo: inboxListFrom(req.get('referer')) || (message.status === 'quarantine' ? '/?status=quarantine' : '/'),
      // The menu marks where the message was opened from: a quarantined one belongs to Quarantine.
      navSection: message.status === 'quarantine' ? 'quarantine' : 'emails',
      message,
      ownMail: message.ownerId.equals(req.viewer!.id),
      accountEmail: account?.email ?? '',
      hasHtml: Boolean(message.html),
      blockedImages: sanitized.blockedImages,
      loadImages,
      attachments,
      linked,
      inReplyTo,
      conversation,
    });
  });

  // The sanitised HTML part, for the sandboxed iframe only; its own CSP forbids everything but inline styles and data: images.
  router.get('/messages/:id/body', requireUser, async (req, res) => {
    const message = await getMessageFor(deps.store, req.viewer!, String(req.params.id));
    if (!message) throw notFound('message');
    const loadImages = queryParam(req, 'images') === '1';
    const sanitized = sanitizeMessageHtml(message.html ?? '', { loadImages });
    let html = sanitized.html;
    // Images of the message itself (cid: references, RFC 2392) are shown from data: URLs, without "load images":
    // the first pass finds the references, the parts they name are read back in one parse, the second pass puts them in.
    const plan = planInlineImages(sanitized.contentIds, message.attachments ?? []);
    if (plan.length > 0) {
      const inlineImages = await inlineImageUrls(deps.store, message, plan).catch((err: Error) => {
        deps.log.warn({ err, messageId: message._id.toString() }, 'inline images could not be read; shown as broken images');
        return new Map<string, string>();
      });
      if (inlineImages.size > 0) html = sanitizeMessageHtml(message.html ?? '', { loadImages, inlineImages }).html;
    }
    res.set('Content-Security-Policy', messageFrameCsp(loadImages));
    res.set('Cache-Control', 'private, no-store');
    res.set('Referrer-Policy', 'no-referrer');
    res.type('html').send(messageFrameDocument(html));
  });

  router.get('/messages/:id/raw', requireUser, async (req, res) => {
    const raw = await openRawMessage(deps.store, req.viewer!, String(req.params.id));
    if (!raw) throw notFound('message');
    res.attachment(emlFilename(raw.subject || ''));
    res.type('message/rfc822');
    res.set('Content-Security-Policy', "sandbox; default-src 'none'");
    streamDownload(res, raw.stream, (err) => deps.log.error({ err, messageId: String(req.params.id) }, 'raw message stream failed'));
  });

  router.get('/messages/:id/attachments/:index', requireUser, async (req, res) => {
    const index = attachmentIndex(req.params.index);
    const attachment = index >= 0 ? await openAttachment(deps.store, req.viewer!, String(req.params.id), index) : null;
    if (!attachment) throw notFound('attachment');
    // Always a download, never rendered on our origin (an HTML attachment must not run here).
    setAttachmentHeaders(res, attachment);
    res.set('Content-Security-Policy', "sandbox; default-src 'none'");
    streamDownload(res, attachment.stream);
  });

  router.post('/messages/:id/release', requireUser, async (req, res) => {
    try {
      await releaseMessage({ store: deps.store, actor: req.actor!, afterRelease: deps.afterRelease }, req.viewer!, String(req.params.id));
      flash(req, 'success', 'Released from quarantine to the inbox.');
    } catch (err) {
      // A double click: the browser shows the answer to the second click, which found it released by the first.
      if (!isAppError(err) || err.code !== 'NOT_QUARANTINED') throw err;
      flash(req, 'info', 'This message is already in the inbox: it was released (or was never held).');
    }
    res.redirect(303, `/messages/${String(req.params.id)}`);
  });

  // "Mark as unread" on the message page (and its counterpart, for a form left open): back to the list, since
  // opening the message again would read it again.
  for (const [action, read] of [['read', true], ['unread', false]] as const) {
    router.post(`/messages/:id/${action}`, requireUser, async (req, res) => {
      const found = await setReadState(deps.store, req.viewer!, [String(req.params.id)], read);
      if (!found) throw notFound('message');
      flash(req, 'success', read ? 'Marked as read.' : 'Marked as unread.');
      res.redirect(303, inboxListPath(field(req, 'back')) || '/');
    });
  }

  // The inbox's "Mark these as read": exactly the entries that page showed (mail that arrived since stays unread).
  router.post('/messages/mark-read', requireUser, async (req, res) => {
    const body = (req.body ?? {}) as { id?: unknown };
    const ids = (Array.isArray(body.id) ? body.id : [body.id]).filter((value): value is string => typeof value === 'string' && value !== '');
    const found = await setReadState(deps.store, req.viewer!, ids, true);
    flash(req, 'success', `Marked ${found} message${found === 1 ? '' : 's'} as read.`);
    res.redirect(303, inboxListPath(field(req, 'back')) || '/');
  });

  // The Quarantine list's "Delete these": exactly the ids that page showed, never a query re-run here
  // (mail that arrived since must not go unseen).
  router.post('/quarantine/delete', requireUser, async (req, res) => {
    const body = (req.body ?? {}) as { id?: unknown };
    const ids = (Array.isArray(body.id) ? body.id : [body.id]).filter((value): value is string => typeof value === 'string' && value !== '');
    const now = deps.clock();
    const deleted = await deleteQuarantined({ store: deps.store, actor: req.actor!, now }, req.viewer!, ids);
    // The same page sent twice (a double click): what the first press deleted is deleted, not "kept".
    const already = deleted === ids.length ? 0 : await deps.store.models.AuditEvent.countDocuments({
      targetType: 'message', action: 'message.delete', actorId: req.viewer!.id, at: { $lt: now }, targetId: { $in: ids.map((id) => id.toLowerCase()) },
    });
    const skipped = ids.length - deleted - already;
    flash(req, 'success', `Deleted ${deleted + already} quarantined message${deleted + already === 1 ? '' : 's'}.` +
      (skipped > 0 ? ` ${skipped} ${skipped === 1 ? 'was' : 'were'} no longer in quarantine and kept.` : '') + ' A later IMAP sync will not bring them back.');
    res.redirect(303, inboxListPath(field(req, 'back')) || '/?status=quarantine');
  });

  router.post('/messages/:id/delete', requireUser, async (req, res) => {
    const message = await getMessageFor(deps.store, req.viewer!, String(req.params.id));
    const deleted = message ? null : await deletedByViewer(deps.store, req, { type: 'message', id: String(req.params.id), action: 'message.delete' });
    if (deleted) {
      flash(req, 'info', 'This message is already deleted.');
      return res.redirect(303, inboxListPath(field(req, 'back')) || (deleted.details.status === 'quarantine' ? '/?status=quarantine' : '/'));
    }
    if (!message) throw notFound('message');
    await deleteMessage({ store: deps.store, actor: req.actor!, now: deps.clock() }, req.viewer!, String(req.params.id));
    flash(req, 'success', 'Message deleted. A later IMAP sync will not bring it back.');
    res.redirect(303, inboxListPath(field(req, 'back')) || (message.status === 'quarantine' ? '/?status=quarantine' : '/'));
  });

  return router;
}
