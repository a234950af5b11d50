package activity

import (
	"database/sql"
	"fmt"
)

// What the external tests (package activity_test, which may import
// scalefixture) need of the store's inside.

// ProcessCPU is processCPU (bench_test.go).
var ProcessCPU = processCPU

// WithoutFullText is o for a store that does not index new events: the
// ingest cost of the index is the difference.
func WithoutFullText(o Options) Options {
	o.noFullText = true
	return o
}

// IndexedWith is how many events the full-text index holds for one trigram.
func (s *Store) IndexedWith(trigram string) (int, error) {
	var n int
	err := s.rdb.QueryRow(`SELECT count(*) FROM events_fts WHERE events_fts MATCH ?`, `"`+trigram+`"`).Scan(&n)
	return n, err
}

// HourlyRollupTotal is the sum of the hourly counts rollup.
func (s *Store) HourlyRollupTotal() (int, error) {
	var n int
	err := s.rdb.QueryRow(`SELECT coalesce(sum(n), 0) FROM rollup_counts WHERE span = 3600`).Scan(&n)
	return n, err
}

// ToSchema5 removes what schema 6 added, as a version 5 store was.
func ToSchema5(path string) error {
	db, err := sql.Open("sqlite", writeDSN(path))
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range []string{
		"DROP TRIGGER events_fts_del", "DROP TRIGGER events_rollup_del", "DROP TABLE events_fts", "DROP TABLE fts_mark",
		"DROP TABLE rollup_counts", "DROP TABLE rollup_names", "PRAGMA user_version = 5",
	} {
		if _, err := db.Exec(q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// RollupDigest sums up every rollup row by table and span: two stores
// whose rollups hold the same counts have the same digest.
func (s *Store) RollupDigest() (string, error) {
	var out string
	for _, q := range []string{
		`SELECT span, '', count(*), sum(n), 0, sum(n * (bucket % 100003)), sum(n * length(mode || action)) FROM rollup_counts WHERE n != 0 GROUP BY span ORDER BY span`,
		`SELECT span, dim, count(*), sum(n), sum(blocked), sum(n * (bucket % 100003)), sum((n + blocked) * length(name)) FROM rollup_names WHERE n != 0 GROUP BY span, dim ORDER BY span, dim`,
	} {
		rows, err := s.rdb.Query(q)
		if err != nil {
			return "", err
		}
		for rows.Next() {
			var span, rowsN, n, blocked, wb, wl int64
			var dim string
			if err := rows.Scan(&span, &dim, &rowsN, &n, &blocked, &wb, &wl); err != nil {
				rows.Close()
				return "", err
			}
			out += fmt.Sprintf("%d/%s: %d rows, %d events, %d blocked, %d, %d; ", span, dim, rowsN, n, blocked, wb, wl)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return "", err
		}
	}
	return out, nil
}
