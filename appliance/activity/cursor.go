package activity

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Sink cursors form the outbox: each exporter has a named position (a Seq)
// and reads the events after it, in commit order. An exporter advances only
// after the receiver acknowledged, so a crash repeats events rather than
// loses them (at-least-once; receivers de-duplicate on Event.ID).

// maxReadAfter bounds one ReadAfter so an exporter back from an outage reads
// its backlog in slices instead of one huge allocation.
const maxReadAfter = 10000

// Cursor returns the Seq of the last event sink name delivered; 0 for a sink
// never advanced, so a new sink starts from the oldest retained event.
func (s *Store) Cursor(name string) (int64, error) {
	if name == "" {
		return 0, fmt.Errorf("%w: empty sink name", ErrBadCursor)
	}
	var seq int64
	err := s.rdb.QueryRow("SELECT seq FROM sink_cursor WHERE name = ?", name).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read cursor %q: %w", name, err)
	}
	return seq, nil
}

// Advance records that sink name delivered every event up to and including
// seq. A cursor never moves back (a late, stale Advance is ignored), and it
// cannot pass the last stored event.
func (s *Store) Advance(name string, seq int64) error {
	if name == "" {
		return fmt.Errorf("%w: empty sink name", ErrBadCursor)
	}
	var last int64
	if err := s.wdb.QueryRow(nextSeqQuery).Scan(&last); err != nil {
		return fmt.Errorf("advance %q: %w", name, err)
	}
	last-- // the last seq handed out
	if seq < 0 || seq > last {
		return fmt.Errorf("%w: %q to %d, last stored event is %d", ErrBadCursor, name, seq, last)
	}
	_, err := s.wdb.Exec(`INSERT INTO sink_cursor (name, seq) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET seq = max(seq, excluded.seq)`, name, seq)
	if err != nil {
		return fmt.Errorf("advance %q: %w", name, err)
	}
	s.sinks.delivered(name, time.Now())
	return nil
}

// ReadAfter returns up to limit events after sink name's cursor, oldest
// first (limit is clamped to 1..10000). It does not move the cursor.
func (s *Store) ReadAfter(name string, limit int) ([]Event, error) {
	after, err := s.Cursor(name)
	if err != nil {
		return nil, err
	}
	limit = min(max(limit, 1), maxReadAfter)
	rows, err := s.rdb.Query("SELECT "+selectColumns+" FROM events e WHERE e.seq > ? ORDER BY e.seq LIMIT ?", after, limit)
	if err != nil {
		return nil, fmt.Errorf("read after %q: %w", name, err)
	}
	return scanEvents(rows)
}
