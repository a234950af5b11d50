package activity

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestJSONLinesExportsEveryEventOnceAndRotates(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(filepath.Join(dir, "a.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n = 2500
	for i := range n {
		if err := st.Emit(Event{Host: "h.example", Path: "/p", Action: "allow", BytesDown: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitWritten(t, st, n)

	out := filepath.Join(dir, "events.jsonl")
	exp := &JSONLines{Store: st, Path: out, MaxBytes: 200 << 10, Keep: 100}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exp.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, _ := st.Cursor("jsonl"); c >= int64(n) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("export did not catch up within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A restarted exporter resumes from the cursor: nothing is repeated.
	if k, err := (&JSONLines{Store: st, Path: out}).ExportOnce(); err != nil || k != 0 {
		t.Fatalf("re-export after catching up: %d events, %v", k, err)
	}

	files, _ := filepath.Glob(out + "*")
	if len(files) < 3 {
		t.Fatalf("files %v: want the log rotated at 200 KiB", files)
	}
	seen := map[string]bool{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var ev Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("%s: bad line: %v", f, err)
			}
			if seen[ev.ID.String()] {
				t.Fatalf("event %s exported twice", ev.ID)
			}
			seen[ev.ID.String()] = true
		}
		fh.Close()
	}
	if len(seen) != n {
		t.Fatalf("%d events exported, want %d", len(seen), n)
	}
}
