package activity

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// hostileTexts hold FTS5 query syntax, LIKE wildcards, quotes, non-ASCII
// and control characters in the indexed fields.
var hostileTexts = []string{
	`evil" OR "x`, `a*b.example`, `NEAR(foo bar)`, `host:col`, `-not^this`, `(paren)`, `100%_off`,
	`Ünïcödé-Straße`, "tab\there", `back\slash`, `"quoted"`, `AND OR NOT`,
}

func hostileTextEvent(i int) Event {
	ev := sampleEvent(1000 + i)
	t := hostileTexts[i%len(hostileTexts)]
	switch i % 4 {
	case 0:
		ev.Host = t
	case 1:
		ev.Path = "/" + t
	case 2:
		ev.FileName = t + ".txt"
	case 3:
		ev.User = t + "@corp.example"
	}
	return ev
}

// fillBoth writes the same events to a store with the index (opened with
// opt: every event indexed at once, or batched as in production) and one
// without.
func fillBoth(t *testing.T, opt Options) (withIndex, scan *Store) {
	t.Helper()
	opt.FlushInterval = time.Millisecond
	withIndex, _ = openTest(t, opt)
	scan, _ = openTest(t, Options{FlushInterval: time.Millisecond, noFullText: true})
	for _, s := range []*Store{withIndex, scan} {
		emitN(t, s, 0, 300)
		for i := range 2 * len(hostileTexts) {
			if err := s.Emit(hostileTextEvent(i)); err != nil {
				t.Fatal(err)
			}
		}
		waitWritten(t, s, uint64(300+2*len(hostileTexts)))
	}
	return withIndex, scan
}

var textTerms = []string{
	"host4.example", "HOST4", "report-7.pdf", "report-1", "user3@corp", "/doc/11", "/doc/299", "no-such-term",
	"os", "h", "%_", "%", "_", `"`, `" OR "`, `evil" OR "x`, `a*b`, `*`, "NEAR(foo", "NEAR", "host:col", "col",
	`-not^`, "(paren)", "100%_off", "%_off", "ünïcödé", "ÜNÏ", "straße", "tab\th", `back\slash`, `\`, `"quoted"`,
	"AND OR NOT", "AND", "x\x00y", "\xff\xfe", "corp.example", "example.com",
}

// TestFullTextMatchesScan: with the index, every search returns exactly what
// the scan returns without it, page for page, whatever the text holds.
func TestFullTextMatchesScan(t *testing.T) {
	for _, opt := range []Options{
		{ftsBatch: 1}, {ftsBatch: defaultFTSBatch},
		// A window smaller than the store, so dense trigrams are left out.
		{ftsBatch: 1, densityWindow: 64},
	} {
		withIndex, scan := fillBoth(t, opt)
		for _, term := range textTerms {
			for _, q := range []Query{{Text: term}, {Text: term, Action: "block"}, {Text: term, Policy: "p1"},
				{Text: term, From: testEpoch.Add(100 * time.Second), To: testEpoch.Add(250 * time.Second)}} {
				q.Limit = 7
				got, want := searchAll(t, withIndex, q), searchAll(t, scan, q)
				if !slices.Equal(got, want) {
					t.Errorf("%+v, %+v: index %v, scan %v", opt, q, got, want)
				}
			}
		}
		// The index served the long terms (batch 1: nothing is left to scan).
		if opt.ftsBatch == 1 {
			seqs, ok, err := withIndex.ftsCandidates("report-7.pdf")
			if err != nil || !ok || len(seqs) != 1 {
				t.Fatalf("candidates for report-7.pdf: %v %v %v", seqs, ok, err)
			}
		}
		// Every host has "hos": with the window it is left out of the
		// MATCH, a trigram of the host's number is kept.
		terms, _ := ftsTerms("host4.example")
		sparse, _, err := withIndex.sparseTerms("host4.example", terms)
		if err != nil {
			t.Fatal(err)
		}
		wantDropped := opt.densityWindow > 0
		if slices.Contains(sparse, `"hos"`) == wantDropped || !slices.Contains(sparse, `"t4."`) {
			t.Errorf("%+v: terms of host4.example %v, narrowed to %v", opt, terms, sparse)
		}
	}
}

func TestFullTextQuerySyntaxInert(t *testing.T) {
	for _, tc := range []struct {
		text string
		ok   bool
		want string
	}{
		{"ab", false, ""},
		{"abc", true, `"abc"`},
		{`a"b`, true, `"a""b"`},
		{"abcd", true, `"abc" AND "bcd"`},
		{"abcdef", true, `"abc" AND "def"`},
		{"abcdefg", true, `"abc" AND "def" AND "efg"`},
		{"abab", true, `"aba" AND "bab"`},
		{"abaaba", true, `"aba"`},
		{"x\x00yz", false, ""},
		{"\xffabc", false, ""},
		{"ÿÿ", false, ""},
	} {
		got, ok := ftsQuery(tc.text)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ftsQuery(%q) = %q, %v; want %q, %v", tc.text, got, ok, tc.want, tc.ok)
		}
	}
	// A long text is narrowed by at most maxTrigrams terms.
	q, _ := ftsQuery(strings.Repeat("abcdefghij", 20))
	if n := strings.Count(q, " AND ") + 1; n > maxTrigrams {
		t.Errorf("%d trigrams in %q", n, q)
	}
}

// The candidate statement reads the rows by seq and sorts only them.
func TestFullTextPlan(t *testing.T) {
	s, _ := openTest(t, Options{})
	for _, q := range []Query{{Text: "host4"}, {Text: "host4", User: "user1@corp.example", From: testEpoch},
		{Text: "host4", Policy: "p1", DeviceTag: "os1", Action: "block"}} {
		query, args, _, err := candidateSQL(q, []int64{1, 2, 3})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.rdb.Query("EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		if !strings.Contains(got, "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)") {
			t.Errorf("%+v: plan %q, want a lookup by seq", q, got)
		}
	}
}

// Retention removes pruned events from the index: a term of only pruned
// events finds nothing in it, one of kept events still finds them.
func TestFullTextRetention(t *testing.T) {
	s, _ := openTest(t, Options{MaxAge: time.Hour, ftsBatch: 1})
	emitN(t, s, 0, 100)
	waitWritten(t, s, 100)
	if _, err := s.Prune(testEpoch.Add(time.Hour + 50*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Events 0-49 are gone: /doc/3 and /doc/30-39 with them.
	for _, tc := range []struct {
		match string
		want  int
	}{{`"c/3"`, 0}, {`"c/7"`, 10}, {`"doc"`, 50}} {
		var n int
		if err := s.rdb.QueryRow(`SELECT count(*) FROM events_fts WHERE events_fts MATCH ?`, tc.match).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != tc.want {
			t.Errorf("index holds %d rows for %s, want %d", n, tc.match, tc.want)
		}
	}
	p, err := s.Search(Query{Text: "report-3.pdf"})
	if err != nil || len(p.Events) != 0 {
		t.Fatalf("pruned event found: %v %v", p.Events, err)
	}
	p, err = s.Search(Query{Text: "report-73.pdf"})
	if err != nil || len(p.Events) != 1 {
		t.Fatalf("kept event: %d, %v", len(p.Events), err)
	}
}

// ftsCount is how many rows of the index hold a trigram, and whether FTS5's
// own integrity check passes.
func ftsCount(t *testing.T, s *Store, trigram string) int {
	t.Helper()
	if _, err := s.wdb.Exec(`INSERT INTO events_fts (events_fts) VALUES ('integrity-check')`); err != nil {
		t.Fatalf("full-text index integrity check: %v", err)
	}
	n, err := s.IndexedWith(trigram)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Retention deletes from the index only what the index holds: events pruned
// before the writer indexed them (the tail after fts_mark) are not deleted
// from it, so the index stays sound and counts exactly what it indexes
// afterwards. The trigger gives FTS5's 'delete' the row's own text; a
// delete of a row the index never had would corrupt it.
func TestFullTextRetentionOfUnindexedEvents(t *testing.T) {
	s, _ := openTest(t, Options{MaxAge: time.Hour, ftsBatch: 40})
	emitN(t, s, 0, 100)
	waitWritten(t, s, 100)
	mark := func() (m int64) {
		if err := s.rdb.QueryRow("SELECT coalesce(max(seq), 0) FROM fts_mark").Scan(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	written := 100
	if mark() == int64(written) {
		// Every event indexed: one more stays pending (1 < ftsBatch).
		emitN(t, s, 100, 101)
		written++
		waitWritten(t, s, uint64(written))
	}
	if m := mark(); m == 0 || m >= int64(written) {
		t.Fatalf("fts_mark %d of %d events: want some indexed and some pending", m, written)
	}
	if n, m := ftsCount(t, s, "doc"), mark(); n != int(m) {
		t.Fatalf("index holds %d rows for doc before the prune, want %d (the mark)", n, m)
	}
	// Every event is past MaxAge: all go, indexed or not.
	if _, err := s.Prune(testEpoch.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := ftsCount(t, s, "doc"); n != 0 {
		t.Fatalf("index holds %d rows for doc after pruning every event", n)
	}
	emitN(t, s, 10000, 10200)
	waitWritten(t, s, uint64(written+200))
	var indexed int
	if err := s.rdb.QueryRow("SELECT count(*) FROM events WHERE seq <= ?", mark()).Scan(&indexed); err != nil {
		t.Fatal(err)
	}
	if n := ftsCount(t, s, "doc"); n != indexed || indexed < 160 {
		t.Fatalf("index holds %d rows for doc, %d events are indexed (want equal, at least 160)", n, indexed)
	}
	p, err := s.Search(Query{Text: "report-10150.pdf"})
	if err != nil || len(p.Events) != 1 {
		t.Fatalf("search after the prune: %d events, %v", len(p.Events), err)
	}
}

// A database made before the index dropped its token counts keeps its
// form (contentless_delete, deleting by seq): the store opens it as it is,
// indexes into it and prunes from it.
func TestFullTextOlderFormKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "activity.db")
	s, err := Open(path, Options{ftsBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"DROP TRIGGER events_fts_del", "DROP TABLE events_fts",
		`CREATE VIRTUAL TABLE events_fts USING fts5(host, path, file_name, user_name,
			content='', contentless_delete=1, detail=none, tokenize='trigram case_sensitive 0')`,
		`CREATE TRIGGER events_fts_del AFTER DELETE ON events BEGIN
			DELETE FROM events_fts WHERE rowid = old.seq;
		END`,
	} {
		if _, err := s.wdb.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{MaxAge: time.Hour, ftsBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var form string
	if err := s.rdb.QueryRow("SELECT sql FROM sqlite_master WHERE name = 'events_fts'").Scan(&form); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(form, "contentless_delete=1") {
		t.Fatalf("the older index was replaced: %s", form)
	}
	emitN(t, s, 0, 100)
	waitWritten(t, s, 100)
	if n := ftsCount(t, s, "doc"); n != 100 {
		t.Fatalf("older index holds %d rows for doc, want 100", n)
	}
	if _, err := s.Prune(testEpoch.Add(time.Hour + 50*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := ftsCount(t, s, "doc"); n != 50 {
		t.Fatalf("older index holds %d rows for doc after the prune, want 50", n)
	}
}
