// Portcullis console: the small client-side layer. Everything it shows is
// set with textContent, never parsed as HTML, so no value from traffic or
// from a policy file can become markup here.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.content : "";

  // htmx requests carry the session's CSRF token.
  document.addEventListener("htmx:configRequest", function (e) {
    if (csrf) e.detail.headers["X-CSRF-Token"] = csrf;
  });

  function api(method, url, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    return fetch(url, opts).then(function (r) {
      if (r.status === 401) { window.location.assign("/login"); throw new Error("logged out"); }
      return r.json().then(function (j) { return { status: r.status, body: j }; });
    });
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  // --- Event drawer --------------------------------------------------------
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail.target && e.detail.target.id === "drawer") {
      var p = document.getElementById("drawer-panel");
      if (p) p.focus();
    }
  });
  function closeDrawer() {
    var d = document.getElementById("drawer");
    if (d && d.firstChild) { d.replaceChildren(); }
  }
  document.addEventListener("click", function (e) {
    if (e.target.closest && e.target.closest("[data-close-drawer]")) closeDrawer();
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") closeDrawer();
  });

  // --- Charts ----------------------------------------------------------------
  var palette = {
    allow: "#1b7f3b", monitor: "#b07800", protect: "#5b3fa3", require_step_up: "#0b6a8a",
    block: "#b3261e", bypass: "#5f6b76", transparent: "#1f4e79", suffix: "#c2571a", none: "#9aa4ae"
  };
  var fallback = ["#1f4e79", "#c2571a", "#1b7f3b", "#5b3fa3", "#b3261e", "#0b6a8a"];

  function chartData(d, kind) {
    var series = d[kind] || {};
    var keys = Object.keys(series).sort();
    var data = [d.times];
    keys.forEach(function (k) { data.push(series[k]); });
    return { keys: keys, data: data };
  }

  function makeChart(node, d) {
    var cd = chartData(d, node.dataset.kind);
    var series = [{}];
    cd.keys.forEach(function (k, i) {
      series.push({ label: k, stroke: palette[k] || fallback[i % fallback.length], width: 2, points: { show: false } });
    });
    if (cd.keys.length === 0) {
      node.replaceChildren(el("p", "No traffic in this range yet.", "hint"));
      node.chart = null;
      node.keys = "";
      return;
    }
    node.replaceChildren();
    var opts = {
      width: Math.max(280, node.clientWidth), height: 240, series: series,
      axes: [{}, { size: 50 }], legend: { live: false }, cursor: { drag: { x: false, y: false } }
    };
    node.chart = new uPlot(opts, cd.data, node);
    node.keys = cd.keys.join(",");
  }

  function refreshCharts(nodes) {
    if (!nodes.length) return;
    var range = nodes[0].dataset.range || "24h";
    api("GET", "/api/v1/dashboard?range=" + encodeURIComponent(range)).then(function (res) {
      if (res.status !== 200) return;
      nodes.forEach(function (n) {
        var cd = chartData(res.body, n.dataset.kind);
        if (n.chart && n.keys === cd.keys.join(",")) n.chart.setData(cd.data);
        else { if (n.chart) n.chart.destroy(); makeChart(n, res.body); }
        n.dataset.total = String(res.body.total);
      });
    }).catch(function () {});
  }

  function initCharts() {
    var nodes = Array.prototype.slice.call(document.querySelectorAll(".chart[data-kind]"));
    if (!nodes.length || typeof uPlot === "undefined") return;
    refreshCharts(nodes);
    setInterval(function () { if (!document.hidden) refreshCharts(nodes); }, 5000);
    window.addEventListener("resize", function () {
      nodes.forEach(function (n) { if (n.chart) n.chart.setSize({ width: Math.max(280, n.clientWidth), height: 240 }); });
    });
  }

  // --- Policy editor ---------------------------------------------------------
  function initEditor() {
    var form = document.getElementById("policy-editor");
    if (!form) return;
    var file = document.getElementById("ed-file");
    var content = document.getElementById("ed-content");
    var status = document.getElementById("ed-status");
    var problems = document.getElementById("ed-problems");
    var save = document.getElementById("ed-save");
    var dry = document.getElementById("ed-dryrun");
    var timer = null;
    var seq = 0;
    form.addEventListener("submit", function (e) { e.preventDefault(); });

    function setStatus(text, cls) {
      status.textContent = text;
      status.className = "status " + (cls || "");
    }
    function showProblems(list) {
      problems.replaceChildren();
      (list || []).forEach(function (p) { problems.appendChild(el("li", p.text)); });
    }
    function input() {
      return { file: file.value.trim(), content: content.value, base_sha256: form.dataset.sha || "" };
    }
    function validate() {
      var mine = ++seq;
      if (!file.checkValidity()) { setStatus("Enter a file name ending in .yaml.", "bad"); return; }
      setStatus("Validating…");
      api("POST", "/api/v1/policies/validate", input()).then(function (res) {
        if (mine !== seq) return;
        if (res.status !== 200) { setStatus(res.body.error || "Validation failed.", "bad"); return; }
        showProblems(res.body.problems);
        if (res.body.valid) setStatus("Valid: " + res.body.access_policies + " access and " + res.body.session_policies + " session policies in the directory.", "ok");
        else setStatus(res.body.problems.length + " problem(s).", "bad");
      }).catch(function (e) { setStatus("Validation failed: " + e.message, "bad"); });
    }
    function schedule() { clearTimeout(timer); timer = setTimeout(validate, 350); }
    content.addEventListener("input", schedule);
    file.addEventListener("input", schedule);
    // Tab indents in the editor; Escape then Tab leaves it (keyboard users).
    var escaped = false;
    content.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { escaped = true; return; }
      if (e.key === "Tab" && !e.shiftKey && !escaped && form.dataset.readonly !== "true") {
        e.preventDefault();
        var s = content.selectionStart;
        content.setRangeText("  ", s, content.selectionEnd, "end");
        schedule();
      }
      escaped = false;
    });

    dry.addEventListener("click", function () {
      var body = input();
      body.events = parseInt(document.getElementById("ed-events").value, 10);
      setStatus("Replaying recent events…");
      dry.disabled = true;
      api("POST", "/api/v1/policies/dry-run", body).then(function (res) {
        dry.disabled = false;
        if (res.status === 422) { showProblems(res.body.problems); setStatus("Fix the problems before a dry run.", "bad"); return; }
        if (res.status !== 200) { setStatus(res.body.error || "Dry run failed.", "bad"); return; }
        setStatus("Dry run done.", "ok");
        showDryRun(res.body);
      }).catch(function (e) { dry.disabled = false; setStatus("Dry run failed: " + e.message, "bad"); });
    });

    if (save) save.addEventListener("click", function () {
      var body = input();
      var note = document.getElementById("ed-summary");
      body.summary = note ? note.value : "";
      setStatus("Saving…");
      save.disabled = true;
      api("PUT", "/api/v1/policies/files/" + encodeURIComponent(body.file), body).then(function (res) {
        save.disabled = false;
        if (res.status === 422) { showProblems(res.body.problems); setStatus("Not saved: the policies do not validate.", "bad"); return; }
        if (res.status !== 200) { setStatus("Not saved: " + (res.body.error || res.status), "bad"); return; }
        form.dataset.sha = res.body.sha256;
        file.readOnly = true;
        var msg = "Saved as revision " + res.body.revision.id + (res.body.reloaded ? " and applied" : "") + ": " + res.body.revision.summary;
        if (res.body.savepoint) msg += ". It could lock admins out: confirm it under Changes within " + Math.round(res.body.savepoint.remaining_seconds) + " s or it is reverted.";
        setStatus(msg, res.body.savepoint ? "bad" : "ok");
        if (window.history && window.location.search.indexOf("file=") < 0) {
          window.history.replaceState(null, "", "/policies/edit?file=" + encodeURIComponent(body.file));
        }
      }).catch(function (e) { save.disabled = false; setStatus("Not saved: " + e.message, "bad"); });
    });
    validate();
  }

  function showDryRun(r) {
    var sec = document.getElementById("dry-result");
    sec.hidden = false;
    var summary = r.events + " recent events replayed in " + r.took_ms.toFixed(1) + " ms: " + r.changed + " decision(s) change.";
    if (r.undecided) summary += " " + r.undecided + " depend on content or scans the events do not record.";
    document.getElementById("dr-summary").textContent = summary;
    var tb = document.querySelector("#dr-trans tbody");
    tb.replaceChildren();
    (r.transitions || []).forEach(function (t) {
      var tr = el("tr");
      tr.appendChild(el("td", t.from)); tr.appendChild(el("td", t.to)); tr.appendChild(el("td", t.count, "num"));
      tb.appendChild(tr);
    });
    if (!(r.transitions || []).length) { var tr0 = el("tr"); var td0 = el("td", "No decision changes."); td0.colSpan = 3; tr0.appendChild(td0); tb.appendChild(tr0); }
    var sb = document.querySelector("#dr-samples tbody");
    sb.replaceChildren();
    (r.samples || []).forEach(function (s) {
      var tr = el("tr");
      tr.appendChild(el("td", s.event.time.replace("T", " ").slice(0, 19), "nowrap"));
      tr.appendChild(el("td", s.event.user || "—", "cell"));
      tr.appendChild(el("td", s.event.method + " " + s.event.host + s.event.path, "cell wide"));
      tr.appendChild(el("td", s.recorded));
      tr.appendChild(el("td", s.before));
      var after = el("td");
      after.appendChild(el("strong", s.after));
      if (s.missing && s.missing.length) after.appendChild(el("div", "needs: " + s.missing.join(", "), "hint"));
      var det = el("details");
      det.appendChild(el("summary", "Why"));
      det.appendChild(el("pre", s.explain));
      after.appendChild(det);
      tr.appendChild(after);
      sb.appendChild(tr);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initCharts();
    initEditor();
  });
})();
