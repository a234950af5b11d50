package activity

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// An exporter that cannot deliver leaves the events spooled in the store:
// memory does not grow with the backlog, and once the sink works again the
// exporter catches up, every event once and in order.
func TestBlockedExporterSpoolsInTheStore(t *testing.T) {
	s, _ := openTest(t, Options{Durability: AuditStrict, QueueSize: 4096})
	dir := t.TempDir()
	// The sink's directory is a regular file: every open fails (ENOTDIR,
	// even for root).
	sinkDir := filepath.Join(dir, "spool")
	if err := os.WriteFile(sinkDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	exp := &JSONLines{Store: s, Path: filepath.Join(sinkDir, "events.jsonl"), Poll: 5 * time.Millisecond, MaxBytes: 1 << 40}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exp.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	before := heapInUse()
	const n = 100_000
	for i := 0; i < n; i++ {
		ev := sampleEvent(i)
		for tries := 0; ; tries++ {
			err := s.Emit(ev)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrStoreUnavailable) || tries > 100000 {
				t.Fatalf("emit %d: %v", i, err)
			}
			time.Sleep(100 * time.Microsecond) // backpressure, as the proxy refuses sessions
		}
	}
	waitWritten(t, s, n)
	after := heapInUse()
	t.Logf("%d events stored behind a blocked exporter: heap %d → %d KiB", n, before>>10, after>>10)
	if after > before+32<<20 {
		t.Fatalf("heap grew from %d to %d KiB while the exporter was blocked", before>>10, after>>10)
	}
	if cur, err := s.Cursor("jsonl"); err != nil || cur != 0 {
		t.Fatalf("cursor %d, %v while the sink was unwritable", cur, err)
	}

	if err := os.Remove(sinkDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(sinkDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if cur, _ := s.Cursor("jsonl"); cur == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the exporter did not catch up within 30s")
		}
	}
	f, err := os.Open(exp.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var lines int64
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		lines++
		if ev.Seq != lines {
			t.Fatalf("line %d holds event %d: not in order or repeated", lines, ev.Seq)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines != n {
		t.Fatalf("%d lines exported, want %d", lines, n)
	}
}
