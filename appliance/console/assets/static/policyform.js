// Portcullis console: the policy form beside the YAML editor. The server
// writes the YAML (POST /api/v1/policies/form/render) with the policy
// package's own types; the preview is set with textContent only.
(function () {
  "use strict";
  var FILTERS = ["apps", "users", "groups", "device_tags", "client_apps", "user_agent_tags", "ip_ranges", "ip_tags"];
  var ENUMS = {
    action: ["", "allow", "monitor", "protect", "require_step_up", "block"],
    severity: ["", "low", "medium", "high"],
    control: ["", "monitor", "block_activities", "download", "upload"],
    "files.label": ["any", "present", "absent"],
    "content.match": ["any", "all"],
    "protect.unsupported": ["", "block", "allow"]
  };
  // [path, label, type, session only]
  var FIELDS = [["id", "Id", "text"], ["name", "Name", "text"], ["description", "Description", "text"], ["disabled", "Disabled", "bool"],
    ["action", "Action", "enum"], ["message", "Message", "text"], ["severity", "Severity", "enum"], ["alert", "Alert", "bool"],
    ["control", "Control", "enum", true], ["activities", "Activities", "names", true],
    ["files.names", "File names", "names", true], ["files.extensions", "File extensions", "names", true],
    ["files.mime_types", "MIME types", "names", true], ["files.min_size", "Min size", "text", true], ["files.max_size", "Max size", "text", true],
    ["files.label", "Label state", "enum", true], ["files.labels", "Labels", "names", true],
    ["content.detectors", "Detectors (id or id:min_count)", "detectors", true], ["content.match", "Detectors must match", "enum", true],
    ["protect.label", "Protect: label", "text", true], ["protect.encrypt", "Protect: encrypt", "bool", true],
    ["protect.unsupported", "Protect: unsupported files", "enum", true], ["malware", "Malware", "bool", true],
    ["notice", "Notice", "bool", true], ["apply_if_unscannable", "Apply if unscannable", "bool", true]];
  FILTERS.forEach(function (f) { FIELDS.splice(4 + FILTERS.indexOf(f), 0, ["filters." + f, "Filter " + f.replace(/_/g, " "), "names"]); });

  function list(s) { return s.split(",").map(function (x) { return x.trim(); }).filter(function (x) { return x !== ""; }); }
  function set(obj, path, v) {
    var ks = path.split("."), o = obj;
    for (var i = 0; i < ks.length - 1; i++) { o[ks[i]] = o[ks[i]] || {}; o = o[ks[i]]; }
    o[ks[ks.length - 1]] = v;
  }
  function get(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }
  function api(path, body) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": meta ? meta.content : "" },
      body: JSON.stringify(body)
    }).then(function (r) { return r.json().then(function (j) { return { status: r.status, body: j }; }); });
  }
  function mk(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text) e.textContent = text;
    return e;
  }

  function init() {
    var root = document.getElementById("pf");
    if (!root) return;
    var fields = document.getElementById("pf-fields");
    var kind = document.getElementById("pf-kind");
    var preview = document.getElementById("pf-yaml");
    var status = document.getElementById("pf-status");
    var pick = document.getElementById("pf-open");
    var add = document.getElementById("pf-add");
    var content = document.getElementById("ed-content");
    var inputs = {};

    FIELDS.forEach(function (f, i) {
      var id = "pf-" + i, wrap = mk("div", { "class": "f" + (f[3] ? " pf-session" : "") });
      if (f[2] === "names") {
        var fs = mk("fieldset", { "class": "pf-names" });
        fs.appendChild(mk("legend", {}, f[1] + " (comma-separated)"));
        ["any_of", "none_of"].forEach(function (k) {
          var inp = mk("input", { id: id + "-" + k, "data-path": f[0] + "." + k });
          fs.appendChild(mk("label", { "for": id + "-" + k }, k.replace("_", " ")));
          fs.appendChild(inp);
          inputs[f[0] + "." + k] = { el: inp, type: "list" };
        });
        wrap.appendChild(fs);
      } else {
        var el;
        if (f[2] === "enum") {
          el = mk("select", { id: id });
          ENUMS[f[0]].forEach(function (v) { el.appendChild(mk("option", { value: v }, v === "" ? "(unset)" : v)); });
        } else if (f[2] === "bool") {
          el = mk("input", { id: id, type: "checkbox" });
        } else {
          el = mk("input", { id: id });
        }
        el.dataset.path = f[0];
        wrap.appendChild(mk("label", { "for": id }, f[1]));
        wrap.appendChild(el);
        inputs[f[0]] = { el: el, type: f[2] };
      }
      fields.appendChild(wrap);
    });
    // Client apps are a known set: offer them as a datalist.
    var dl = mk("datalist", { id: "pf-clients" });
    ["browser", "mobile_desktop"].forEach(function (v) { dl.appendChild(mk("option", { value: v })); });
    root.appendChild(dl);
    inputs["filters.client_apps.any_of"].el.setAttribute("list", "pf-clients");
    inputs["filters.client_apps.none_of"].el.setAttribute("list", "pf-clients");

    function isSession() { return kind.value === "session"; }
    function showKind() {
      root.querySelectorAll(".pf-session").forEach(function (e) { e.hidden = !isSession(); });
    }
    function read() {
      var p = {};
      Object.keys(inputs).forEach(function (path) {
        var inp = inputs[path];
        if (!isSession() && inp.el.closest(".pf-session")) return;
        if (inp.type === "bool") set(p, path, inp.el.checked);
        else if (inp.type === "list") set(p, path, list(inp.el.value));
        else if (inp.type === "detectors") set(p, path, list(inp.el.value).map(function (d) {
          var parts = d.split(":");
          return { id: parts[0].trim(), min_count: parts.length > 1 ? parseInt(parts[1], 10) || 0 : 0 };
        }));
        else set(p, path, inp.el.value);
      });
      return { kind: kind.value, policy: p };
    }
    function fill(k, p) {
      kind.value = k;
      Object.keys(inputs).forEach(function (path) {
        var inp = inputs[path], v = get(p, path);
        if (inp.type === "bool") inp.el.checked = !!v;
        else if (inp.type === "list") inp.el.value = (v || []).join(", ");
        else if (inp.type === "detectors") inp.el.value = (v || []).map(function (d) { return d.min_count ? d.id + ":" + d.min_count : d.id; }).join(", ");
        else inp.el.value = v == null ? "" : v;
      });
      showKind();
      render();
    }
    var timer = null, seq = 0;
    function say(text, cls) { status.textContent = text; status.className = "status " + (cls || ""); }
    function render() {
      var mine = ++seq;
      api("/api/v1/policies/form/render", read()).then(function (res) {
        if (mine !== seq) return;
        if (res.status !== 200) { preview.textContent = ""; say(res.body.error || String(res.status), "bad"); return; }
        preview.textContent = res.body.yaml;
        say("", "");
      }).catch(function (e) { say("Render failed: " + e.message, "bad"); });
    }
    function schedule() { clearTimeout(timer); timer = setTimeout(render, 250); }
    fields.addEventListener("input", schedule);
    fields.addEventListener("change", schedule);
    kind.addEventListener("change", function () { showKind(); schedule(); });

    // The file's policies, to open one in the form.
    function listPolicies() {
      var ids = [];
      content.value.split("\n").forEach(function (line) {
        var m = /^\s*-\s*id:\s*["']?([^"'\s#]+)/.exec(line);
        if (m) ids.push(m[1]);
      });
      pick.replaceChildren(mk("option", { value: "" }, "(a new policy)"));
      ids.forEach(function (id) { pick.appendChild(mk("option", { value: id }, id)); });
    }
    content.addEventListener("input", listPolicies);
    pick.addEventListener("focus", listPolicies);
    pick.addEventListener("change", function () {
      if (!pick.value) return;
      api("/api/v1/policies/form/parse", { content: content.value, id: pick.value }).then(function (res) {
        if (res.status !== 200) { say(res.body.error || String(res.status), "bad"); return; }
        fill(res.body.kind, res.body.policy);
      }).catch(function (e) { say("Open failed: " + e.message, "bad"); });
    });
    if (add) add.addEventListener("click", function () {
      var body = read();
      body.file = document.getElementById("ed-file").value.trim();
      body.content = content.value;
      api("/api/v1/policies/form/add", body).then(function (res) {
        if (res.status !== 200) { say(res.body.error || String(res.status), "bad"); return; }
        content.value = res.body.content;
        content.dispatchEvent(new Event("input", { bubbles: true }));
        say(res.body.valid ? "Added to the file." : "Added; the file has problems (see above).", res.body.valid ? "ok" : "bad");
      }).catch(function (e) { say("Add failed: " + e.message, "bad"); });
    });
    inputs.id.el.value = "new-policy";
    listPolicies();
    showKind();
    render();
  }
  document.addEventListener("DOMContentLoaded", init);
})();
