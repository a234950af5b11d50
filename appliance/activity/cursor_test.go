package activity

import (
	"errors"
	"testing"
	"time"
)

func TestSinkCursors(t *testing.T) {
	s, _ := openTest(t, Options{FlushInterval: time.Millisecond})
	if c, err := s.Cursor("syslog"); err != nil || c != 0 {
		t.Fatalf("new sink cursor = %d, %v", c, err)
	}
	emitN(t, s, 0, 10)
	waitWritten(t, s, 10)

	evs, err := s.ReadAfter("syslog", 4)
	if err != nil || len(evs) != 4 {
		t.Fatalf("ReadAfter = %d events, %v", len(evs), err)
	}
	for i, ev := range evs {
		if ev.BytesUp != int64(i) {
			t.Fatalf("ReadAfter out of order: %d at %d", ev.BytesUp, i)
		}
	}
	// Not advanced: the same events again (at-least-once).
	again, _ := s.ReadAfter("syslog", 4)
	if again[0].Seq != evs[0].Seq {
		t.Fatal("ReadAfter moved without Advance")
	}
	if err := s.Advance("syslog", evs[3].Seq); err != nil {
		t.Fatal(err)
	}
	// A stale Advance does not move the cursor back.
	if err := s.Advance("syslog", evs[0].Seq); err != nil {
		t.Fatal(err)
	}
	rest, _ := s.ReadAfter("syslog", 100)
	if len(rest) != 6 || rest[0].BytesUp != 4 {
		t.Fatalf("after advance: %d events from %d", len(rest), rest[0].BytesUp)
	}
	// Sinks are independent.
	if other, _ := s.ReadAfter("kafka", 100); len(other) != 10 {
		t.Fatalf("second sink sees %d events", len(other))
	}
	if err := s.Advance("syslog", rest[5].Seq+1); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("advance past the end: %v", err)
	}
	if err := s.Advance("", 1); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("empty name: %v", err)
	}
}

// After retention empties the table, new events still get higher Seqs than
// any cursor, so no sink skips them.
func TestSeqNotReusedAfterPrune(t *testing.T) {
	s, _ := openTest(t, Options{FlushInterval: time.Millisecond, MaxAge: time.Hour, PruneInterval: time.Hour})
	emitN(t, s, 0, 5)
	waitWritten(t, s, 5)
	evs, _ := s.ReadAfter("syslog", 10)
	if err := s.Advance("syslog", evs[4].Seq); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Prune(testEpoch.Add(48 * time.Hour)); err != nil || res.Deleted != 5 {
		t.Fatalf("prune = %+v, %v", res, err)
	}
	emitN(t, s, 5, 6)
	waitWritten(t, s, 6)
	next, _ := s.ReadAfter("syslog", 10)
	if len(next) != 1 || next[0].Seq <= evs[4].Seq {
		t.Fatalf("event after prune: %+v", next)
	}
}
