package activity

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// pruneChunk bounds one retention transaction: the writer shares the write
// connection, so a long delete would stall group commits and fill the queue.
const pruneChunk = 5000

// PruneResult says what one Prune deleted.
type PruneResult struct {
	Deleted int64
	// AlertsDeleted counts alerts older than MaxAge (size retention leaves
	// alerts alone: they are few and are what an operator looks for).
	AlertsDeleted int64
	// Undelivered of them were past the slowest sink's cursor: retention
	// outran an exporter and those events never left the appliance.
	Undelivered int64
}

// Prune applies retention once: events older than now-MaxAge, then the
// oldest events while the database is larger than MaxBytes. It runs in small
// transactions beside the writer. Undelivered events are deleted too: a full
// disk would stop the audit trail for everyone, so retention wins over a
// stalled exporter, and the loss is counted.
func (s *Store) Prune(now time.Time) (PruneResult, error) {
	var res PruneResult
	slowest, err := s.slowestCursor()
	if err != nil {
		return res, err
	}
	if err := s.markSeq(); err != nil {
		return res, err
	}
	maxAge, maxBytes := s.Retention()
	if maxAge > 0 {
		cutoff := now.Add(-maxAge).UnixNano()
		for {
			n, err := s.deleteChunk(&res, slowest,
				"DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts < ? ORDER BY ts LIMIT ?) RETURNING seq, ts",
				cutoff, pruneChunk)
			if err != nil {
				return res, err
			}
			if n < pruneChunk {
				break
			}
		}
	}
	if maxAge > 0 {
		r, err := s.wdb.Exec("DELETE FROM alerts WHERE ts < ?", now.Add(-maxAge).UnixNano())
		if err != nil {
			return res, fmt.Errorf("prune alerts: %w", err)
		}
		res.AlertsDeleted, _ = r.RowsAffected()
	}
	if maxBytes > 0 {
		if err := s.pruneToSize(&res, slowest, maxBytes); err != nil {
			return res, err
		}
	}
	if res.Deleted > 0 {
		if err := s.pruneRollups(); err != nil {
			return res, err
		}
	}
	s.stats.pruned.Add(uint64(res.Deleted))
	s.stats.prunedUndelivered.Add(uint64(res.Undelivered))
	if res.Deleted > 0 {
		// Give freed pages back to the file system (auto_vacuum=incremental).
		if _, err := s.wdb.Exec("PRAGMA incremental_vacuum"); err != nil {
			return res, fmt.Errorf("prune: vacuum: %w", err)
		}
	}
	return res, nil
}

// pruneToSize deletes the oldest events (by Seq) in chunks sized from the
// average row cost until the used pages fit MaxBytes.
func (s *Store) pruneToSize(res *PruneResult, slowest sql.NullInt64, maxBytes int64) error {
	for {
		used, err := s.usedBytes()
		if err != nil {
			return err
		}
		if used <= maxBytes {
			return nil
		}
		var lo, hi sql.NullInt64
		if err := s.wdb.QueryRow("SELECT min(seq), max(seq) FROM events").Scan(&lo, &hi); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		if !lo.Valid {
			return nil // empty: the rest is schema and free pages
		}
		rows := hi.Int64 - lo.Int64 + 1
		perRow := max(used/rows, 1)
		n := min(max((used-maxBytes)/perRow+1, 1), pruneChunk)
		if _, err := s.deleteChunk(res, slowest,
			"DELETE FROM events WHERE seq < ? RETURNING seq, ts", lo.Int64+n); err != nil {
			return err
		}
	}
}

// deleteChunk runs one DELETE … RETURNING seq, ts and counts what it
// removed. The newest time deleted goes to prunedMax before pruneGen
// moves: the top lists' cache drops the ranges it reached (rollup.go).
func (s *Store) deleteChunk(res *PruneResult, slowest sql.NullInt64, query string, args ...any) (int64, error) {
	n, newest, err := s.deleteRows(res, slowest, query, args...)
	if n > 0 {
		// After the statement ended (and committed), so a reader that
		// sees the old generation read the rows before they went.
		if newest > s.prunedMax.Load() {
			s.prunedMax.Store(newest)
		}
		s.pruneGen.Add(1)
	}
	return n, err
}

func (s *Store) deleteRows(res *PruneResult, slowest sql.NullInt64, query string, args ...any) (n, newest int64, err error) {
	rows, err := s.wdb.Query(query, args...)
	if err != nil {
		return 0, 0, fmt.Errorf("prune: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq, ts int64
		if err := rows.Scan(&seq, &ts); err != nil {
			return n, newest, fmt.Errorf("prune: %w", err)
		}
		n++
		newest = max(newest, ts)
		if slowest.Valid && seq > slowest.Int64 {
			res.Undelivered++
		}
	}
	res.Deleted += n
	if err := rows.Err(); err != nil {
		return n, newest, fmt.Errorf("prune: %w", err)
	}
	return n, newest, rows.Close()
}

// markSeq records the highest stored seq in seq_mark before retention
// deletes anything: whatever it deletes next is at or below the mark, so the
// seq of a deleted event is never handed out again (nextSeqQuery), though the
// table no longer holds it. Once per Prune, not per group commit.
func (s *Store) markSeq() error {
	_, err := s.wdb.Exec(`INSERT INTO seq_mark (id, seq) SELECT 1, max(seq) FROM events WHERE true HAVING max(seq) IS NOT NULL
		ON CONFLICT (id) DO UPDATE SET seq = max(seq, excluded.seq)`)
	if err != nil {
		return fmt.Errorf("prune: mark seq: %w", err)
	}
	return nil
}

// slowestCursor is the lowest sink cursor; invalid when there are no sinks.
func (s *Store) slowestCursor() (sql.NullInt64, error) {
	var seq sql.NullInt64
	err := s.wdb.QueryRow("SELECT min(seq) FROM sink_cursor").Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return seq, fmt.Errorf("prune: read cursors: %w", err)
	}
	return seq, nil
}

// usedBytes is the database size without its free pages.
func (s *Store) usedBytes() (int64, error) {
	var pages, free, size int64
	err := s.wdb.QueryRow(
		"SELECT p.page_count, f.freelist_count, s.page_size FROM pragma_page_count p, pragma_freelist_count f, pragma_page_size s",
	).Scan(&pages, &free, &size)
	if err != nil {
		return 0, fmt.Errorf("prune: database size: %w", err)
	}
	return (pages - free) * size, nil
}

// Retention is the retention in force: events older than maxAge and the
// oldest past maxBytes are deleted (0: that limit is off).
func (s *Store) Retention() (maxAge time.Duration, maxBytes int64) {
	return time.Duration(s.maxAge.Load()), s.maxBytes.Load()
}

// SetRetention replaces the retention while the store runs (a reload of
// activity.max_age and max_bytes); a limit set or tightened is applied
// at once, then every PruneInterval. Negative values are refused.
func (s *Store) SetRetention(maxAge time.Duration, maxBytes int64) error {
	if maxAge < 0 || maxBytes < 0 {
		return fmt.Errorf("retention: max_age %s and max_bytes %d must not be negative", maxAge, maxBytes)
	}
	s.maxAge.Store(int64(maxAge))
	s.maxBytes.Store(maxBytes)
	select {
	case s.pruneNow <- struct{}{}:
	default:
	}
	return nil
}

// pruneLoop applies retention every PruneInterval (and when SetRetention
// asks) until Close; while both limits are off it does nothing.
func (s *Store) pruneLoop() {
	defer close(s.prunerDone)
	tick := time.NewTicker(s.opt.PruneInterval)
	defer tick.Stop()
	for {
		var now time.Time
		select {
		case <-s.closing:
			return
		case now = <-tick.C:
		case <-s.pruneNow:
			now = time.Now()
		}
		if maxAge, maxBytes := s.Retention(); maxAge > 0 || maxBytes > 0 {
			if _, err := s.Prune(now); err != nil {
				s.stats.pruneErrors.Add(1)
				s.setError(err)
			}
		}
	}
}
