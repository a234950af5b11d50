package activity

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"testing"
)

// The event's JSON (activity search, JSON lines, Kafka) is snake_case and
// uses the access log's names where the two say the same thing.
func TestEventJSONNames(t *testing.T) {
	ev := sampleEvent(1)
	ev.SourceIP = netip.MustParseAddr("198.18.1.2")
	ev.ClientWhy, ev.FileName, ev.Detectors = "curl (exact)", "a.txt", []Detection{{ID: "iban", Count: 1}}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)
	for k := range m {
		if !snake.MatchString(k) {
			t.Errorf("key %q is not snake_case", k)
		}
	}
	for _, k := range []string{"mode", "user", "host", "method", "path", "ja4", "client_app", "client_why", "reason", "bytes_in", "bytes_out", "request_id", "event_id", "source_ip"} {
		if _, ok := m[k]; !ok {
			t.Errorf("event JSON lacks %q: %s", k, b)
		}
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || back.ID != ev.ID || back.SourceIP != ev.SourceIP || back.FileName != "a.txt" {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}
