package activity

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// A version-1 database (side tables filled by insert triggers) opens under
// version 2: the insert triggers are dropped, old and new events are found
// by policy and tag, each side row once.
func TestMigrateFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", writeDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	v1 := `
CREATE TABLE events (
	seq INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB NOT NULL, ts INTEGER NOT NULL, mode TEXT NOT NULL,
	user_name TEXT NOT NULL, user_groups TEXT, source_ip TEXT NOT NULL, device_tags TEXT,
	client_app TEXT NOT NULL, ja4 TEXT NOT NULL, app TEXT NOT NULL, host TEXT NOT NULL, method TEXT NOT NULL,
	path TEXT NOT NULL, activity TEXT NOT NULL, file_name TEXT NOT NULL, file_size INTEGER NOT NULL,
	file_sha256 TEXT NOT NULL, policies TEXT, action TEXT NOT NULL, reason TEXT NOT NULL,
	bytes_up INTEGER NOT NULL, bytes_down INTEGER NOT NULL, session_id TEXT NOT NULL);
CREATE TABLE event_policy (policy TEXT NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (policy, ts, seq)) WITHOUT ROWID;
CREATE TABLE event_tag (tag TEXT NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (tag, ts, seq)) WITHOUT ROWID;
CREATE TRIGGER events_policy_add AFTER INSERT ON events WHEN new.policies IS NOT NULL BEGIN
	INSERT OR IGNORE INTO event_policy SELECT value, new.ts, new.seq FROM json_each(new.policies);
END;
CREATE TRIGGER events_tag_add AFTER INSERT ON events WHEN new.device_tags IS NOT NULL BEGIN
	INSERT OR IGNORE INTO event_tag SELECT value, new.ts, new.seq FROM json_each(new.device_tags);
END;
CREATE TABLE sink_cursor (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
INSERT INTO events (id, ts, mode, user_name, source_ip, device_tags, client_app, ja4, app, host, method, path,
	activity, file_name, file_size, file_sha256, policies, action, reason, bytes_up, bytes_down, session_id)
VALUES (x'0190000000007000800000000000aaaa', 1, 'suffix', 'old@corp.example', '', '["managed"]', 'browser', '', 'box',
	'h', 'GET', '/', 'view', '', 0, '', '["p-old","p-both"]', 'allow', '', 0, 0, '');
PRAGMA user_version = 1;`
	if _, err := db.Exec(v1); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev := sampleEvent(1)
	ev.Policies, ev.DeviceTags = []string{"p-both", "p-new"}, []string{"managed"}
	ev.FileType, ev.FileLabel = "application/pdf", "Confidential"
	ev.ClientWhy = "curl (exact); ua curl/7 agrees"
	ev.Detectors = []Detection{{ID: "credit_card", Count: 2, Samples: []string{"4111********1111"}}}
	if err := s.Emit(ev); err != nil {
		t.Fatal(err)
	}
	waitWritten(t, s, 1)
	for policy, want := range map[string]int{"p-old": 1, "p-both": 2, "p-new": 1} {
		p, err := s.Search(Query{Policy: policy})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) != want {
			t.Errorf("policy %s: %d events, want %d", policy, len(p.Events), want)
		}
	}
	p, _ := s.Search(Query{DeviceTag: "managed"})
	if len(p.Events) != 2 || p.Events[0].Seq != 2 {
		t.Fatalf("tag managed: %+v", p.Events)
	}
	// The version-3 columns read back on the new event, empty on the old.
	if got := p.Events[0]; got.FileType != "application/pdf" || got.FileLabel != "Confidential" || got.ClientWhy != "curl (exact); ua curl/7 agrees" ||
		len(got.Detectors) != 1 || got.Detectors[0].Count != 2 || got.Detectors[0].Samples[0] != "4111********1111" {
		t.Errorf("new event's inspection fields: %+v", got)
	}
	if old := p.Events[1]; old.FileType != "" || old.Detectors != nil {
		t.Errorf("old event gained inspection fields: %+v", old)
	}
	var triggers, v int
	if err := s.rdb.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%_add'").Scan(&triggers); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if triggers != 0 || v != schemaVersion {
		t.Fatalf("after migration: %d insert triggers, version %d", triggers, v)
	}
}
