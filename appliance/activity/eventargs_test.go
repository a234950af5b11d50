package activity

import (
	"database/sql"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestWriterStoresWhatIsBound: the writer's statements (usual values bound
// as NULL, boxes shared between rows, side rows read back from the JSON
// lists) store exactly what plain single-row INSERTs of every value as it
// is store: the same values of the same types in events, event_policy and
// event_tag, for empty and usual values, hostile bytes, repeated values and
// lists json_each could not give back.
func TestWriterStoresWhatIsBound(t *testing.T) {
	hostile := []string{"", "allow", "browser", "it's", `q"uote\`, "nul\x00byte", "bad\xffutf8", "ctl\x01\x1f\x7f", "é€😀", "%_like"}
	var groups [][]Event
	mk := func(i int) Event {
		h := func(k int) string { return hostile[(i+k)%len(hostile)] }
		return Event{
			Mode: Mode(h(0)), User: h(1), Groups: []string{h(2), "staff"},
			SourceIP:  []netip.Addr{{}, netip.MustParseAddr("198.18.0.7"), netip.MustParseAddr("2001:db8::1")}[i%3],
			ClientApp: h(3), ClientWhy: h(4), JA4: h(5), App: h(6), Host: h(7), Method: h(8), Path: h(9),
			Activity: h(1), FileName: h(2), FileSize: int64(i * 1000), FileSHA256: h(3), FileType: h(4), FileLabel: h(5),
			Action: h(i % 3), Reason: h(6), BytesUp: int64(i), BytesDown: int64(1 << 40), SessionID: h(7),
		}
	}
	// Group 1: every list json_each gives back exactly, with a policy
	// listed twice; plain events in the middle.
	var g1 []Event
	for i := 0; i < 40; i++ {
		ev := mk(i)
		if i%4 != 0 {
			ev.Policies = []string{"p" + hostile[i%3], "audit-all", "audit-all"}
			ev.DeviceTags = []string{"managed", "é€😀", `q"uote\`, "ctl\x01"}
		}
		if i%5 == 0 {
			ev = plainEvent(i)
		}
		g1 = append(g1, ev)
	}
	groups = append(groups, g1)
	// Group 2: one tag and one policy json_each would change (invalid
	// UTF-8, NUL): that group's side rows are bound as given.
	var g2 []Event
	for i := 0; i < 10; i++ {
		ev := sampleEvent(i)
		if i == 3 {
			ev.DeviceTags = []string{"bad\xffutf8", "managed"}
			ev.Policies = []string{"nul\x00byte"}
		}
		g2 = append(g2, ev)
	}
	groups = append(groups, g2, []Event{mk(99)}, []Event{{}})
	// Plain traffic: every row of a chunk leaves the same text columns at
	// their usual value, which the INSERT then writes itself (eventRowFor);
	// in the second group one row sets some of them, so that chunk binds
	// them for every row.
	var g3, g4 []Event
	for i := 0; i < 37; i++ {
		g3 = append(g3, plainEvent(i))
		ev := plainEvent(100 + i)
		if i == 5 {
			ev.User, ev.FileName, ev.Action, ev.ClientApp = "alice@corp.example", "it's.pdf", "block", "mobile"
		}
		g4 = append(g4, ev)
	}
	groups = append(groups, g3, g4)
	// More sets of such columns than the writer prepares INSERTs for
	// (maxFixedSets): the later ones bind every column.
	for i, set := range []func(*Event){
		func(ev *Event) { ev.Activity = "download" },
		func(ev *Event) { ev.Reason = "p1" },
		func(ev *Event) { ev.FileType = "pdf" },
		func(ev *Event) { ev.FileLabel = "secret" },
		func(ev *Event) { ev.ClientWhy = "ja4" },
		func(ev *Event) { ev.FileSHA256 = "ab" },
	} {
		g := []Event{plainEvent(200 + 2*i), plainEvent(201 + 2*i)}
		set(&g[0])
		set(&g[1])
		groups = append(groups, g)
	}

	s, _ := openTest(t, Options{})
	for _, g := range groups {
		now := time.Now()
		for i := range g {
			g[i].Time = now.Add(time.Duration(i) * time.Millisecond)
			g[i].ID = newEventID(now)
		}
		if err := s.withWriter(func() error { return s.commit(g) }); err != nil {
			t.Fatal(err)
		}
	}

	if n := len(s.ins.fixedSets); n != maxFixedSets {
		t.Errorf("the writer prepared INSERTs for %d sets of fixed columns, want the bound, %d", n, maxFixedSets)
	}

	plain, err := sql.Open("sqlite", writeDSN(filepath.Join(t.TempDir(), "plain.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetMaxOpenConns(1)
	if err := migrate(plain); err != nil {
		t.Fatal(err)
	}
	cols := "seq, " + eventColumns
	insert := "INSERT INTO events (" + cols + ") VALUES (" + strings.TrimSuffix(strings.Repeat("?,", strings.Count(cols, ",")+1), ",") + ")"
	for _, g := range groups {
		for i := range g {
			ev := &g[i]
			if _, err := plain.Exec(insert, appendEventArgs(nil, ev.Seq, ev, nil)...); err != nil {
				t.Fatal(err)
			}
			for _, p := range ev.Policies {
				if _, err := plain.Exec("INSERT OR IGNORE INTO event_policy VALUES (?, ?, ?)", p, ev.Time.UnixNano(), ev.Seq); err != nil {
					t.Fatal(err)
				}
			}
			for _, tag := range ev.DeviceTags {
				if _, err := plain.Exec("INSERT OR IGNORE INTO event_tag VALUES (?, ?, ?)", tag, ev.Time.UnixNano(), ev.Seq); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, q := range []string{
		"SELECT * FROM events ORDER BY seq",
		"SELECT * FROM event_policy ORDER BY seq, policy",
		"SELECT * FROM event_tag ORDER BY seq, tag",
	} {
		got, want := tableRows(t, s.wdb, q), tableRows(t, plain, q)
		if len(want) == 0 {
			t.Fatalf("%s: no rows", q)
		}
		if !reflect.DeepEqual(got, want) {
			for i := range min(len(got), len(want)) {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("%s: row %d\n got %q\nwant %q", q, i, got[i], want[i])
					break
				}
			}
			t.Errorf("%s: %d rows written, %d bound plainly", q, len(got), len(want))
		}
	}
}

// tableRows is every row of q, each value as the driver returns it (its Go
// type tells SQLite's storage class).
func tableRows(t *testing.T, db *sql.DB, q string) [][]any {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
