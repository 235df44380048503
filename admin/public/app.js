// Progressive enhancement only: every form works without this file.
// Served from 'self' so the strict CSP (script-src 'self') allows it.
(function () {
  'use strict';

  // Copy buttons: <button data-copy="text">. Hidden until JS runs, since they need it.
  function enableCopyButtons(root) {
    root.querySelectorAll('[data-copy]').forEach(enableCopyButton);
  }
  enableCopyButtons(document);

  function enableCopyButton(button) {
    button.hidden = false;
    button.addEventListener('click', function () {
      var text = button.getAttribute('data-copy');
      var done = function () {
        var label = button.textContent;
        button.textContent = 'Copied';
        announce('Copied to the clipboard.');
        setTimeout(function () { button.textContent = label; }, 1500);
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
      } else {
        fallbackCopy(text);
        done();
      }
    });
  }

  // A screen reader does not read a button's new label out: a polite live region says what happened.
  var announcer;
  function announce(text) {
    if (!announcer) {
      announcer = document.createElement('div');
      announcer.className = 'sr-only';
      announcer.id = 'announcer';
      announcer.setAttribute('role', 'status');
      document.body.appendChild(announcer);
    }
    announcer.textContent = '';
    // A new text node in a later task, so that the same words twice are announced twice.
    setTimeout(function () { announcer.textContent = text; }, 50);
  }

  function fallbackCopy(text) {
    var area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.className = 'sr-only';
    document.body.appendChild(area);
    area.select();
    try { document.execCommand('copy'); } catch { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  // A part that follows the server (the account page's forwarding state, until a provider's code arrives and
  // forwarding is verified): asked for again every 5 s while the tab is visible, for up to 15 min. Only this
  // part is replaced, so what is being typed elsewhere on the page stays.
  document.querySelectorAll('[data-poll]').forEach(function (live) {
    var url = live.getAttribute('data-poll');
    var until = Date.now() + 15 * 60 * 1000;
    var timer = setInterval(function () {
      if (Date.now() > until) return clearInterval(timer);
      if (document.hidden) return;
      // Not following redirects: a session that ended is answered with one to the sign-in page, whose HTML
      // would otherwise replace the panel.
      fetch(url, { credentials: 'same-origin', redirect: 'manual', headers: { Accept: 'text/html' } }).then(function (response) {
        // Signed out: nothing changes here until the user signs in again.
        if (response.type === 'opaqueredirect') clearInterval(timer);
        if (!response.ok) return null; // signed out, or the account is gone: keep what is shown
        if (response.headers.get('X-Poll') === 'stop') clearInterval(timer);
        return response.text();
      }).then(function (html) {
        if (html === null || html === undefined || html === live.innerHTML) return;
        live.innerHTML = html;
        enableCopyButtons(live);
      }).catch(function () { /* offline for a moment: the next tick tries again */ });
    }, 5000);
  });

  // IMAP and SMTP presets: choosing a service fills host, port and TLS (the server does the same when they are left blank).
  ['imap-service', 'smtp-service'].forEach(function (id) {
    var service = document.getElementById(id);
    if (!service || !service.form) return;
    var presets = {};
    try { presets = JSON.parse(service.getAttribute('data-presets') || '{}'); } catch { presets = {}; }
    var hints = {};
    try { hints = JSON.parse(service.getAttribute('data-hints') || '{}'); } catch { hints = {}; }
    var hint = document.getElementById(id.replace('-service', '') + '-password-service-hint');
    service.addEventListener('change', function () {
      if (hint && hints[service.value]) hint.textContent = hints[service.value];
      var preset = presets[service.value];
      if (!preset) return;
      service.form.elements.host.value = preset.host;
      service.form.elements.port.value = preset.port;
      service.form.elements.tls.value = preset.tls;
    });
  });

  // TLS choice and port go together (RFC 8314 §3.3, RFC 3501 §6.2.1, RFC 6409): switching the TLS mode moves a
  // port left at the other mode's standard number, so "STARTTLS" is not tried on 993 (a long wait, then a timeout).
  [['imap-tls', { implicit: '993', starttls: '143', none: '143' }], ['smtp-tls', { implicit: '465', starttls: '587', none: '587' }]].forEach(function (pair) {
    var tls = document.getElementById(pair[0]);
    if (!tls || !tls.form) return;
    var standard = pair[1];
    var previous = tls.value;
    tls.addEventListener('change', function () {
      var port = tls.form.elements.port;
      if (port.value === standard[previous] && standard[tls.value]) port.value = standard[tls.value];
      previous = tls.value;
    });
  });

  // Compose: one press of Send is enough; say that it is under way (the server also sends a form's message once).
  var composeForm = document.getElementById('compose-form');
  if (composeForm) {
    composeForm.addEventListener('submit', function () {
      var send = document.getElementById('compose-send');
      // After the submission has started, so the button's own press still counts.
      setTimeout(function () { send.disabled = true; send.textContent = 'Sending…'; }, 0);
    });
    // Keyboard: Enter in a one-line field would send the form (HTML implicit submission), a half-written
    // message with no text. It stays in an address field (more may follow) and goes from Subject to the
    // text; Ctrl+Enter (Cmd+Enter) sends, as in mail programs. Without this file, Enter still submits.
    composeForm.addEventListener('keydown', function (event) {
      if (event.key !== 'Enter' || event.isComposing) return;
      var target = event.target;
      if (event.ctrlKey || event.metaKey) {
        event.preventDefault();
        var sendButton = document.getElementById('compose-send');
        if (!sendButton.disabled) composeForm.requestSubmit(sendButton);
        return;
      }
      if (target.tagName !== 'INPUT' || ['submit', 'button', 'checkbox', 'file'].indexOf(target.type) >= 0) return;
      event.preventDefault();
      if (target.id === 'compose-subject') document.getElementById('compose-text').focus();
    });
    // Back from the next page (bfcache): the form is usable again.
    window.addEventListener('pageshow', function () {
      var send = document.getElementById('compose-send');
      if (send && send.textContent === 'Sending…') { send.disabled = false; send.textContent = 'Send'; }
    });
  }

  // Compose: what is typed is kept in this tab (sessionStorage) until the server reports the message taken
  // (a flash with data-sent-key), so a session that ended mid-compose, or a failed request, loses nothing:
  // after signing in again, the same form (new, or a reply to the same message) gets the text back.
  var DRAFT_KEY = 'postroom.compose-draft';
  var DRAFT_FIELDS = ['account', 'to', 'cc', 'bcc', 'subject', 'text'];
  var readDraft = function () {
    try { return JSON.parse(window.sessionStorage.getItem(DRAFT_KEY) || 'null'); } catch { return null; }
  };
  var dropDraft = function () {
    try { window.sessionStorage.removeItem(DRAFT_KEY); } catch { /* storage unavailable: nothing was kept */ }
  };
  document.querySelectorAll('[data-sent-key]').forEach(function (notice) {
    var kept = readDraft();
    if (kept && kept.sendKey === notice.getAttribute('data-sent-key')) dropDraft();
  });
  // Signing out ends the draft too (a shared computer).
  document.querySelectorAll('form[action="/logout"]').forEach(function (form) { form.addEventListener('submit', dropDraft); });
  // Someone else signed in in this tab (the session had ended): what the other user typed is not theirs to see,
  // on whichever page they open first (the tab's storage is readable with the browser's developer tools).
  var owner = document.body.getAttribute('data-user') || '';
  var keptInTab = readDraft();
  if (owner && keptInTab && keptInTab.owner !== owner) dropDraft();
  if (composeForm) {
    var elements = composeForm.elements;
    var context = elements.original.value + ':' + elements.action.value;
    var valuesNow = function () {
      var values = {};
      DRAFT_FIELDS.forEach(function (name) { if (elements[name]) values[name] = elements[name].value; });
      return values;
    };
    // `submitted`: Send was pressed for this text. Whether the server got it is unknown here (the session had ended,
    // or the page was left before the answer), so a restored form keeps that press's send key: pressing Send again
    // then sends it once, or answers with what the first press did (gateway/send/send-once.ts).
    var keepDraft = function (submitted) {
      var files = elements.attachments && elements.attachments.files ? Array.prototype.map.call(elements.attachments.files, function (file) { return file.name; }) : [];
      try {
        window.sessionStorage.setItem(DRAFT_KEY, JSON.stringify({ owner: owner, context: context, sendKey: elements.sendKey.value, submitted: submitted === true, values: valuesNow(), files: files }));
      } catch { /* storage full or disabled: the form still works */ }
    };
    var kept = readDraft();
    var shown = valuesNow();
    var freshKey = elements.sendKey.value;
    var pressed = false;
    var differs = kept && kept.context === context && kept.values && DRAFT_FIELDS.some(function (name) {
      return typeof kept.values[name] === 'string' && kept.values[name] !== shown[name];
    });
    if (differs) {
      DRAFT_FIELDS.forEach(function (name) {
        if (elements[name] && typeof kept.values[name] === 'string') elements[name].value = kept.values[name];
      });
      var notice = document.createElement('div');
      notice.className = 'flash info';
      notice.id = 'compose-restored';
      notice.setAttribute('role', 'status');
      if (kept.submitted && kept.sendKey) {
        elements.sendKey.value = kept.sendKey;
        pressed = true;
      }
      notice.textContent = (kept.submitted
        ? 'This is what you were sending. If it already went out, Send shows it instead of sending it twice.'
        : 'This is what you had typed before; it has not been sent.') +
        (kept.files && kept.files.length ? ' Attach again: ' + kept.files.join(', ') + '.' : '') + ' ';
      var discard = document.createElement('button');
      discard.type = 'button';
      discard.className = 'link-button';
      discard.id = 'compose-restored-discard';
      discard.textContent = 'Start over';
      discard.addEventListener('click', function () {
        DRAFT_FIELDS.forEach(function (name) { if (elements[name]) elements[name].value = shown[name]; });
        elements.sendKey.value = freshKey;
        pressed = false;
        dropDraft();
        notice.remove();
      });
      notice.appendChild(discard);
      composeForm.parentNode.insertBefore(notice, composeForm);
      keepDraft(pressed);
    }
    composeForm.addEventListener('input', function () { keepDraft(pressed); });
    composeForm.addEventListener('change', function () { keepDraft(pressed); });
    composeForm.addEventListener('submit', function () {
      pressed = true;
      keepDraft(true);
    });
  }

  // Selects marked data-autosubmit apply their filter at once (a Filter button remains for no-JS use).
  // From the keyboard, an arrow key on a closed select changes it at once: submitting then reloaded the page
  // at the first option passed, focus lost (WCAG 3.2.2). A choice made with the keyboard applies on Enter.
  document.querySelectorAll('select[data-autosubmit]').forEach(function (select) {
    var byKeyboard = false;
    select.addEventListener('keydown', function (event) {
      if (event.key === 'Enter') {
        event.preventDefault();
        select.form.submit();
      } else if (event.key !== 'Tab' && event.key !== 'Shift') {
        byKeyboard = true;
      }
    });
    select.addEventListener('mousedown', function () { byKeyboard = false; });
    select.addEventListener('change', function () { if (!byKeyboard) select.form.submit(); });
  });

  // Time zones: the server renders every time in the zone chosen under Profile (else the business's), and
  // cannot know the computer's. Where the two differ, say so and offer this computer's zone; nothing changes
  // until the person saves it.
  var browserZone = '';
  try { browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch { browserZone = ''; }
  // One zone has several names (Asia/Kolkata and Asia/Calcutta, Europe/Kyiv and Europe/Kiev), and the server's
  // time zone data and the browser's may prefer different ones: compare them as this browser spells them.
  function sameZone(a, b) {
    if (!a || !b) return false;
    try {
      var spell = function (zone) { return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone; };
      return spell(a) === spell(b);
    } catch {
      return a === b;
    }
  }
  document.querySelectorAll('[data-shown-zone]').forEach(function (note) {
    if (!browserZone || sameZone(browserZone, note.getAttribute('data-shown-zone'))) return;
    var hint = document.createElement('span');
    hint.className = 'browser-zone';
    hint.appendChild(document.createTextNode(' · this computer is set to ' + browserZone + ': '));
    var link = document.createElement('a');
    link.href = '/preferences/profile?timeZone=' + encodeURIComponent(browserZone) + '#timeZone';
    link.textContent = 'use it';
    hint.appendChild(link);
    note.appendChild(hint);
  });
  document.querySelectorAll('select[data-business-zone]').forEach(function (select) {
    // The list's own name for this computer's zone.
    var offered = Array.prototype.filter.call(select.options, function (option) { return option.value && sameZone(option.value, browserZone); })[0];
    var chosen = select.value || select.getAttribute('data-business-zone');
    if (!browserZone || !offered || sameZone(chosen, browserZone)) return;
    var zoneName = offered.value;
    var hint = document.createElement('p');
    hint.className = 'hint browser-zone';
    hint.id = 'browser-zone-hint';
    hint.appendChild(document.createTextNode('This computer is set to ' + zoneName + '. '));
    var use = document.createElement('button');
    use.type = 'button';
    use.className = 'link-button';
    use.textContent = 'Use ' + zoneName;
    use.addEventListener('click', function () {
      select.value = zoneName;
      hint.hidden = true;
      select.focus();
      announce(zoneName + ' chosen: save to keep it.');
    });
    hint.appendChild(use);
    select.parentNode.insertBefore(hint, select.nextSibling);
  });
})();
