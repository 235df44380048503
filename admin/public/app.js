// Progressive enhancement only: every form works without this file.
// Served from 'self' so the strict CSP (script-src 'self') allows it.
(function () {
  'use strict';

  // Copy buttons: <button data-copy="text">. Hidden until JS runs, since they need it.
  document.querySelectorAll('[data-copy]').forEach(function (button) {
    button.hidden = false;
    button.addEventListener('click', function () {
      var text = button.getAttribute('data-copy');
      var done = function () {
        var label = button.textContent;
        button.textContent = 'Copied';
        setTimeout(function () { button.textContent = label; }, 1500);
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
      } else {
        fallbackCopy(text);
        done();
      }
    });
  });

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

  // IMAP and SMTP presets: choosing a service fills host, port and TLS (the server does the same when they are left blank).
  ['imap-service', 'smtp-service'].forEach(function (id) {
    var service = document.getElementById(id);
    if (!service || !service.form) return;
    var presets = {};
    try { presets = JSON.parse(service.getAttribute('data-presets') || '{}'); } catch { presets = {}; }
    service.addEventListener('change', function () {
      var preset = presets[service.value];
      if (!preset) return;
      service.form.elements.host.value = preset.host;
      service.form.elements.port.value = preset.port;
      service.form.elements.tls.value = preset.tls;
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
    // Back from the next page (bfcache): the form is usable again.
    window.addEventListener('pageshow', function () {
      var send = document.getElementById('compose-send');
      if (send && send.textContent === 'Sending…') { send.disabled = false; send.textContent = 'Send'; }
    });
  }

  // Selects marked data-autosubmit apply their filter at once (a Filter button remains for no-JS use).
  document.querySelectorAll('select[data-autosubmit]').forEach(function (select) {
    select.addEventListener('change', function () { select.form.submit(); });
  });
})();
