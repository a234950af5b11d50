package appliance

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// The store's writer and retention counters reach /metrics: commits (so
// events per fsync can be read), write errors, the queue's capacity, the
// last group's size, and what retention deleted, unsent by an exporter
// among it.
func TestActivityCollectorExportsWriterAndRetention(t *testing.T) {
	st, err := activity.Open(filepath.Join(t.TempDir(), "activity.db"), activity.Options{MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// An exporter's cursor that never moves: whatever retention deletes
	// is unsent.
	if err := st.Advance("jsonl", 0); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-3 * time.Hour)
	for i := range 30 {
		if err := st.Emit(activity.Event{Time: old.Add(time.Duration(i) * time.Second), Mode: activity.ModeTransparent, Host: "a.example", Action: "allow"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if err := st.Emit(activity.Event{Time: time.Now().Add(time.Duration(i) * time.Millisecond), Mode: activity.ModeTransparent, Host: "b.example", Action: "allow"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.Stats().Written < 40 {
		if time.Now().After(deadline) {
			t.Fatalf("written %d of 40", st.Stats().Written)
		}
		time.Sleep(5 * time.Millisecond)
	}
	res, err := st.Prune(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 30 {
		t.Fatalf("retention deleted %d events, want the 30 old ones", res.Deleted)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newActivityCollector(st))
	s := st.Stats()
	if s.Commits == 0 || s.Commits > 40 {
		t.Fatalf("store counted %d commits for 40 events", s.Commits)
	}
	want := []string{
		"portcullis_activity_commits_total " + itoa(s.Commits),
		"portcullis_activity_write_errors_total 0",
		"portcullis_activity_queue_capacity " + itoa(uint64(s.QueueCapacity)),
		"portcullis_activity_last_commit_events " + itoa(uint64(s.LastCommitSize)),
		"portcullis_activity_pruned_total 30",
		"portcullis_activity_pruned_unsent_total 30",
		"portcullis_activity_prune_errors_total 0",
		`portcullis_activity_events_total{outcome="written"} 40`,
	}
	if s.QueueCapacity <= 0 || s.LastCommitSize <= 0 {
		t.Fatalf("capacity %d, last commit %d: want both positive", s.QueueCapacity, s.LastCommitSize)
	}
	got, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, mf := range got {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += `{` + l.GetName() + `="` + l.GetValue() + `"}`
			}
			text.WriteString(name + " " + itoa(uint64(v)) + "\n")
		}
	}
	for _, line := range want {
		if !strings.Contains(text.String(), line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, text.String())
		}
	}
	if n := strings.Count(text.String(), "\n"); n < 15 {
		t.Errorf("gathered %d series, want at least 15 (events by five outcomes, lag, depth, health and the seven above)", n)
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
