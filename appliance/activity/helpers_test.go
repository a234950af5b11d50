package activity

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"
)

func openTest(t testing.TB, opt Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "activity.db")
	s, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

var testEpoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sampleEvent is deterministic in i so tests can predict what filters match.
func sampleEvent(i int) Event {
	actions := []string{"allow", "monitor", "block"}
	return Event{
		Time:       testEpoch.Add(time.Duration(i) * time.Second),
		Mode:       ModeTransparent,
		User:       fmt.Sprintf("user%d@corp.example", i%5),
		Groups:     []string{"staff", fmt.Sprintf("team%d", i%3)},
		SourceIP:   netip.AddrFrom4([4]byte{198, 18, 0, byte(i%250 + 1)}),
		DeviceTags: []string{"managed", fmt.Sprintf("os%d", i%2)},
		ClientApp:  []string{"browser", "mobile"}[i%2],
		JA4:        "t13d1516h2_8daaf6152771_02713d6af862",
		App:        []string{"dokuwiki", "box", "github"}[i%3],
		Host:       fmt.Sprintf("host%d.example.com", i%7),
		Method:     "GET",
		Path:       fmt.Sprintf("/doc/%d", i),
		Activity:   []string{"view", "download", "upload", "login"}[i%4],
		FileName:   fmt.Sprintf("report-%d.pdf", i),
		FileSize:   int64(1000 + i),
		FileSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Policies:   []string{fmt.Sprintf("p%d", i%4), "audit-all"},
		Action:     actions[i%3],
		Reason:     fmt.Sprintf("p%d", i%4),
		BytesUp:    int64(i),
		BytesDown:  int64(2 * i),
		SessionID:  fmt.Sprintf("sess-%d", i%11),
	}
}

// waitWritten waits until the writer committed n events.
func waitWritten(t testing.TB, s *Store, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Written < n {
		if time.Now().After(deadline) {
			t.Fatalf("written %d of %d events after 10s", s.Stats().Written, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func emitN(t testing.TB, s *Store, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.Emit(sampleEvent(i)); err != nil {
			t.Fatalf("emit %d: %v", i, err)
		}
	}
}
