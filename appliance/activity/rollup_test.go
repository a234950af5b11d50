package activity

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// rollupEvent is one of a few users, apps, modes and actions at time ts.
func rollupEvent(r *rand.Rand, ts time.Time) Event {
	ev := sampleEvent(r.IntN(1000))
	ev.Time = ts
	ev.User = []string{"", "ann@corp.example", "bob@corp.example", "cy@corp.example", "dee@corp.example"}[r.IntN(5)]
	ev.App = []string{"", "box", "wiki", "git", "mail", "crm"}[r.IntN(6)]
	ev.Mode = []Mode{ModeTransparent, ModeSuffix}[r.IntN(2)]
	ev.Action = []string{"allow", "allow", "monitor", "block", ""}[r.IntN(5)]
	return ev
}

// wantTop is Top computed from the events themselves.
func wantTop(t *testing.T, s *Store, col string, from, to time.Time, n int) []NameCount {
	t.Helper()
	rows, err := s.rdb.Query(`SELECT `+col+`, count(*), sum(action = 'block') FROM events
		WHERE ts >= ? AND ts < ? AND `+col+` != '' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?`, from.UnixNano(), to.UnixNano(), n)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := []NameCount{}
	for rows.Next() {
		var c NameCount
		if err := rows.Scan(&c.Name, &c.N, &c.Blocked); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func wantCounts(t *testing.T, s *Store, from, to time.Time, bucket time.Duration) []Count {
	t.Helper()
	rows, err := s.rdb.Query(`SELECT (ts - ?) / ?, mode, action, count(*) FROM events
		WHERE ts >= ? AND ts < ? GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, from.UnixNano(), int64(bucket), from.UnixNano(), to.UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []Count
	for rows.Next() {
		var i int64
		var c Count
		if err := rows.Scan(&i, &c.Mode, &c.Action, &c.N); err != nil {
			t.Fatal(err)
		}
		c.Bucket = from.Add(time.Duration(i) * bucket).UTC()
		out = append(out, c)
	}
	return out
}

func checkRollups(t *testing.T, s *Store, to time.Time, label string) {
	t.Helper()
	for _, r := range []struct{ span, bucket time.Duration }{
		{time.Hour, time.Minute}, {24 * time.Hour, 15 * time.Minute}, {7 * 24 * time.Hour, 2 * time.Hour}, {3 * 24 * time.Hour, time.Hour},
	} {
		end := to.Truncate(r.bucket).Add(r.bucket)
		from := end.Add(-r.span)
		got, err := s.Counts(from, end, r.bucket)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(a, b Count) int {
			return cmpOf(a.Bucket.Unix(), b.Bucket.Unix(), a.Mode+"\x00"+a.Action, b.Mode+"\x00"+b.Action)
		})
		if want := wantCounts(t, s, from, end, r.bucket); !slices.Equal(got, want) {
			t.Errorf("%s: counts %v by %v: %d rows, want %d\n got %v\nwant %v", label, r.span, r.bucket, len(got), len(want), got, want)
		}
		for _, d := range []struct{ dim, col string }{{"user", "user_name"}, {"app", "app"}} {
			got, err := s.Top(d.dim, from, end, 3)
			if err != nil {
				t.Fatal(err)
			}
			if want := wantTop(t, s, d.col, from, end, 3); !slices.Equal(got, want) {
				t.Errorf("%s: top %s over %v to %s: %v, want %v", label, d.dim, r.span, end, got, want)
			}
		}
	}
}

func cmpOf(a, b int64, x, y string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// TestRollupsExact: the dashboard's counts and top lists from the rollups
// equal a GROUP BY over the events, as the clock moves (the top lists'
// cache slides), when events arrive late, and after retention.
func TestRollupsExact(t *testing.T) {
	s, _ := openTest(t, Options{MaxAge: 48 * time.Hour})
	r := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 5, 1, 0, 7, 0, 0, time.UTC)
	var evs []Event
	for i := range 6000 {
		evs = append(evs, rollupEvent(r, base.Add(time.Duration(i)*50*time.Second+time.Duration(r.IntN(1e9)))))
	}
	commitAll := func(evs []Event) {
		for len(evs) > 0 {
			n := min(len(evs), 1+r.IntN(300))
			g := slices.Clone(evs[:n])
			for i := range g {
				g[i].ID = newEventID(g[i].Time)
			}
			if err := s.withWriter(func() error { return s.commit(g) }); err != nil {
				t.Fatal(err)
			}
			evs = evs[n:]
		}
	}
	// The clock moves with the events; the caches follow.
	for step := 0; step < 6; step++ {
		commitAll(evs[step*1000 : (step+1)*1000])
		checkRollups(t, s, evs[(step+1)*1000-1].Time, fmt.Sprintf("step %d", step))
	}
	now := evs[len(evs)-1].Time
	// Late events, inside what the caches hold as settled.
	var late []Event
	for i := range 40 {
		late = append(late, rollupEvent(r, now.Add(-time.Duration(2+i)*time.Hour)))
	}
	commitAll(late)
	checkRollups(t, s, now, "late")
	// Retention: everything older than 48 hours goes.
	res, err := s.Prune(now)
	if err != nil || res.Deleted == 0 {
		t.Fatalf("prune: %+v %v", res, err)
	}
	checkRollups(t, s, now, "pruned")
	var stale int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM rollup_names WHERE span = 3600 AND bucket < ?`,
		now.Add(-50*time.Hour).Unix()).Scan(&stale); err != nil || stale != 0 {
		t.Fatalf("%d rollup rows left before retention, %v", stale, err)
	}
}

func TestRollupsRejectBadRanges(t *testing.T) {
	s, _ := openTest(t, Options{})
	at := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range []func() error{
		func() error { _, err := s.Counts(at.Add(time.Second), at.Add(time.Hour), time.Minute); return err },
		func() error { _, err := s.Counts(at, at.Add(time.Hour), 90*time.Second); return err },
		func() error { _, err := s.Counts(at, at, time.Minute); return err },
		func() error { _, err := s.Top("host", at, at.Add(time.Hour), 8); return err },
		func() error { _, err := s.Top("user", at, at.Add(time.Hour+time.Second), 8); return err },
	} {
		if err := f(); err == nil {
			t.Error("bad range accepted")
		}
	}
}

// A group whose commit fails (here: its first row's seq collides with a
// stored one) and is committed again adds its counts once.
func TestRollupsRetriedGroupCountedOnce(t *testing.T) {
	s, _ := openTest(t, Options{})
	r := rand.New(rand.NewPCG(5, 6))
	base := time.Now().Add(-30 * time.Minute).Truncate(time.Minute)
	group := func(n, from int) []Event {
		g := make([]Event, n)
		for i := range g {
			g[i] = rollupEvent(r, base.Add(time.Duration(from+i)*time.Second))
			g[i].ID = newEventID(g[i].Time)
		}
		return g
	}
	first, second := group(50, 0), group(80, 50)
	if err := s.withWriter(func() error { return s.commit(first) }); err != nil {
		t.Fatal(err)
	}
	err := s.withWriter(func() error {
		next := s.ins.nextSeq
		s.ins.nextSeq = first[0].Seq
		err := s.commit(second)
		s.ins.nextSeq = next
		return err
	})
	if err == nil {
		t.Fatal("a group reusing a stored seq was committed")
	}
	if err := s.withWriter(func() error { return s.commit(second) }); err != nil {
		t.Fatal(err)
	}
	checkRollups(t, s, second[len(second)-1].Time, "retried")
}
