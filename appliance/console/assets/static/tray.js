// Portcullis console: the pending-changes tray's client side — the count
// in the header, the countdown of a change waiting for confirmation (on
// every page, so an admin who navigated away still sees it), and the
// editor's "Add to pending changes". Text is set with textContent only.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.content : "";

  function api(method, url, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    return fetch(url, opts).then(function (r) {
      return r.json().then(function (j) { return { status: r.status, body: j }; });
    });
  }

  var deadline = null, reloading = false;
  function tick() {
    if (!deadline) return;
    var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    var cd = document.getElementById("countdown");
    if (cd) cd.textContent = String(left);
    var bc = document.getElementById("banner-countdown");
    if (bc) bc.textContent = String(left);
    if (left === 0 && !reloading) {
      // The server reverts at the deadline; show the outcome.
      reloading = true;
      setTimeout(function () { window.location.reload(); }, 1500);
    }
  }

  function showTray(t) {
    var count = document.getElementById("tray-count");
    if (count) count.textContent = t.changes && t.changes.length ? String(t.changes.length) : "";
    var banner = document.getElementById("savepoint-banner");
    if (!t.savepoint) { if (banner) banner.hidden = true; deadline = null; return; }
    deadline = Date.parse(t.savepoint.deadline);
    if (banner && !document.getElementById("countdown")) {
      banner.replaceChildren();
      banner.appendChild(document.createTextNode("A change that could lock admins out was applied (" + t.savepoint.summary + "). It is reverted in "));
      var s = document.createElement("strong");
      s.id = "banner-countdown";
      banner.appendChild(s);
      banner.appendChild(document.createTextNode(" s unless it is confirmed. "));
      var a = document.createElement("a");
      a.href = "/changes";
      a.textContent = "Review and confirm";
      banner.appendChild(a);
      banner.hidden = false;
    }
    tick();
  }

  function poll() {
    if (!csrf) return;
    api("GET", "/api/v1/tray").then(function (res) { if (res.status === 200) showTray(res.body); }).catch(function () {});
  }

  function initStage() {
    var btn = document.getElementById("ed-stage");
    var form = document.getElementById("policy-editor");
    if (!btn || !form) return;
    var status = document.getElementById("ed-status");
    var problems = document.getElementById("ed-problems");
    btn.addEventListener("click", function () {
      var file = document.getElementById("ed-file");
      var note = document.getElementById("ed-summary");
      var body = { kind: "policy_file", file: file.value.trim(), content: document.getElementById("ed-content").value,
        base_sha256: form.dataset.sha || "", note: note ? note.value : "" };
      status.textContent = "Adding to pending changes…";
      btn.disabled = true;
      api("POST", "/api/v1/tray/changes", body).then(function (res) {
        btn.disabled = false;
        if (res.status === 422) {
          problems.replaceChildren();
          (res.body.problems || []).forEach(function (p) { var li = document.createElement("li"); li.textContent = p.text; problems.appendChild(li); });
          status.textContent = "Not staged: the policies do not validate.";
          status.className = "status bad";
          return;
        }
        if (res.status !== 201) { status.textContent = "Not staged: " + (res.body.error || res.status); status.className = "status bad"; return; }
        status.textContent = "Added to pending changes as change " + res.body.id + ". Review and apply it under Changes.";
        status.className = "status ok";
        poll();
      }).catch(function (e) { btn.disabled = false; status.textContent = "Not staged: " + e.message; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var cd = document.getElementById("countdown");
    if (cd && cd.dataset.deadline) deadline = Date.parse(cd.dataset.deadline);
    initStage();
    poll();
    setInterval(tick, 1000);
    setInterval(poll, 10000);
  });
})();
