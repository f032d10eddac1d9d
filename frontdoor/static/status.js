// The status page: the job's token is in the URL fragment (never sent to any server, so never
// in a log or a Referer); it goes to the front door only as a bearer token when polling.
// Polling survives errors: a failed poll (network, 5xx, 429) is retried with a growing pause;
// only a refused or expired token (403, 410) ends it, because no retry can change those.
(function () {
  "use strict";
  var el = document.getElementById("state");
  var job = el.dataset.job, base = el.dataset.base, token = window.location.hash.slice(1);
  var delay = 2000, failures = 0;
  var MAX_DELAY = 10000, MAX_ERROR_DELAY = 60000;

  function set(id, text) { document.getElementById(id).textContent = text; }

  function render(s) {
    set("headline", s.headline);
    set("detail", s.detail + (s.step ? " (" + s.step.stage + ": " + s.step.step + " of " + s.step.total + ")" : ""));
    document.getElementById("bar").value = s.progress;
    el.textContent = s.state;
    if (s.rejected) {
      document.getElementById("rejected").hidden = false;
      set("rejected-intro", (s.problem ? s.problem + " " : "") + "Replace these photos and upload again:");
      var ul = document.getElementById("rejected-list");
      ul.textContent = "";
      s.rejected.forEach(function (p) {
        var li = document.createElement("li");
        li.textContent = p.file + ": " + p.advice;
        ul.appendChild(li);
      });
    }
    if (s.gallery_url) {
      document.getElementById("gallery").hidden = false;
      document.getElementById("gallery-link").href = s.gallery_url;
    }
  }

  function retry(message) {
    failures += 1;
    var wait = Math.min(MAX_ERROR_DELAY, 2000 * Math.pow(2, failures));
    set("notice", message + " Trying again in " + Math.round(wait / 1000) + " s.");
    setTimeout(poll, wait);
  }

  function poll() {
    fetch(base + "/api/jobs/" + encodeURIComponent(job) + "/status",
          { headers: { "Authorization": "Bearer " + token }, credentials: "omit", cache: "no-store" })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (d) { return { status: r.status, data: d }; });
      })
      .then(function (r) {
        if (r.status === 403 || r.status === 410) {
          set("headline", "We cannot show this job"); set("detail", r.data.message || ""); set("notice", "");
          return;
        }
        if (r.status !== 200) { retry(r.data.message || "We could not reach your job just now."); return; }
        failures = 0;
        set("notice", "");
        render(r.data);
        if (!r.data.terminal) { delay = Math.min(MAX_DELAY, delay * 1.1); setTimeout(poll, delay); }
      })
      .catch(function () { retry("We could not reach your job just now."); });
  }

  if (!token) { set("headline", "This status link is incomplete"); set("detail", "Use the full link, including the part after #."); }
  else poll();
})();
