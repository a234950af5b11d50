// Portcullis console: the activity page's live tail. New events of the
// current search are fetched as JSON every few seconds and added on top of
// the table; every value is set with textContent or as a URL parameter,
// never parsed as HTML.
(function () {
  "use strict";
  var every = 3000;

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function clip(s, n) {
    s = String(s || "");
    return s.length > n ? s.slice(0, n) + "…" : s;
  }
  var actions = ["allow", "monitor", "protect", "require_step_up", "block", "bypass"];

  function init() {
    var btn = document.getElementById("live-toggle");
    var body = document.getElementById("events-body");
    if (!btn || !body) return;
    var status = document.getElementById("live-status");
    var query = btn.dataset.query || "";
    var newest = body.dataset.newest || "";
    var seen = {};
    Array.prototype.forEach.call(body.querySelectorAll("tr[data-seq]"), function (tr) { seen[tr.dataset.seq] = true; });
    var timer = null;
    var busy = false;

    function link(key, value) {
      var p = new URLSearchParams(query);
      p.delete("after");
      p.set(key, value);
      return "/activity?" + p.toString();
    }
    function cellLink(value, key, n) {
      var td = el("td", null, "cell");
      if (!value) { td.appendChild(el("span", "—", "none")); return td; }
      var a = el("a", clip(value, n));
      a.href = link(key, value);
      td.appendChild(a);
      return td;
    }
    function row(e) {
      var tr = el("tr", null, "new");
      tr.dataset.seq = String(e.seq);
      tr.appendChild(el("td", e.time.replace("T", " ").slice(0, 19), "nowrap"));
      var act = el("td");
      var badge = el("a", clip(e.action, 20), "badge " + (actions.indexOf(e.action) >= 0 ? "act-" + e.action : "act-other"));
      badge.href = link("action", e.action);
      act.appendChild(badge);
      tr.appendChild(act);
      tr.appendChild(cellLink(e.user, "user", 32));
      tr.appendChild(cellLink(e.app, "app", 24));
      var activity = el("td", null, "cell");
      if (e.activity) { var aa = el("a", clip(e.activity, 24)); aa.href = link("activity", e.activity); activity.appendChild(aa); }
      tr.appendChild(activity);
      var hp = el("td", null, "cell wide");
      hp.appendChild(el("span", clip(e.method, 8), "method"));
      hp.appendChild(document.createTextNode(" " + clip(e.host, 60)));
      hp.appendChild(el("span", clip(e.path, 80), "path"));
      tr.appendChild(hp);
      var file = el("td", null, "cell");
      if (e.file_name) { var fa = el("a", clip(e.file_name, 40)); fa.href = link("q", e.file_name); file.appendChild(fa); }
      tr.appendChild(file);
      var pol = el("td", null, "cell");
      (e.policies || []).forEach(function (p) { var pa = el("a", clip(p, 32)); pa.href = link("policy", p); pol.appendChild(pa); pol.appendChild(document.createTextNode(" ")); });
      tr.appendChild(pol);
      var det = el("td");
      var b = el("button", "Details", "small");
      b.type = "button";
      var drawerURL = "/activity/event?ts=" + encodeURIComponent(e.ts) + "&seq=" + encodeURIComponent(e.seq);
      b.addEventListener("click", function () {
        if (window.htmx) window.htmx.ajax("GET", drawerURL, { target: "#drawer", swap: "innerHTML" });
      });
      b.setAttribute("aria-controls", "drawer");
      b.setAttribute("aria-label", "Details of event " + e.seq);
      det.appendChild(b);
      tr.appendChild(det);
      return tr;
    }

    function poll() {
      if (busy || document.hidden) return;
      busy = true;
      var p = new URLSearchParams(query);
      if (newest) p.set("newest", newest);
      fetch("/api/v1/events/tail?" + p.toString(), { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) {
          if (r.status === 401) { window.location.assign("/login"); throw new Error("logged out"); }
          return r.json().then(function (j) { return { status: r.status, body: j }; });
        })
        .then(function (res) {
          busy = false;
          if (res.status !== 200) { status.textContent = "Live tail stopped: " + (res.body.error || res.status); stop(); return; }
          newest = res.body.newest;
          var added = 0;
          // Newest first from the server: insert oldest first so the newest ends on top.
          var list = res.body.events || [];
          for (var i = list.length - 1; i >= 0; i--) {
            var e = list[i];
            if (seen[e.seq]) continue;
            seen[e.seq] = true;
            var tr = row(e);
            body.insertBefore(tr, body.firstChild);
            added++;
          }
          var empty = body.querySelector("td[colspan]");
          if (added && empty) empty.parentNode.remove();
          status.textContent = "Live: " + added + " new at " + new Date().toLocaleTimeString() + (res.body.more ? " (more arrived than shown: reload)" : "");
        })
        .catch(function (err) { busy = false; status.textContent = "Live tail error: " + err.message; });
    }
    function start() {
      btn.setAttribute("aria-pressed", "true");
      btn.textContent = "Pause live tail";
      status.textContent = "Live: waiting for events…";
      poll();
      timer = setInterval(poll, every);
    }
    function stop() {
      btn.setAttribute("aria-pressed", "false");
      btn.textContent = "Live tail";
      clearInterval(timer);
      timer = null;
    }
    btn.addEventListener("click", function () {
      if (timer) { stop(); status.textContent = "Paused."; } else start();
    });
  }
  document.addEventListener("DOMContentLoaded", init);
})();
