// The upload page: choose photos (previews and checks first), then create the job (the front door
// emails a 6-digit code), enter the code (which proves the address and brings the upload policies),
// send each photo straight to S3 with its presigned POST policy, and only then start the job (the
// front door checks the photos arrived and writes the manifest, last). Nothing here is trusted: the
// front door and S3 check again.
(function () {
  "use strict";
  var form = document.getElementById("upload");
  var base = form.dataset.base;
  var MIN = +form.dataset.min, MAX = +form.dataset.max, MAX_BYTES = +form.dataset.maxMb * 1024 * 1024;
  var TYPES = JSON.parse(form.dataset.types);  // content type -> the name endings it may have
  var PREVIEWABLE = ["image/jpeg", "image/png", "image/webp"];  // browsers cannot draw HEIC
  var input = document.getElementById("photos");
  var portraits = document.getElementById("portraits");
  var subjects = document.querySelectorAll('input[name="subject"]');
  function chosenSubject() {  // "man", "woman", or null: unset ("person")
    for (var i = 0; i < subjects.length; i++) if (subjects[i].checked && subjects[i].value) return subjects[i].value;
    return null;
  }
  var button = document.getElementById("submit"), bar = document.getElementById("progress");
  var text = document.getElementById("progress-text");
  var chosen = [];
  var job = null;     // POST /api/jobs: the proof ticket (a code was emailed)
  var proven = null;  // POST .../verify: upload policies, the start ticket, the status page
  var sent = {};      // photo name -> true once S3 took it

  // What a file is: its own type when the browser knows it, else its name's ending (browsers
  // other than Safari report HEIC photos with an empty type).
  function typeOf(f) {
    if (f.type) return TYPES[f.type] ? f.type : null;
    var name = f.name.toLowerCase();
    var found = null;
    Object.keys(TYPES).forEach(function (t) {
      if (!found && TYPES[t].some(function (end) { return name.slice(-end.length) === end; })) found = t;
    });
    return found;
  }

  function problems() {
    var out = [];
    if (chosen.length < MIN) out.push("Choose at least " + MIN + " photos (" + chosen.length + " so far).");
    if (chosen.length > MAX) out.push("Choose at most " + MAX + " photos (" + chosen.length + " chosen).");
    var names = {};
    chosen.forEach(function (f) {
      if (!typeOf(f)) out.push(f.name + " is not a JPEG, PNG, WebP or HEIC image.");
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
    list.forEach(function (t) { var li = document.createElement("li"); li.textContent = t; ul.appendChild(li); });
  }

  function render() {
    var ul = document.getElementById("previews");
    ul.textContent = "";
    chosen.forEach(function (file, i) {
      var li = document.createElement("li");
      var type = typeOf(file);
      if (!type || file.size > MAX_BYTES) li.className = "bad";
      var img = document.createElement("img");
      img.alt = file.name;
      if (PREVIEWABLE.indexOf(type) >= 0) img.src = URL.createObjectURL(file);
      var name = document.createElement("div");
      name.textContent = file.name;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Remove";
      remove.disabled = !!job;
      remove.addEventListener("click", function () { chosen.splice(i, 1); render(); });
      li.appendChild(img); li.appendChild(name); li.appendChild(remove);
      ul.appendChild(li);
    });
    portraits.disabled = !!job;  // like the photos, the formats are fixed once a code was sent for them
    for (var s = 0; s < subjects.length; s++) subjects[s].disabled = !!job;  // and so is the subject
    document.getElementById("count").textContent = chosen.length + " photo" + (chosen.length === 1 ? "" : "s") +
      " chosen (" + MIN + "-" + MAX + " needed).";
    show(chosen.length ? problems() : []);
  }

  input.addEventListener("change", function () {
    if (job) return;  // the photos are fixed once a code was sent for them
    Array.prototype.forEach.call(input.files, function (f) {
      if (!chosen.some(function (c) { return c.name === f.name && c.size === f.size; })) chosen.push(f);
    });
    input.value = "";
    render();
  });

  // The body's SHA-256: a CloudFront distribution signing for the function URL needs it.
  function sha256(body) {
    if (!(window.crypto && window.crypto.subtle && window.TextEncoder)) return Promise.resolve(null);
    return window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)).then(function (buf) {
      return Array.prototype.map.call(new Uint8Array(buf), function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    }).catch(function () { return null; });
  }

  function api(path, doc) {
    var body = JSON.stringify(doc);
    return sha256(body).then(function (hash) {
      var headers = { "Content-Type": "application/json" };
      if (hash) headers["x-amz-content-sha256"] = hash;
      return fetch(base + path, { method: "POST", headers: headers, body: body, credentials: "omit" });
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) {
          var err = new Error(data.message || ("The server answered " + r.status + "."));
          err.status = r.status; err.data = data;
          throw err;
        }
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
        if (xhr.status >= 200 && xhr.status < 300) { onProgress(file.size); sent[upload.name] = true; resolve(); }
        else reject(new Error(file.name + " was refused by storage (" + xhr.status + ")."));
      };
      xhr.onerror = function () { reject(new Error(file.name + " could not be sent; check your connection.")); };
      xhr.send(data);
    });
  }

  function uploadAndStart() {
    var byName = {};
    chosen.forEach(function (f) { byName[f.name] = f; });
    var todo = proven.uploads.filter(function (u) { return !sent[u.name]; });
    var total = todo.reduce(function (n, u) { return n + byName[u.name].size; }, 0), done = {};
    bar.hidden = false;
    function progress(i, loaded) {
      done[i] = loaded;
      var sum = Object.keys(done).reduce(function (n, k) { return n + done[k]; }, 0);
      bar.value = total ? sum / total : 1;
      text.textContent = "Uploading: " + Math.round(100 * bar.value) + "%";
    }
    var next = 0;
    function worker() {  // three uploads at a time; one that fails is resent on the next try
      if (next >= todo.length) return Promise.resolve();
      var i = next++, upload = todo[i];
      return post(upload, byName[upload.name], function (n) { progress(i, n); })
        .catch(function (err) { text.textContent = err.message; }).then(worker);
    }
    return Promise.all([worker(), worker(), worker()]).then(function () {
      text.textContent = "Starting your job...";
      return api("/api/jobs/" + proven.job_id + "/start", { ticket: proven.ticket });
    }).then(function () { window.location.assign(proven.status_url); });
  }

  function fail(err) {
    if (err.data && err.data.error === "too_few_photos") {
      (err.data.missing_files || []).forEach(function (n) { delete sent[n]; });
      button.textContent = "Send the missing photos and start";
    } else if (err.status === 403 || err.status === 410 || (err.data && err.data.error === "code_locked")) {
      job = null; proven = null; sent = {};  // the code or ticket is spent: a new code is needed
      document.getElementById("proof").hidden = true;
      button.textContent = "Upload and create my headshots";
      render();
    }
    show([err.message]);
    button.disabled = false;
    text.textContent = "";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (proven) {  // a retry: resend what did not arrive, then start
      button.disabled = true; show([]);
      uploadAndStart().catch(fail);
      return;
    }
    if (job) {  // the code from the email
      var code = document.getElementById("code").value.replace(/\s+/g, "");
      if (!/^[0-9]{6}$/.test(code)) { show(["Enter the 6-digit code from the email we sent you."]); return; }
      button.disabled = true; show([]);
      api("/api/jobs/" + job.job_id + "/verify", { ticket: job.ticket, code: code })
        .then(function (data) { proven = data; return uploadAndStart(); })
        .catch(fail);
      return;
    }
    var list = problems();
    var name = document.getElementById("name").value.trim();
    var email = document.getElementById("email").value.trim();
    if (!name) list.push("Tell us your first name.");
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) list.push("Enter the email address we should send your headshots to.");
    show(list);
    if (list.length) return;
    button.disabled = true;
    api("/api/jobs", { email: email, name: name,
                       photos: chosen.map(function (f) { return { name: f.name, type: typeOf(f), size: f.size }; }),
                       formats: portraits.checked ? ["square", "portrait"] : ["square"],
                       subject: chosenSubject() })
      .then(function (data) {
        job = data;
        render();
        document.getElementById("proof").hidden = false;
        document.getElementById("code").focus();
        button.textContent = "Confirm the code and upload";
        button.disabled = false;
      })
      .catch(fail);
  });
  render();
})();
