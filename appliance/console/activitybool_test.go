package console

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// The page and the API read OR (a parameter twice), NOT (not_<param>,
// not_q) and the source address; chips show each value and exclusion with
// a link removing only it; the drawer's or/exclude links refine the
// search it was opened from.
func TestActivityOrNot(t *testing.T) {
	tc := newTestConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	now := time.Now()
	var evs []activity.Event
	for i, u := range []string{"alice", "bob", "carol", "alice", "bob", "dave"} {
		evs = append(evs, activity.Event{Time: now.Add(-time.Duration(i) * time.Minute), Mode: activity.ModeTransparent, User: u,
			SourceIP: netip.AddrFrom4([4]byte{198, 18, 1, byte(10 + i%2)}), App: []string{"box", "wiki"}[i%2], Host: "h" + u + ".lab",
			Method: "GET", Path: "/", Action: "allow"})
	}
	tc.emit(evs...)
	users := func(q string) []string {
		t.Helper()
		resp, m := admin.api("GET", "/api/v1/events?"+q, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", q, resp.StatusCode, m)
		}
		var out []string
		for _, e := range m["events"].([]any) {
			out = append(out, e.(map[string]any)["user"].(string))
		}
		return out
	}
	// Users by i: alice bob carol alice bob dave; even i are box and
	// 198.18.1.10, odd i wiki and 198.18.1.11; newest (i=0) first.
	for q, want := range map[string]string{
		"user=alice&user=carol":                   "alice carol alice",
		"not_user=alice&not_user=bob":             "carol dave",
		"app=box&not_user=alice":                  "carol bob",
		"source=198.18.1.11":                      "bob alice dave",
		"source=198.18.1.11&not_q=hbob":           "alice dave",
		"user=alice&user=dave&source=198.18.1.10": "alice",
	} {
		if got := strings.Join(users(q), " "); got != want {
			t.Errorf("%s: %q, want %q", q, got, want)
		}
	}
	if resp, _ := admin.api("GET", "/api/v1/events?source=nope", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad source: %d", resp.StatusCode)
	}
	_, page := admin.get("/activity?user=alice&user=carol&not_app=wiki")
	for _, want := range []string{
		`User: <strong>alice</strong>`, `User: <strong>carol</strong>`, `App is not <strong>wiki</strong>`,
		`href="/activity?not_app=wiki&amp;since=24h&amp;user=carol"`, // removes alice only
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// The drawer opened from that search offers to add bob or exclude him.
	p, _ := tc.store.Search(activity.Query{User: "bob", Limit: 1})
	e := p.Events[0]
	search := url.Values{"user": {"alice", "carol"}, "not_app": {"wiki"}}.Encode()
	resp, drawer := admin.get("/activity/event?ts=" + itoa64(e.Time.UnixNano()) + "&seq=" + itoa64(e.Seq) + "&search=" + url.QueryEscape(search))
	if resp.StatusCode != 200 {
		t.Fatalf("drawer: %d", resp.StatusCode)
	}
	for _, want := range []string{
		`href="/activity?not_app=wiki&amp;user=alice&amp;user=carol&amp;user=bob"`,
		`href="/activity?not_app=wiki&amp;not_user=bob&amp;user=alice&amp;user=carol"`,
	} {
		if !strings.Contains(drawer, want) {
			t.Errorf("drawer lacks %s", want)
		}
	}
	// Saved searches keep exclusions.
	if resp, m := admin.api("POST", "/api/v1/searches", map[string]any{"name": "no wiki", "query": "not_app=wiki&user=bob&user=dave"}); resp.StatusCode != 200 || m["query"] != "not_app=wiki&user=bob&user=dave" {
		t.Errorf("save with exclusions: %d %v", resp.StatusCode, m)
	}
}
