package console

import (
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// TestDashboardPreparedAtStart: New computes every range before it serves,
// and what it kept still moves with the events written after it: each
// range's top lists then equal a GROUP BY over the events themselves.
func TestDashboardPreparedAtStart(t *testing.T) {
	now := time.Date(2026, 3, 4, 10, 37, 0, 0, time.UTC)
	var clock time.Time
	tc := newTestConsole(t, func(o *Options) { o.Now = func() time.Time { return clock } })
	emit := func(ev activity.Event) {
		t.Helper()
		tk, err := tc.store.EmitDurable(ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.store.WaitDurable(t.Context(), tk); err != nil {
			t.Fatal(err)
		}
	}
	// Two days of events, one every 7 minutes, before the console starts.
	for i := 0; i < 2*24*60/7; i++ {
		emit(activity.Event{Time: now.Add(-48*time.Hour + time.Duration(i)*7*time.Minute), Mode: activity.ModeTransparent,
			User: fmt.Sprintf("u%d", i%13), App: fmt.Sprintf("a%d", i%5), Action: []string{"allow", "block"}[i%2]})
	}
	// A console started on them (newTestConsole's was started before they
	// were written).
	clock = now
	c, err := New(tc.opt)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Then a burst from one user, now and three hours on (past the hour
	// the prepared sums end at): it must lead every range, and every top
	// list must be the events' own.
	for _, later := range []time.Duration{0, 3 * time.Hour} {
		clock = now.Add(later)
		for i := 0; i < 40; i++ {
			emit(activity.Event{Time: clock.Add(-time.Duration(40-i) * 10 * time.Second), Mode: activity.ModeSuffix,
				User: "burst", App: "a1", Action: "block"})
		}
		for _, r := range dashboardRanges {
			d, err := c.dashboard(r.Name)
			if err != nil {
				t.Fatal(err)
			}
			users, apps := truthTop(t, c, "user_name", d.From, d.To), truthTop(t, c, "app", d.From, d.To)
			if !slices.Equal(d.TopUsers, users) || !slices.Equal(d.TopApps, apps) {
				t.Errorf("+%v %s: top users %v apps %v, the events give %v and %v", later, r.Name, d.TopUsers, d.TopApps, users, apps)
			}
			if len(d.TopUsers) == 0 || d.TopUsers[0].Name != "burst" {
				t.Errorf("+%v %s: top users %v, want burst first", later, r.Name, d.TopUsers)
			}
		}
	}
}

// truthTop is the top eight of col in [from, to) by a GROUP BY over the
// events, ties in name order as the store breaks them.
func truthTop(t *testing.T, c *Console, col string, from, to time.Time) []TopEntry {
	t.Helper()
	rows, err := c.ro.Query(`SELECT `+col+`, count(*), sum(action = 'block') FROM events
		WHERE ts >= ? AND ts < ? AND `+col+` <> '' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 8`, from.UnixNano(), to.UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []TopEntry
	for rows.Next() {
		var e TopEntry
		var blocked sql.NullInt64
		if err := rows.Scan(&e.Name, &e.Count, &blocked); err != nil {
			t.Fatal(err)
		}
		e.Blocked = int(blocked.Int64)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
