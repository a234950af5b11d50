package appliance

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy"
)

// activity.hold_responses takes the three rules, and the bools it took
// before them as their aliases; anything else is refused where it stands.
func TestHoldResponsesRule(t *testing.T) {
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Activity.Hold != HoldActivities {
		t.Errorf("default hold_responses = %q, want activities", cfg.Activity.Hold)
	}
	for in, want := range map[string]HoldRule{
		"activities": HoldActivities, "all": HoldAll, "none": HoldNone,
		"true": HoldAll, "false": HoldNone, `"true"`: HoldAll, "ALL": HoldAll,
	} {
		cfg, err := LoadConfig(writeConfig(t, "activity:\n  hold_responses: "+in+"\n"))
		if err != nil {
			t.Errorf("hold_responses: %s: %v", in, err)
			continue
		}
		if cfg.Activity.Hold != want || cfg.Activity.Hold.holds() != (want != HoldNone) {
			t.Errorf("hold_responses: %s = %q, want %q", in, cfg.Activity.Hold, want)
		}
	}
	_, err = LoadConfig(writeConfig(t, "activity:\n  hold_responses: sometimes\n"))
	if err == nil || !strings.Contains(err.Error(), "activity.hold_responses") {
		t.Errorf("hold_responses: sometimes: %v, want an error naming the key", err)
	}
}

// Under activities the recorder waits for an activity's commit and lets
// plain traffic through with a nil wait (the proxy does not hold it); under
// all it waits for every record.
func TestRecorderHoldsActivitiesOnly(t *testing.T) {
	plain := proxy.Record{Mode: proxy.ModeTransparent, Host: "origin.lab", Method: "GET", Path: "/r/1", Status: 200, Decision: "allow"}
	activities := map[string]proxy.Record{}
	for name, mod := range map[string]func(*proxy.Record){
		"monitor":  func(r *proxy.Record) { r.Decision, r.Reason = "monitor", "policy watch" },
		"block":    func(r *proxy.Record) { r.Decision, r.Reason = "block", "host blocked" },
		"error":    func(r *proxy.Record) { r.Decision, r.Reason = "error", "upstream: refused" },
		"policy":   func(r *proxy.Record) { r.Action, r.Policy = policy.ActionAllow, "p1" },
		"file":     func(r *proxy.Record) { r.File = &proxy.RecordFile{Name: "a.pdf", Size: 3} },
		"login":    func(r *proxy.Record) { r.Login = true },
		"notice":   func(r *proxy.Record) { r.Reason = "monitoring notice shown (policy n1)" },
		"activity": func(r *proxy.Record) { r.Activity = "download_file" },
	} {
		r := plain
		mod(&r)
		activities[name] = r
	}
	for _, all := range []bool{false, true} {
		st, err := activity.Open(filepath.Join(t.TempDir(), "a.db"), activity.Options{FlushInterval: holdWindow})
		if err != nil {
			t.Fatal(err)
		}
		rec := &activityRecorder{store: st, strict: true, all: all}
		wait, err := rec.RecordDurable(plain)
		if err != nil || (wait == nil) == all {
			t.Errorf("all=%v: plain traffic: wait %v, err %v", all, wait != nil, err)
		}
		if wait != nil {
			if err := wait(); err != nil {
				t.Fatal(err)
			}
		}
		for name, r := range activities {
			wait, err := rec.RecordDurable(r)
			if err != nil || wait == nil {
				t.Errorf("all=%v: %s: not held (err %v)", all, name, err)
				continue
			}
			if err := wait(); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if err := rec.Close(); err != nil {
			t.Fatal(err)
		}
		if got := st.Stats().Written; got != uint64(len(activities)+1) {
			t.Errorf("all=%v: %d events written, want %d", all, got, len(activities)+1)
		}
	}
}
