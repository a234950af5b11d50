package activity

import (
	"context"
	"database/sql"
	"fmt"
)

// schemaVersion is stored in PRAGMA user_version; Open refuses a database
// written by a newer layout rather than misread it.
//
//	1: events, side tables kept by insert and delete triggers, sink cursors
//	2: side tables written by the writer (insert triggers dropped); alerts
//	3: file_type, file_label and detectors on events (session inspection)
//	4: seq without AUTOINCREMENT (high-water mark in seq_mark); the user,
//	   app, action, activity and client-app indexes are partial
//	5: client_why on events (how the client was classified)
//	6: events_fts, a trigram full-text index of host, path, file name and
//	   user (fulltext.go); rollup_counts and rollup_names, the dashboard's
//	   per-minute/hour/day counts (rollup.go); both kept by the writer in
//	   the event's transaction and by delete triggers for retention
const schemaVersion = 6

// SchemaVersion is the layout this build writes (schemaVersion), for tools
// that keep stores across runs keyed by it.
const SchemaVersion = schemaVersion

// schema is the whole layout, idempotent so Open can run it every time.
//
// seq is never reused, even after retention has emptied the table: sink
// cursors are kept in it. The writer numbers events itself (insert.go), so
// AUTOINCREMENT, which rewrote sqlite_sequence's page in every group commit,
// is not needed: retention records the highest seq it may delete in
// seq_mark before deleting, and the next seq is one past the larger of
// max(seq) and that mark (nextSeqQuery).
//
// Every search filter has an index ending in ts (and, implicitly, seq), so
// "WHERE col = ? ORDER BY ts DESC, seq DESC LIMIT n" walks the index backwards
// and stops after n rows whatever the table size. Policies and device tags are
// lists, so they get side tables with the same shape, written in the same
// transaction as their event and deleted with it by triggers.
//
// An index costs a page write per group commit for each distinct key the
// group touches, so the indexes of columns that plain traffic fills with one
// dominant value leave that value out (partialIndexes): plain allowed
// traffic writes the table, events_ts and events_app, nothing else. A search
// for the dominant value walks events_ts instead, where nearly every row
// matches (search.go).
const schema = `
CREATE TABLE IF NOT EXISTS events (
	seq         INTEGER PRIMARY KEY,
	id          BLOB    NOT NULL,
	ts          INTEGER NOT NULL,
	mode        TEXT    NOT NULL,
	user_name   TEXT    NOT NULL,
	user_groups TEXT,
	source_ip   TEXT    NOT NULL,
	device_tags TEXT,
	client_app  TEXT    NOT NULL,
	client_why  TEXT    NOT NULL DEFAULT '',
	ja4         TEXT    NOT NULL,
	app         TEXT    NOT NULL,
	host        TEXT    NOT NULL,
	method      TEXT    NOT NULL,
	path        TEXT    NOT NULL,
	activity    TEXT    NOT NULL,
	file_name   TEXT    NOT NULL,
	file_size   INTEGER NOT NULL,
	file_sha256 TEXT    NOT NULL,
	file_type   TEXT    NOT NULL DEFAULT '',
	file_label  TEXT    NOT NULL DEFAULT '',
	detectors   TEXT,
	policies    TEXT,
	action      TEXT    NOT NULL,
	reason      TEXT    NOT NULL,
	bytes_up    INTEGER NOT NULL,
	bytes_down  INTEGER NOT NULL,
	session_id  TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts         ON events(ts);
CREATE INDEX IF NOT EXISTS events_user       ON events(user_name, ts)  WHERE user_name != '';
CREATE INDEX IF NOT EXISTS events_app        ON events(app, ts)        WHERE app != '';
CREATE INDEX IF NOT EXISTS events_action     ON events(action, ts)     WHERE action != 'allow';
CREATE INDEX IF NOT EXISTS events_activity   ON events(activity, ts)   WHERE activity != '';
CREATE INDEX IF NOT EXISTS events_client_app ON events(client_app, ts) WHERE client_app != 'browser';

-- The highest seq retention ever deleted (one row, id 1).
CREATE TABLE IF NOT EXISTS seq_mark (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS event_policy (
	policy TEXT    NOT NULL,
	ts     INTEGER NOT NULL,
	seq    INTEGER NOT NULL,
	PRIMARY KEY (policy, ts, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_tag (
	tag TEXT    NOT NULL,
	ts  INTEGER NOT NULL,
	seq INTEGER NOT NULL,
	PRIMARY KEY (tag, ts, seq)
) WITHOUT ROWID;

-- Retention deletes side rows with their event. Inserts are written by the
-- writer itself (see commit): a trigger per row was a third of its time.
DROP TRIGGER IF EXISTS events_policy_add;
DROP TRIGGER IF EXISTS events_tag_add;
CREATE TRIGGER IF NOT EXISTS events_policy_del AFTER DELETE ON events
WHEN old.policies IS NOT NULL BEGIN
	DELETE FROM event_policy WHERE ts = old.ts AND seq = old.seq
		AND policy IN (SELECT value FROM json_each(old.policies));
END;
CREATE TRIGGER IF NOT EXISTS events_tag_del AFTER DELETE ON events
WHEN old.device_tags IS NOT NULL BEGIN
	DELETE FROM event_tag WHERE ts = old.ts AND seq = old.seq
		AND tag IN (SELECT value FROM json_each(old.device_tags));
END;

-- One row per exporter: the seq of the last event it delivered. Alert
-- cursors are named "alert/" + the sink's name.
CREATE TABLE IF NOT EXISTS sink_cursor (
	name TEXT PRIMARY KEY,
	seq  INTEGER NOT NULL
);

-- Alerts raised by policies with alert: true, and one summary row per
-- policy and UTC day on which the daily limit suppressed some.
CREATE TABLE IF NOT EXISTS alerts (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	id         BLOB    NOT NULL,
	ts         INTEGER NOT NULL,
	policy_id  TEXT    NOT NULL,
	severity   TEXT    NOT NULL,
	user_name  TEXT    NOT NULL,
	app        TEXT    NOT NULL,
	host       TEXT    NOT NULL,
	activity   TEXT    NOT NULL,
	message    TEXT    NOT NULL,
	event_id   BLOB,
	suppressed INTEGER NOT NULL DEFAULT 0,
	day        TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_ts     ON alerts(ts);
CREATE INDEX IF NOT EXISTS alerts_policy ON alerts(policy_id, ts);

-- The daily limit's count, persisted so a restart does not reset it.
CREATE TABLE IF NOT EXISTS alert_budget (
	policy_id  TEXT    NOT NULL,
	day        TEXT    NOT NULL, -- UTC, 2006-01-02
	raised     INTEGER NOT NULL,
	suppressed INTEGER NOT NULL,
	summarized INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (policy_id, day)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alert_budget_open ON alert_budget(summarized, day);
`

// partialIndexes are the search indexes that leave out their column's
// dominant value, with that value: the index holds the rows where
// col != dominant, and search.go adds that very term to a query so the
// planner may use it (SQLite only uses a partial index when the query's WHERE
// contains the index's condition).
var partialIndexes = []struct{ name, col, dominant string }{
	{"events_user", "user_name", ""},
	{"events_app", "app", ""},
	{"events_action", "action", "allow"},
	{"events_activity", "activity", ""},
	{"events_client_app", "client_app", "browser"},
}

// nextSeqQuery is the next event seq: past every stored event and every seq
// retention deleted (seq_mark), and past sqlite_sequence for a store whose
// events table kept AUTOINCREMENT (see migrateTo4).
const nextSeqQuery = `SELECT max(
	coalesce((SELECT max(seq) FROM events), 0),
	coalesce((SELECT seq FROM seq_mark WHERE id = 1), 0),
	coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)) + 1`

// features are the optional parts of the layout. Every store has both;
// only the ingest benchmark turns them off, to measure what each costs.
type features struct{ fullText, rollups bool }

var allFeatures = features{fullText: true, rollups: true}

// migrate creates or checks the whole layout on the write connection.
func migrate(db *sql.DB) error { return migrateWith(db, allFeatures) }

// migrateWith creates or checks the layout with the given optional parts.
func migrateWith(db *sql.DB, f features) error {
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("database schema version %d is newer than this build's %d", v, schemaVersion)
	}
	if v > 0 && v < 4 {
		if err := migrateTo4(db); err != nil {
			return fmt.Errorf("migrate to schema 4: %w", err)
		}
	}
	if _, err := db.Exec(schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	// Version 3 added columns; CREATE TABLE IF NOT EXISTS leaves an older
	// events table as it was, so add what it lacks.
	if v > 0 && v < 3 {
		for _, col := range []string{"file_type TEXT NOT NULL DEFAULT ''", "file_label TEXT NOT NULL DEFAULT ''", "detectors TEXT"} {
			if _, err := db.Exec("ALTER TABLE events ADD COLUMN " + col); err != nil {
				return fmt.Errorf("migrate to schema 3: %w", err)
			}
		}
	}
	if v > 0 && v < 5 {
		if _, err := db.Exec("ALTER TABLE events ADD COLUMN client_why TEXT NOT NULL DEFAULT ''"); err != nil {
			return fmt.Errorf("migrate to schema 5: %w", err)
		}
	}
	if f.fullText {
		if _, err := db.Exec(fullTextSchema); err != nil {
			return fmt.Errorf("create full-text index: %w", err)
		}
		if _, err := db.Exec(fullTextTuning); err != nil {
			return fmt.Errorf("tune full-text index: %w", err)
		}
	}
	if f.rollups {
		if _, err := db.Exec(rollupSchema); err != nil {
			return fmt.Errorf("create rollups: %w", err)
		}
	}
	if v > 0 && v < 6 {
		// The new index and rollups start empty: fill them from the stored
		// events in one transaction with the version, so an interrupted
		// migration runs again from the start.
		return migrateTo6(db, f)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("write schema version: %w", err)
	}
	return nil
}

// migrateTo6 fills events_fts and the rollups from the events a version 5
// store holds, and writes the version, in one transaction. It reads the
// whole table once for the index and three times for the rollups (their
// coarser spans are summed from the finer ones): at the 10M-event soak
// size it is the slow step of an upgrade (timed in TestSearchScale).
func migrateTo6(db *sql.DB, f features) (err error) {
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("migrate to schema 6: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	// In ranges of seqs: each GROUP BY sorts one range in memory
	// (temp_store=memory), not the whole table.
	var lo, hi sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT min(seq), max(seq) FROM events").Scan(&lo, &hi); err != nil {
		return fmt.Errorf("migrate to schema 6: %w", err)
	}
	var per []string
	if f.fullText {
		per = append(per, fullTextFill+" WHERE seq >= ? AND seq < ?")
	}
	if f.rollups {
		for _, q := range rollupFromEvents {
			per = append(per, fmt.Sprintf(q, "seq >= ? AND seq < ?"))
		}
	}
	var first []string
	if f.fullText {
		first = append(first, "INSERT INTO events_fts(events_fts) VALUES ('delete-all')")
	}
	if f.rollups {
		first = append(first, "DELETE FROM rollup_counts", "DELETE FROM rollup_names")
	}
	for _, q := range first {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate to schema 6: %w", err)
		}
	}
	const chunk = 250_000
	for from := lo.Int64; lo.Valid && from <= hi.Int64; from += chunk {
		for _, q := range per {
			if _, err := conn.ExecContext(ctx, q, from, from+chunk); err != nil {
				return fmt.Errorf("migrate to schema 6: %w", err)
			}
		}
	}
	if f.rollups {
		// The coarser spans from the finer, a week of buckets at a time.
		var b0, b1 sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT min(bucket), max(bucket) FROM rollup_counts WHERE span = 60").Scan(&b0, &b1); err != nil {
			return fmt.Errorf("migrate to schema 6: %w", err)
		}
		const week = 7 * 86400
		for from := b0.Int64 / 86400 * 86400; b0.Valid && from <= b1.Int64; from += week {
			for _, q := range rollupFromFiner {
				if _, err := conn.ExecContext(ctx, q, from, from+week); err != nil {
					return fmt.Errorf("migrate to schema 6: %w", err)
				}
			}
		}
	}
	last := []string{fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)}
	if f.fullText {
		last = append(last, "INSERT INTO fts_mark (id, seq) SELECT 1, coalesce(max(seq), 0) FROM events WHERE true ON CONFLICT (id) DO UPDATE SET seq = excluded.seq")
	}
	for _, q := range last {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate to schema 6: %w", err)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("migrate to schema 6: %w", err)
	}
	return nil
}

// migrateTo4 rewrites a version 1-3 store in place, in one transaction:
//   - the five full indexes are dropped; schema then creates the partial
//     ones, which reads the table once per index: the one step whose cost
//     grows with the store (timed in make test at 50k events; no soak
//     run times it at 10M);
//   - the events table's AUTOINCREMENT is removed from its definition. The
//     b-tree is the same either way (AUTOINCREMENT only makes inserts keep
//     sqlite_sequence), so the text is edited with writable_schema rather
//     than copying every row; its sqlite_sequence row becomes the seq_mark,
//     so no seq handed out before is ever handed out again.
func migrateTo4(db *sql.DB) (err error) {
	conn, err := db.Conn(context.Background())
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx := context.Background()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	for _, ix := range partialIndexes {
		if _, err := conn.ExecContext(ctx, "DROP INDEX IF EXISTS "+ix.name); err != nil {
			return err
		}
	}
	steps := []string{
		`CREATE TABLE IF NOT EXISTS seq_mark (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)`,
		`INSERT INTO seq_mark (id, seq) SELECT 1, seq FROM sqlite_sequence WHERE name = 'events'
			ON CONFLICT (id) DO UPDATE SET seq = max(seq, excluded.seq)`,
	}
	for _, q := range steps {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	var schemaVer int
	if err := conn.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&schemaVer); err != nil {
		return err
	}
	edit := []string{
		"PRAGMA writable_schema = ON",
		`UPDATE sqlite_schema SET sql = replace(sql, 'PRIMARY KEY AUTOINCREMENT', 'PRIMARY KEY')
			WHERE type = 'table' AND name = 'events'`,
		fmt.Sprintf("PRAGMA schema_version = %d", schemaVer+1),
		"PRAGMA writable_schema = OFF",
		"DELETE FROM sqlite_sequence WHERE name = 'events'",
	}
	for _, q := range edit {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}
