// Package scalefixture builds the synthetic activity stores the scale tests
// run against (TestSearchScale in appliance/activity, TestPagesScale in
// appliance/console): n events over the 30 days before End, written through
// the store's own Emit and group commit, so the full-text index and the
// rollups are kept exactly as in production.
//
// Filling 10 million events takes most of make soak's time, so when
// PORTCULLIS_SCALE_CACHE names a directory the store is kept there under a
// name holding the size, the store's schema version and this generator's
// version, and every later test of that size reuses it. A test that writes
// to the store works on a Copy.
package scalefixture

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// End is the time the synthetic events stop at: fixed, so a cached store is
// the same whenever it was built. A test that needs "now" uses End.
var End = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// generation changes whenever Events changes, so no cached store of an
// older generator is reused.
const generation = 1

// CacheEnv names the directory cached stores are kept in.
const CacheEnv = "PORTCULLIS_SCALE_CACHE"

// RareHost and RareFile are the rare event's host and file: a handful of
// events (RareCount) in any store size, the needle of the free-text tests.
const (
	RareHost = "rare-exfil.example.net"
	RareFile = "payroll-2026.xlsx"
)

// rareEvery is how often Events writes the rare event.
func rareEvery(n int) int { return max(min(250_000, n/4), 1) }

// RareCount is how many rare events a store of n events holds.
func RareCount(n int) int {
	every := rareEvery(n)
	c := 0
	for i := every / 2; i < n; i += every {
		c++
	}
	return c
}

// Events calls emit with n synthetic events spread evenly over the 30 days
// before end, oldest first. The values are drawn from a fixed seed: 10,000
// users, 200 apps, 20,000 hosts, 100,000 paths, 50 policies (a third of the
// events match two), 8 device tags (two per event).
func Events(n int, end time.Time, emit func(activity.Event) error) error {
	r := rand.New(rand.NewPCG(1, 2))
	step := 30 * 24 * time.Hour / time.Duration(n)
	t0 := end.Add(-30 * 24 * time.Hour)
	actions := []string{"allow", "allow", "allow", "monitor", "protect", "require_step_up", "block"}
	activities := []string{"view", "view", "download_file", "upload_file", "login", "share", "print", "copy", "send", "delete"}
	clients := []string{"browser", "browser", "mobile", "desktop"}
	tags := []string{"managed", "unmanaged", "compliant", "byod", "windows", "macos", "linux", "ios"}
	modes := []activity.Mode{activity.ModeTransparent, activity.ModeSuffix}
	every := rareEvery(n)
	for i := 0; i < n; i++ {
		pol := []string{fmt.Sprintf("policy-%d", r.IntN(50))}
		if r.IntN(3) == 0 {
			pol = append(pol, fmt.Sprintf("policy-%d", r.IntN(50)))
		}
		ev := activity.Event{
			Time: t0.Add(time.Duration(i) * step), Mode: modes[r.IntN(len(modes))],
			User:       fmt.Sprintf("user%d@corp.example", r.IntN(10000)),
			Groups:     []string{"staff"},
			SourceIP:   netip.AddrFrom4([4]byte{198, 18, byte(r.IntN(256)), byte(r.IntN(256))}),
			DeviceTags: []string{tags[r.IntN(len(tags))], tags[r.IntN(len(tags))]},
			ClientApp:  clients[r.IntN(len(clients))],
			JA4:        "t13d1516h2_8daaf6152771_02713d6af862",
			App:        fmt.Sprintf("app%d", r.IntN(200)),
			Host:       fmt.Sprintf("h%d.wiki%d.example.com", r.IntN(1000), r.IntN(20)),
			Method:     "GET",
			Path:       fmt.Sprintf("/doc/%d/page", r.IntN(100000)),
			Activity:   activities[r.IntN(len(activities))],
			Policies:   pol,
			Action:     actions[r.IntN(len(actions))],
			Reason:     pol[0],
			BytesUp:    int64(r.IntN(10000)),
			BytesDown:  int64(r.IntN(1000000)),
			SessionID:  fmt.Sprintf("s%d", r.IntN(100000)),
		}
		if i%every == every/2 {
			ev.Host, ev.FileName, ev.Activity, ev.Action = RareHost, RareFile, "download_file", "block"
		}
		if err := emit(ev); err != nil {
			return err
		}
	}
	return nil
}

// Fill writes n events (Events, ending at End) into a new store at path
// through Emit: audit-strict, so a full queue pushes back instead of
// dropping, with large groups (the fill's transactions). It returns when
// every event is committed and the store closed.
func Fill(path string, n int) error {
	st, err := activity.Open(path, activity.Options{Durability: activity.AuditStrict, QueueSize: 1 << 17, MaxBatch: 1 << 15})
	if err != nil {
		return err
	}
	err = Events(n, End, func(ev activity.Event) error {
		for {
			err := st.Emit(ev)
			if !errors.Is(err, activity.ErrStoreUnavailable) || !st.Stats().Healthy {
				return err
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if w := st.Stats().Written; w != uint64(n) {
		return fmt.Errorf("scale fixture: %d of %d events written", w, n)
	}
	return nil
}

// Store returns the path of a store of n events (Events, ending at End),
// and how long building it took (zero when a cached one was reused). Under
// CacheEnv the store is the cached one, built there first if missing: the
// caller must not write to it (Copy it). Otherwise it is built in a
// directory of tb's, and the caller may do as it likes.
func Store(tb testing.TB, n int) (string, time.Duration) {
	tb.Helper()
	dir := os.Getenv(CacheEnv)
	if dir == "" {
		path := filepath.Join(tb.TempDir(), "scale.db")
		start := time.Now()
		if err := Fill(path, n); err != nil {
			tb.Fatal(err)
		}
		return path, time.Since(start)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatalf("%s: %v", CacheEnv, err)
	}
	path := filepath.Join(dir, fmt.Sprintf("activity-%d-schema%d-gen%d.db", n, activity.SchemaVersion, generation))
	if _, err := os.Stat(path); err == nil {
		tb.Logf("reusing the cached store %s", path)
		return path, 0
	}
	// Built under a temporary name and renamed when complete, so an
	// interrupted fill is never taken for a store.
	tmp := fmt.Sprintf("%s.building-%d", path, os.Getpid())
	defer removeDB(tmp)
	start := time.Now()
	if err := Fill(tmp, n); err != nil {
		tb.Fatal(err)
	}
	el := time.Since(start)
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("cached the store as %s", path)
	return path, el
}

// Copy copies the store at path into a directory of tb's and returns the
// copy's path.
func Copy(tb testing.TB, path string) string {
	tb.Helper()
	dst := filepath.Join(tb.TempDir(), filepath.Base(path))
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFile(path+suffix, dst+suffix); err != nil {
			if suffix != "" && errors.Is(err, os.ErrNotExist) {
				continue
			}
			tb.Fatal(err)
		}
	}
	return dst
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// removeDB removes a store's file and its WAL and shared-memory files.
func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(path + suffix)
	}
}
