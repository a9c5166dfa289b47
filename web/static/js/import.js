/* Poll the import job and move the progress bar until it is done. */
(function () {
  var box = document.getElementById('import-status');
  if (!box || box.dataset.state !== 'running') { return; }
  var bar = document.getElementById('import-bar');
  var text = document.getElementById('import-text');
  function poll() {
    fetch(box.dataset.url, { credentials: 'same-origin' })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        bar.max = s.total || 1; bar.value = s.done;
        if (s.state === 'running') {
          text.textContent = text.dataset.running + ' ' + s.done + ' / ' + s.total;
          setTimeout(poll, 500);
        } else if (s.state === 'done') {
          text.textContent = text.dataset.done + ' ' + s.done + ' / ' + s.total;
          box.dataset.state = 'done';
        } else {
          text.textContent = text.dataset.failed + (s.message || '');
          box.dataset.state = 'failed';
        }
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
