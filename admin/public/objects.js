// Objects pages: progressive enhancement only (the paste form works without it).
// Served from 'self' so the strict CSP (script-src 'self') allows it.
(function () {
  'use strict';

  // CSV upload: send the chosen file as text/csv with the CSRF token in a header,
  // so files larger than the console's form limit can be previewed.
  var form = document.getElementById('csv-upload');
  if (form) {
    form.hidden = false;
    var error = document.getElementById('csv-upload-error');
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var file = form.elements.file.files[0];
      error.textContent = '';
      if (!file) { error.textContent = 'Choose a CSV file first.'; return; }
      var max = Number(form.getAttribute('data-max-bytes'));
      if (max && file.size > max) { error.textContent = 'The file is larger than ' + Math.round(max / 1048576) + ' MB; split it.'; return; }
      var params = new URLSearchParams({ filename: file.name, type: form.elements.type.value });
      var button = form.querySelector('button[type=submit]');
      button.disabled = true;
      // The file's bytes as they are: the server works out their encoding (file.text() would force UTF-8).
      fetch('/objects/import?' + params.toString(), {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'text/csv', 'X-CSRF-Token': form.elements._csrf.value },
        body: file,
      }).then(function (response) {
        // JSON: where the preview is, or what is wrong with the file.
        return response.json().catch(function () { return null; }).then(function (answer) {
          if (response.ok && answer && answer.location) { window.location.assign(answer.location); return; }
          error.textContent = answer && answer.error ? answer.error.message : 'Upload failed (HTTP ' + response.status + '). Reload the page and try again.';
          button.disabled = false;
        });
      }).catch(function () {
        error.textContent = 'Upload failed: the server could not be reached.';
        button.disabled = false;
      });
    });
  }

  // Import: one press is enough (the server imports an upload once); say that it is under way.
  document.querySelectorAll('form[data-busy-text]').forEach(function (busyForm) {
    var button = busyForm.querySelector('button[type=submit]');
    var label = button.textContent;
    busyForm.addEventListener('submit', function () {
      // After the submission has started, so the button's own press still counts.
      setTimeout(function () { button.disabled = true; button.textContent = busyForm.getAttribute('data-busy-text'); }, 0);
    });
    // Back from the next page (bfcache): the form is usable again.
    window.addEventListener('pageshow', function () { button.disabled = false; button.textContent = label; });
  });

  // Pages with running background jobs refresh themselves until the jobs are done.
  var refreshing = document.querySelector('[data-refresh]');
  if (refreshing) {
    var seconds = Number(refreshing.getAttribute('data-refresh')) || 3;
    setTimeout(function () { window.location.reload(); }, seconds * 1000);
  }
})();
