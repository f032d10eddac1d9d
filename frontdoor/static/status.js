// The status page: the job's token is in the URL fragment (never sent to any server, so never
// in a log or a Referer); it goes to the front door only as a bearer token when polling.
(function () {
  "use strict";
  var el = document.getElementById("state");
  var job = el.dataset.job, base = el.dataset.base, token = window.location.hash.slice(1);
  var delay = 2000;

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

  function poll() {
    fetch(base + "/api/jobs/" + encodeURIComponent(job) + "/status",
          { headers: { "Authorization": "Bearer " + token }, credentials: "omit", cache: "no-store" })
      .then(function (r) { return r.json().then(function (d) { return { ok: r.ok, data: d }; }); })
      .then(function (r) {
        if (!r.ok) { set("headline", "We cannot show this job"); set("detail", r.data.message || ""); return; }
        render(r.data);
        if (!r.data.terminal) { delay = Math.min(10000, delay * 1.1); setTimeout(poll, delay); }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }

  if (!token) { set("headline", "This status link is incomplete"); set("detail", "Use the full link, including the part after #."); }
  else poll();
})();
