// The upload page: choose photos (previews and checks first), then create the job, send each
// photo straight to S3 with its presigned POST policy, and only then start the job (the front
// door writes the manifest, last). Nothing here is trusted: the front door and S3 check again.
(function () {
  "use strict";
  var form = document.getElementById("upload");
  var base = form.dataset.base;
  var MIN = +form.dataset.min, MAX = +form.dataset.max, MAX_BYTES = +form.dataset.maxMb * 1024 * 1024;
  var ACCEPT = form.dataset.accept.split(",");
  var input = document.getElementById("photos");
  var chosen = [];

  function problems() {
    var out = [];
    if (chosen.length < MIN) out.push("Choose at least " + MIN + " photos (" + chosen.length + " so far).");
    if (chosen.length > MAX) out.push("Choose at most " + MAX + " photos (" + chosen.length + " chosen).");
    var names = {};
    chosen.forEach(function (f) {
      if (ACCEPT.indexOf(f.type) < 0) out.push(f.name + " is not a JPEG, PNG or WebP image.");
      else if (f.size > MAX_BYTES) out.push(f.name + " is over " + form.dataset.maxMb + " MB.");
      else if (f.size === 0) out.push(f.name + " is empty.");
      if (names[f.name]) out.push("Two photos are called " + f.name + "; rename one.");
      names[f.name] = true;
    });
    return out;
  }

  function show(list) {
    var ul = document.getElementById("problems");
    ul.textContent = "";
    list.forEach(function (text) { var li = document.createElement("li"); li.textContent = text; ul.appendChild(li); });
  }

  function render() {
    var ul = document.getElementById("previews");
    ul.textContent = "";
    chosen.forEach(function (file, i) {
      var li = document.createElement("li");
      if (ACCEPT.indexOf(file.type) < 0 || file.size > MAX_BYTES) li.className = "bad";
      var img = document.createElement("img");
      img.alt = file.name;
      if (ACCEPT.indexOf(file.type) >= 0) img.src = URL.createObjectURL(file);
      var name = document.createElement("div");
      name.textContent = file.name;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Remove";
      remove.addEventListener("click", function () { chosen.splice(i, 1); render(); });
      li.appendChild(img); li.appendChild(name); li.appendChild(remove);
      ul.appendChild(li);
    });
    document.getElementById("count").textContent = chosen.length + " photo" + (chosen.length === 1 ? "" : "s") +
      " chosen (" + MIN + "-" + MAX + " needed).";
    show(chosen.length ? problems() : []);
  }

  input.addEventListener("change", function () {
    Array.prototype.forEach.call(input.files, function (f) {
      if (!chosen.some(function (c) { return c.name === f.name && c.size === f.size; })) chosen.push(f);
    });
    input.value = "";
    render();
  });

  function api(path, body) {
    return fetch(base + path, { method: "POST", headers: { "Content-Type": "application/json" },
                                body: JSON.stringify(body), credentials: "omit" })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (!r.ok) throw new Error(data.message || ("The server answered " + r.status + "."));
          return data;
        });
      });
  }

  function post(upload, file, onProgress) {  // XHR: fetch reports no upload progress
    return new Promise(function (resolve, reject) {
      var data = new FormData();
      Object.keys(upload.fields).forEach(function (k) { data.append(k, upload.fields[k]); });
      data.append("file", file);  // S3 ignores every field after the file
      var xhr = new XMLHttpRequest();
      xhr.open("POST", upload.url);
      xhr.upload.onprogress = function (e) { onProgress(e.loaded); };
      xhr.onload = function () {
        if (xhr.status >= 200 && xhr.status < 300) { onProgress(file.size); resolve(); }
        else reject(new Error(file.name + " was refused by storage (" + xhr.status + ")."));
      };
      xhr.onerror = function () { reject(new Error(file.name + " could not be sent; check your connection.")); };
      xhr.send(data);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var list = problems();
    var name = document.getElementById("name").value.trim();
    var email = document.getElementById("email").value.trim();
    if (!name) list.push("Tell us your first name.");
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) list.push("Enter the email address we should send your headshots to.");
    show(list);
    if (list.length) return;
    var button = document.getElementById("submit"), bar = document.getElementById("progress");
    var text = document.getElementById("progress-text");
    button.disabled = true; bar.hidden = false;
    var total = chosen.reduce(function (n, f) { return n + f.size; }, 0), sent = {};
    function progress(i, loaded) {
      sent[i] = loaded;
      var done = Object.keys(sent).reduce(function (n, k) { return n + sent[k]; }, 0);
      bar.value = total ? done / total : 0;
      text.textContent = "Uploading: " + Math.round(100 * bar.value) + "%";
    }
    var byName = {};
    chosen.forEach(function (f) { byName[f.name] = f; });
    api("/api/jobs", { email: email, name: name,
                       photos: chosen.map(function (f) { return { name: f.name, type: f.type, size: f.size }; }) })
      .then(function (job) {
        var next = 0;
        function worker() {  // three uploads at a time
          if (next >= job.uploads.length) return Promise.resolve();
          var i = next++, upload = job.uploads[i];
          return post(upload, byName[upload.name], function (n) { progress(i, n); }).then(worker);
        }
        return Promise.all([worker(), worker(), worker()]).then(function () {
          text.textContent = "Starting your job...";
          return api("/api/jobs/" + job.job_id + "/start", { ticket: job.ticket });
        }).then(function () { window.location.assign(job.status_url); });
      })
      .catch(function (err) { show([err.message]); button.disabled = false; text.textContent = ""; });
  });
  render();
})();
