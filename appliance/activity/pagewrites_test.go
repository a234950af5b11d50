package activity

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"
)

// plainEvent is allowed traffic that matched no policy, as the proxy
// records it for most requests: no user (transparent mode), no activity,
// no policies or tags, one app.
func plainEvent(i int) Event {
	return Event{
		Mode:      ModeTransparent,
		SourceIP:  netip.AddrFrom4([4]byte{198, 18, 1, byte(i%200 + 2)}),
		ClientApp: "browser",
		JA4:       "t13d1516h2_8daaf6152771_02713d6af862",
		App:       "origin-lab",
		Host:      "origin.lab",
		Method:    "GET",
		Path:      fmt.Sprintf("/r/%d", i),
		Action:    "allow",
		BytesDown: 120,
		SessionID: fmt.Sprintf("%x-%x", i/100, i),
	}
}

// walFrames commits groups of size events made by mk and returns the WAL
// frames (page writes) per commit. Automatic checkpoints are off while it
// runs, so every frame a commit appends stays counted in the file.
func walFrames(t testing.TB, s *Store, path string, groups, size int, mk func(int) Event) float64 {
	t.Helper()
	var pageSize int64
	if err := s.wdb.QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"PRAGMA wal_autocheckpoint = 0", "PRAGMA wal_checkpoint(TRUNCATE)"} {
		if _, err := s.wdb.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	defer s.wdb.Exec("PRAGMA wal_autocheckpoint = 1000")
	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	before := walSize()
	n := 0
	for range groups {
		evs := make([]Event, size)
		for i := range evs {
			evs[i] = mk(n)
			evs[i].Time = time.Now()
			evs[i].ID = newEventID(evs[i].Time)
			n++
		}
		if err := s.withWriter(func() error { return s.commit(evs) }); err != nil {
			t.Fatal(err)
		}
	}
	grown := walSize() - before
	if before == 0 {
		grown -= 32 // the WAL header
	}
	return float64(grown) / float64(pageSize+24) / float64(groups)
}

// TestPageWritesPerCommit measures what one group commit writes: WAL frames
// per commit for plain traffic and for activity events, at the group size
// of held requests (5 events) and of a lingering writer (200). Schema 3
// wrote 12.0 and 44.9 pages for the plain groups (the five full indexes and
// sqlite_sequence each took a page per commit); schema 4 wrote 4.9 and 23.1.
// Schema 6 adds the dashboard's rollups (about 2 pages per group) and the
// full-text index, written once per 512 events (about 12 pages a batch,
// fulltext.go): 7.2 and 32.1 measured; the bounds keep them there.
func TestPageWritesPerCommit(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		mk   func(int) Event
		max  float64 // 0: measured only (activity events fill every index)
	}{
		{"plain", 5, plainEvent, 8},
		{"plain", 200, plainEvent, 34},
		{"activity", 5, sampleEvent, 0},
		{"activity", 200, sampleEvent, 0},
	} {
		s, path := openTest(t, Options{})
		// Warm: a store that already holds events, not an empty one.
		walFrames(t, s, path, 50, 200, tc.mk)
		got := walFrames(t, s, path, 200, tc.size, tc.mk)
		t.Logf("%-8s group of %3d: %5.1f page writes per commit, %.2f per event", tc.name, tc.size, got, got/float64(tc.size))
		if tc.max > 0 && got > tc.max {
			t.Errorf("%s group of %d: %.1f page writes per commit, at most %.0f", tc.name, tc.size, got, tc.max)
		}
	}
}
