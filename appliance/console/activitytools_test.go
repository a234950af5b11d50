package console

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/internal/lab/browser"
)

const auditorPW = "auditor-password-1"

// Saved searches belong to their account, always open (the query is
// checked when saved), and are refused with a reason when bad.
func TestSavedSearches(t *testing.T) {
	tc := newTestConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	resp, m := admin.api("POST", "/api/v1/users", map[string]any{"name": "audrey", "password": auditorPW, "role": "auditor"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create auditor: %d %v", resp.StatusCode, m)
	}
	auditor, resp, _ := tc.login("audrey", auditorPW, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("auditor login: %d", resp.StatusCode)
	}

	resp, m = admin.api("POST", "/api/v1/searches", map[string]any{"name": "blocked downloads", "query": "action=block&activity=download&since=7d&after=xyz&bogus=1"})
	if resp.StatusCode != 200 {
		t.Fatalf("save: %d %v", resp.StatusCode, m)
	}
	if q := m["query"]; q != "action=block&activity=download&since=7d" {
		t.Errorf("saved query %q: the page token and unknown parameters must go", q)
	}
	id, _ := m["id"].(string)
	for _, bad := range []map[string]any{
		{"name": "", "query": "action=block"},
		{"name": "x\nfake", "query": "action=block"},
		{"name": strings.Repeat("n", 81), "query": "action=block"},
		{"name": "bad range", "query": "since=forever"},
		{"name": "bad time", "query": "from=yesterday"},
	} {
		if resp, m := admin.api("POST", "/api/v1/searches", bad); resp.StatusCode != http.StatusBadRequest || m["error"] == "" {
			t.Errorf("save %v: %d %v, want 400 with a reason", bad, resp.StatusCode, m)
		}
	}
	// An auditor keeps searches too, and sees only their own.
	if resp, m := auditor.api("POST", "/api/v1/searches", map[string]any{"name": "mine", "query": "user=bob"}); resp.StatusCode != 200 {
		t.Fatalf("auditor save: %d %v", resp.StatusCode, m)
	}
	_, m = auditor.api("GET", "/api/v1/searches", nil)
	if l := m["searches"].([]any); len(l) != 1 || l[0].(map[string]any)["name"] != "mine" {
		t.Errorf("auditor sees %v", l)
	}
	if resp, _ := auditor.api("DELETE", "/api/v1/searches/"+id, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("auditor deleted the admin's search: %d", resp.StatusCode)
	}
	// The page lists it; the form saves one (CSRF-bound) and delete works.
	_, page := admin.get("/activity?action=allow")
	if !strings.Contains(page, `href="/activity?action=block&amp;activity=download&amp;since=7d"`) {
		t.Errorf("activity page does not link the saved search")
	}
	resp, _ = admin.post("/activity/searches", url.Values{"csrf": {formToken(t, page)}, "name": {"allowed"}, "query": {"action=allow&since=24h"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/activity?action=allow&since=24h" {
		t.Errorf("save form: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := admin.post("/activity/searches", url.Values{"name": {"no token"}, "query": {"action=allow"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("save without CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := admin.api("DELETE", "/api/v1/searches/"+id, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("delete: %d", resp.StatusCode)
	}
	_, m = admin.api("GET", "/api/v1/searches", nil)
	if l := m["searches"].([]any); len(l) != 1 || l[0].(map[string]any)["name"] != "allowed" {
		t.Errorf("after delete: %v", l)
	}
	// They survive a restart of the console.
	again, err := openSavedSearches(tc.dir)
	if err != nil || len(again.of("admin")) != 1 || len(again.of("audrey")) != 1 {
		t.Errorf("reopened: %v %v", again, err)
	}
}

// The tail returns the search's events since the newest the page has,
// with a look-back for late-stored events, and applies the filters.
func TestEventTail(t *testing.T) {
	tc := newTestConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	now := time.Now()
	tc.emit(labEvents(now.Add(-time.Hour), 4)...)
	newest := now.Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	tc.emit(labEvents(now, 6)...)
	resp, m := admin.api("GET", "/api/v1/events/tail?action=block&since=24h&newest="+url.QueryEscape(newest), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("tail: %d %v", resp.StatusCode, m)
	}
	evs := m["events"].([]any)
	if len(evs) != 3 {
		t.Fatalf("tail returned %d events, want the 3 new blocked ones", len(evs))
	}
	for _, e := range evs {
		ev := e.(map[string]any)
		if ev["action"] != "block" || ev["ts"] == nil {
			t.Errorf("tail event %v", ev)
		}
	}
	if got, _ := time.Parse(time.RFC3339Nano, m["newest"].(string)); got.Before(now.Add(-5 * time.Second)) {
		t.Errorf("newest %v does not advance to the newest event", got)
	}
	if resp, _ := admin.api("GET", "/api/v1/events/tail?newest=soon", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad newest: %d", resp.StatusCode)
	}
	if resp, _ := tc.client().api("GET", "/api/v1/events/tail", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("tail without a session: %d", resp.StatusCode)
	}
}

// A policy drafted from an event validates with the appliance's checks,
// matches the event's app, user, client and activity, and quotes every
// value from traffic so none can become YAML structure.
func TestPolicyFromEvent(t *testing.T) {
	tc := newTestConsole(t, nil)
	now := time.Now()
	cases := []struct {
		name string
		e    activity.Event
		want []string
	}{
		{"download", activity.Event{Seq: 7, Time: now, App: "origin-lab", User: "alice@lab.example", ClientApp: "browser",
			Host: "origin.lab", Method: "GET", Path: "/f/cards.csv", Activity: "download", FileName: "cards.csv"},
			[]string{"session_policies:", "control: download", "users: [alice@lab.example]", "files: {extensions: [csv]}", "client_apps: [browser]", "action: monitor"}},
		{"catalog activity", activity.Event{Seq: 8, Time: now, App: "origin-lab", Activity: "download_file", ClientApp: "mobile_desktop"},
			[]string{"control: block_activities", "activities: [download_file]", "client_apps: [mobile_desktop]"}},
		{"plain request to an unknown host", activity.Event{Seq: 9, Time: now, Host: "Files.Example.NET", Method: "GET", Path: "/"},
			[]string{"access_policies:", "id: custom-files-example-net", "domains: [files.example.net]", "apps: [custom-files-example-net]"}},
		{"hostile values", activity.Event{Seq: 10, Time: now, App: "origin-lab", User: "x]\n  - id: evil\n    action: allow #",
			Host: "a.lab", Method: "GET\n", Path: "/\n- evil: 1", Activity: "upload", FileName: "a.e\nxe"},
			[]string{`users: ["x]\n  - id: evil\n    action: allow #"]`, "control: upload"}},
		{"the hostile test event", hostileEvent(now), []string{"control: block_activities"}},
		{"nothing known", activity.Event{Seq: 11, Time: now, Host: "198.18.0.1:443"},
			[]string{"apps: [my-app]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file, content := policyFromEvent(&c.e)
			for _, w := range c.want {
				if !strings.Contains(content, w) {
					t.Errorf("draft lacks %q:\n%s", w, content)
				}
			}
			if strings.Contains(content, "id: evil") && !strings.Contains(content, `"x]`) {
				t.Errorf("a traffic value became YAML:\n%s", content)
			}
			// Alone in the directory: base.yaml's block would shadow some
			// drafts, which validation rightly reports (not this test's point).
			files := map[string][]byte{file: []byte(content)}
			set, problems := tc.validate(files)
			if c.name == "nothing known" {
				// The admin must name the app: the draft says so, and so does validation.
				if len(problems) == 0 {
					t.Errorf("a draft naming no real app validated:\n%s", content)
				}
				return
			}
			if len(problems) != 0 || set == nil {
				t.Fatalf("draft does not validate: %v\n%s", problems, content)
			}
			if n := len(set.AccessPolicies) + len(set.SessionPolicies); n != 1 {
				t.Errorf("%d policies in the set, want the draft", n)
			}
		})
	}
}

// In Chromium: the live tail adds an event stored after the page loaded
// (as text, under the page's CSP), the drawer's pivots search around the
// event, a saved search comes back from the list, and "Create a policy
// from this event" opens the editor with a draft that validates. axe-core
// checks the page with the tail running.
func TestActivityToolsInChromium(t *testing.T) {
	tc := newTestConsole(t, nil)
	tc.setup("admin", adminPW)
	now := time.Now()
	tc.emit(labEvents(now.Add(-10*time.Minute), 6)...)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.srv.Certificate().Raw})
	b := browser.Start(t, browser.Options{TrustPEM: [][]byte{certPEM}})
	tab, _ := b.NewTab(t)
	ctx, cancel := context.WithTimeout(tab, 2*time.Minute)
	defer cancel()
	base := tc.srv.URL
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
			t.Fatalf("%s: %v\n%s", what, err, clipRunes(html, 3000))
		}
	}
	run("login", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), "admin"), chromedp.SendKeys(chromedp.CSS("#password"), adminPW),
		chromedp.Submit(chromedp.CSS("#password")), chromedp.WaitVisible(chromedp.CSS("#chart-action")))
	run("activity", chromedp.Navigate(base+"/activity?action=block"), chromedp.WaitVisible(chromedp.CSS("#live-toggle")))
	before, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#events-body tr[data-seq]").length`))
	run("live on", chromedp.Click(chromedp.CSS("#live-toggle")), waitFor(`document.getElementById("live-status").textContent.startsWith("Live")`))
	hostile := hostileEvent(time.Now())
	tc.emit(hostile, activity.Event{Time: time.Now(), Mode: activity.ModeTransparent, User: "bob@lab.example", SourceIP: netip.MustParseAddr("198.18.1.3"),
		App: "origin-lab", Host: "origin.lab", Method: "GET", Path: "/fresh", Action: "allow"})
	run("tail adds", waitFor(`document.querySelectorAll("#events-body tr.new").length === 1`))
	after, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#events-body tr[data-seq]").length`))
	if after != before+1 {
		t.Errorf("rows %d → %d: the tail must add exactly the one new blocked event", before, after)
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main script, main img, main b").length`)); n != 0 {
		t.Errorf("the hostile event produced %d elements", n)
	}
	user, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#events-body tr.new td:nth-child(3)")))
	if !strings.Contains(user, "<script>") {
		t.Errorf("tail row user %q, want the hostile name as text", user)
	}
	run("pause", chromedp.Click(chromedp.CSS("#live-toggle")), waitFor(`document.getElementById("live-toggle").getAttribute("aria-pressed") === "false"`))
	axeCheck(t, ctx, "activity with the live tail")

	// The drawer of a tail row opens (htmx processed it) and pivots.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#events-body tr.new button")), waitFor(`document.querySelector("#drawer-panel .pivots") !== null`)); err != nil {
		dbg, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`typeof window.htmx + " | " + document.getElementById("drawer").outerHTML.slice(0, 500) + " | " + document.querySelector("#events-body tr.new").outerHTML.slice(0, 800)`))
		t.Fatalf("drawer of a tail row: %v\n%s", err, dbg)
	}
	pivot, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#drawer-panel .pivots a[href*='app=']").getAttribute("href")`))
	pu, _ := url.Parse(pivot)
	from, _ := time.Parse(time.RFC3339Nano, pu.Query().Get("from"))
	to, _ := time.Parse(time.RFC3339Nano, pu.Query().Get("to"))
	if pu.Query().Get("app") != "origin-lab" || to.Sub(from) != 2*time.Hour || from.After(hostile.Time) || to.Before(hostile.Time) {
		t.Errorf("same-app pivot %q", pivot)
	}
	run("pivot", chromedp.Navigate(base+pivot), chromedp.WaitVisible(chromedp.CSS("#events-body tr[data-seq]")))
	// The 6 lab events (10 minutes old) and the 2 new ones are origin-lab's.
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#events-body tr[data-seq]").length`)); n != 8 {
		t.Errorf("same app ±1 h: %d rows, want 8", n)
	}

	// Save the search and find it again.
	run("save search", chromedp.Navigate(base+"/activity?action=block&since=1h"), chromedp.WaitVisible(chromedp.CSS("details.saved")),
		chromedp.Click(chromedp.CSS("details.saved summary")), chromedp.SendKeys(chromedp.CSS("#ss-name"), "blocked last hour"),
		// Waiting for the saved search in the reloaded page's list: the
		// page before the submit had #live-toggle too, so waiting for it
		// returned before the POST's navigation ended, and the next
		// Navigate aborted it (net::ERR_ABORTED, 2 runs in 3 here).
		chromedp.Submit(chromedp.CSS("#ss-name")),
		waitFor(`[...document.querySelectorAll(".saved-list a")].some(a => a.textContent.includes("blocked last hour"))`))
	run("open saved", chromedp.Navigate(base+"/activity"), chromedp.Click(chromedp.CSS("details.saved summary")),
		chromedp.Click(chromedp.CSS(`.saved-list a`)), waitFor(`location.search === "?action=block&since=1h"`))

	// Create a policy from bob's request; the draft validates.
	run("from event", chromedp.Navigate(base+"/activity?user=bob@lab.example"), chromedp.WaitVisible(chromedp.CSS("#events-body tr[data-seq] button")),
		chromedp.Click(chromedp.CSS("#events-body tr[data-seq] button")), chromedp.WaitVisible(chromedp.CSS("#drawer-panel")),
		chromedp.Click(chromedp.CSS(`#drawer-panel a[href^="/policies/from-event"]`)), chromedp.WaitVisible(chromedp.CSS("#ed-content")),
		waitFor(`document.getElementById("ed-status").textContent.startsWith("Valid")`))
	// Explain the editor's default sample with the draft in place.
	run("explain", chromedp.Click(chromedp.CSS("#ex-run")), waitFor(`!document.getElementById("ex-out").hidden`))
	if st, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#ex-status"))); !strings.Contains(st, "session decision: block") {
		t.Errorf("explain status %q, want the base policy's block of the sample download", st)
	}
	content, _ := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#ed-content")))
	if !strings.Contains(content, "access_policies:") || !strings.Contains(content, "users: [bob@lab.example]") {
		t.Errorf("draft policy:\n%s", content)
	}
}
