package console

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The API's export refuses a bad query or format in JSON, as every other
// endpoint does; the page's export answers in text.
func TestAPIExportErrorsAreJSON(t *testing.T) {
	tc := newTestConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	for path, want := range map[string]string{
		"/api/v1/events/export?format=xml":                   "format: csv or jsonl",
		"/api/v1/events/export?format=csv&source=not-an-ip":  `source "not-an-ip": not an IP address`,
		"/api/v1/events/export?format=jsonl&since=yesterday": `since "yesterday"`,
	} {
		resp, m := admin.api("GET", path, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
			!strings.Contains(fmt.Sprint(m["error"]), want) {
			t.Errorf("%s: %d %s %v, want 400 JSON with %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), m, want)
		}
	}
	resp, body := admin.get("/activity/export?format=xml")
	if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || !strings.Contains(body, "format: csv or jsonl") {
		t.Errorf("page export: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}
