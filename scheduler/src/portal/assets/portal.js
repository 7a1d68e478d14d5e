// Berth portal: the only script, served from the binary (CSP: no inline code).
// It follows a job's log: every second it asks the portal for what was written since
// the last cursors, appends it, and when the job has ended shows the page again with
// its final details (exit code, charge).
(function () {
  "use strict";
  var log = document.getElementById("log");
  if (!log || log.dataset.live !== "1") {
    return;
  }
  var cursors = log.dataset.cursors || "";
  var src = log.dataset.src;
  var state = document.getElementById("job-state");
  var reason = document.getElementById("job-reason");
  function poll() {
    fetch(src + "?c=" + encodeURIComponent(cursors), {
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    })
      .then(function (r) {
        if (!r.ok) { throw new Error(String(r.status)); }
        return r.json();
      })
      .then(function (p) {
        var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        if (p.text) {
          log.appendChild(document.createTextNode(p.text));
          if (atEnd) { log.scrollTop = log.scrollHeight; }
        }
        cursors = p.cursors.join(",");
        if (state) { state.textContent = p.state; }
        if (reason) { reason.textContent = p.reason; }
        if (!p.done || p.text) {
          setTimeout(poll, 1000);
        } else {
          window.location.reload();
        }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1000);
})();
