// Portcullis console: "Explain a sample request" in the policy editor. The
// answer is shown with textContent only.
(function () {
  "use strict";
  function init() {
    var btn = document.getElementById("ex-run");
    if (!btn) return;
    var meta = document.querySelector('meta[name="csrf-token"]');
    var status = document.getElementById("ex-status");
    var out = document.getElementById("ex-out");
    btn.addEventListener("click", function () {
      var sample;
      try { sample = JSON.parse(document.getElementById("ex-request").value); }
      catch (e) { status.textContent = "The sample is not JSON: " + e.message; status.className = "status bad"; return; }
      var body = { file: document.getElementById("ed-file").value.trim(), content: document.getElementById("ed-content").value, request: sample };
      status.textContent = "Deciding…"; status.className = "status";
      fetch("/api/v1/policies/explain", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": meta ? meta.content : "" },
        body: JSON.stringify(body)
      }).then(function (r) { return r.json().then(function (j) { return { status: r.status, body: j }; }); })
        .then(function (res) {
          if (res.status !== 200) {
            var msg = res.body.error || String(res.status);
            if (res.body.problems && res.body.problems.length) msg += ": " + res.body.problems[0].text;
            status.textContent = msg; status.className = "status bad"; out.hidden = true; return;
          }
          status.textContent = res.body.type + " decision: " + res.body.action; status.className = "status ok";
          out.textContent = res.body.explain; out.hidden = false;
        })
        .catch(function (e) { status.textContent = "Explain failed: " + e.message; status.className = "status bad"; });
    });
  }
  document.addEventListener("DOMContentLoaded", init);
})();
