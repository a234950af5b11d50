package activity

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// PolicyHits is how often one policy matched since a time, and when it
// matched last (ever, not only since then; zero if never).
type PolicyHits struct {
	Count   int
	LastHit time.Time
}

// MaxPolicyHitIDs bounds one PolicyHits call.
const MaxPolicyHitIDs = 10000

// PolicyHits counts, for each policy id, the recorded events whose matched
// policies include it since since, and finds its last hit. Each id costs
// two ranges of the event_policy key (policy, ts, seq), so the cost grows
// with the hits in the window, not with the store.
func (s *Store) PolicyHits(ids []string, since time.Time) (map[string]PolicyHits, error) {
	if len(ids) > MaxPolicyHitIDs {
		return nil, fmt.Errorf("%w: %d policy ids, at most %d", ErrBadQuery, len(ids), MaxPolicyHitIDs)
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	out := make(map[string]PolicyHits, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	conn, err := s.rdb.Conn(context.Background())
	if err != nil {
		return nil, fmt.Errorf("policy hits: %w", err)
	}
	defer conn.Close()
	stmt, err := conn.PrepareContext(context.Background(), `SELECT
		(SELECT count(*) FROM event_policy WHERE policy = ?1 AND ts >= ?2),
		(SELECT max(ts) FROM event_policy WHERE policy = ?1)`)
	if err != nil {
		return nil, fmt.Errorf("policy hits: %w", err)
	}
	defer stmt.Close()
	from := since.UnixNano()
	if since.IsZero() {
		from = 0
	}
	for _, id := range ids {
		var h PolicyHits
		var last sql.NullInt64
		if err := stmt.QueryRow(id, from).Scan(&h.Count, &last); err != nil {
			return nil, fmt.Errorf("policy hits of %q: %w", id, err)
		}
		if last.Valid {
			h.LastHit = time.Unix(0, last.Int64).UTC()
		}
		out[id] = h
	}
	return out, nil
}
