package activity

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// schemaV3 is the version-3 layout as shipped: AUTOINCREMENT seq and six
// full indexes.
const schemaV3 = `
CREATE TABLE events (
	seq INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB NOT NULL, ts INTEGER NOT NULL, mode TEXT NOT NULL,
	user_name TEXT NOT NULL, user_groups TEXT, source_ip TEXT NOT NULL, device_tags TEXT,
	client_app TEXT NOT NULL, ja4 TEXT NOT NULL, app TEXT NOT NULL, host TEXT NOT NULL, method TEXT NOT NULL,
	path TEXT NOT NULL, activity TEXT NOT NULL, file_name TEXT NOT NULL, file_size INTEGER NOT NULL,
	file_sha256 TEXT NOT NULL, file_type TEXT NOT NULL DEFAULT '', file_label TEXT NOT NULL DEFAULT '',
	detectors TEXT, policies TEXT, action TEXT NOT NULL, reason TEXT NOT NULL,
	bytes_up INTEGER NOT NULL, bytes_down INTEGER NOT NULL, session_id TEXT NOT NULL);
CREATE INDEX events_ts         ON events(ts);
CREATE INDEX events_user       ON events(user_name, ts);
CREATE INDEX events_app        ON events(app, ts);
CREATE INDEX events_action     ON events(action, ts);
CREATE INDEX events_activity   ON events(activity, ts);
CREATE INDEX events_client_app ON events(client_app, ts);
CREATE TABLE event_policy (policy TEXT NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (policy, ts, seq)) WITHOUT ROWID;
CREATE TABLE event_tag (tag TEXT NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (tag, ts, seq)) WITHOUT ROWID;
CREATE TABLE sink_cursor (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
`

// A version-3 store whose newest events retention already deleted (so
// sqlite_sequence is ahead of max(seq)) migrates in place: AUTOINCREMENT
// leaves the table's definition, the five filter indexes become partial,
// sqlite_sequence's value carries over to seq_mark, and the next event gets
// a seq no event ever had.
func TestMigrateFromVersion3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	db, err := sql.Open("sqlite", writeDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(schemaV3); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		ev := sampleEvent(i)
		ev.ID = newEventID(ev.Time)
		args := appendEventArgs(nil, int64(i), &ev, nil)
		// A version-3 row: the columns of today less those added since.
		cols := strings.Split(strings.Join(strings.Fields("seq, "+eventColumns), ""), ",")
		for k := len(cols) - 1; k >= 0; k-- {
			if cols[k] == "client_why" {
				cols = append(cols[:k], cols[k+1:]...)
				args = append(args[:k], args[k+1:]...)
			}
		}
		q := "INSERT INTO events (" + strings.Join(cols, ", ") + ") VALUES (" + strings.TrimSuffix(strings.Repeat("?,", len(args)), ",") + ")"
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		"DELETE FROM events WHERE seq > 1", // retention took 2 and 3
		"INSERT INTO sink_cursor VALUES ('syslog', 3)",
		"PRAGMA user_version = 3",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	for round := range 2 { // the second Open finds version 4 and leaves it
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var table string
		if err := s.rdb.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if err := s.rdb.QueryRow("SELECT sql FROM sqlite_schema WHERE name = 'events'").Scan(&table); err != nil {
			t.Fatal(err)
		}
		if v != schemaVersion || strings.Contains(table, "AUTOINCREMENT") {
			t.Fatalf("round %d: version %d, events table %q", round, v, table)
		}
		for _, ix := range partialIndexes {
			var def string
			if err := s.rdb.QueryRow("SELECT sql FROM sqlite_schema WHERE name = ?", ix.name).Scan(&def); err != nil {
				t.Fatalf("index %s: %v", ix.name, err)
			}
			if want := "WHERE " + ix.col + " != '" + ix.dominant + "'"; !strings.Contains(def, want) {
				t.Errorf("index %s is %q, want it to say %q", ix.name, def, want)
			}
		}
		tk, err := s.EmitDurable(plainEvent(round))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.WaitDurable(t.Context(), tk); err != nil {
			t.Fatal(err)
		}
		evs, err := s.ReadAfter("syslog", 10)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(4 + round); len(evs) != round+1 || evs[len(evs)-1].Seq != want {
			t.Fatalf("round %d: events after the syslog cursor %+v, want the last to be seq %d", round, evs, want)
		}
		var autoRows int
		if err := s.rdb.QueryRow("SELECT count(*) FROM sqlite_sequence WHERE name = 'events'").Scan(&autoRows); err != nil {
			t.Fatal(err)
		}
		if autoRows != 0 {
			t.Errorf("round %d: sqlite_sequence still keeps events (AUTOINCREMENT still on)", round)
		}
		// The old event is still found through the rebuilt indexes.
		if p, err := s.Search(Query{User: sampleEvent(1).User}); err != nil || len(p.Events) != 1 || p.Events[0].Seq != 1 {
			t.Fatalf("round %d: old event by user: %+v %v", round, p.Events, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Sink cursors rely on a seq never being handed out twice: retention that
// empties the table, then a restart, must not let numbering start over.
func TestSeqNeverReusedAfterRetention(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	opt := Options{FlushInterval: time.Millisecond, MaxAge: time.Minute, PruneInterval: time.Hour}
	s, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	emitN(t, s, 0, 20)
	waitWritten(t, s, 20)
	if err := s.Advance("syslog", 20); err != nil {
		t.Fatal(err)
	}
	res, err := s.Prune(testEpoch.Add(time.Hour)) // every event is older than a minute
	if err != nil || res.Deleted != 20 {
		t.Fatalf("prune: %+v %v", res, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, opt); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The cursor may still name the last seq handed out, and no further.
	if err := s.Advance("syslog", 21); err == nil {
		t.Fatal("cursor advanced past the last event ever stored")
	}
	emitN(t, s, 20, 21)
	waitWritten(t, s, 1)
	evs, err := s.ReadAfter("syslog", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Seq != 21 {
		t.Fatalf("after retention emptied the table and a restart: %+v, want one event with seq 21", evs)
	}
}
