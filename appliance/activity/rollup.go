package activity

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Rollups (schema 6) keep what the dashboard draws, so it never reads a
// week of events:
//   - rollup_counts: events per minute and per hour, by mode and action;
//   - rollup_names: events and blocked events per hour and per UTC day, by
//     user and by app (empty names are not counted, as the top lists never
//     showed them).
//
// The writer adds a group's counts in the group's transaction (insert.go),
// one INSERT … SELECT … ON CONFLICT per table and span over the rows just
// written; retention subtracts each deleted event (trigger below) and then
// drops the buckets older than the oldest event left. The counts are exact:
// the same numbers a GROUP BY over events gives, for any range whose ends
// fall on the span's boundaries.
const rollupSchema = `
CREATE TABLE IF NOT EXISTS rollup_counts (
	span   INTEGER NOT NULL, -- bucket length in seconds: 60 or 3600
	bucket INTEGER NOT NULL, -- its start, Unix seconds
	mode   TEXT    NOT NULL,
	action TEXT    NOT NULL,
	n      INTEGER NOT NULL,
	PRIMARY KEY (span, bucket, mode, action)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_names (
	span    INTEGER NOT NULL, -- 3600 or 86400
	dim     TEXT    NOT NULL, -- 'user' or 'app'
	bucket  INTEGER NOT NULL,
	name    TEXT    NOT NULL,
	n       INTEGER NOT NULL,
	blocked INTEGER NOT NULL,
	PRIMARY KEY (span, dim, bucket, name)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS events_rollup_del AFTER DELETE ON events BEGIN
	UPDATE rollup_counts SET n = n - 1 WHERE span = 60 AND bucket = old.ts / 60000000000 * 60
		AND mode = old.mode AND action = old.action;
	UPDATE rollup_counts SET n = n - 1 WHERE span = 3600 AND bucket = old.ts / 3600000000000 * 3600
		AND mode = old.mode AND action = old.action;
	UPDATE rollup_names SET n = n - 1, blocked = blocked - (old.action = 'block')
		WHERE span = 3600 AND dim = 'user' AND bucket = old.ts / 3600000000000 * 3600 AND name = old.user_name;
	UPDATE rollup_names SET n = n - 1, blocked = blocked - (old.action = 'block')
		WHERE span = 86400 AND dim = 'user' AND bucket = old.ts / 86400000000000 * 86400 AND name = old.user_name;
	UPDATE rollup_names SET n = n - 1, blocked = blocked - (old.action = 'block')
		WHERE span = 3600 AND dim = 'app' AND bucket = old.ts / 3600000000000 * 3600 AND name = old.app;
	UPDATE rollup_names SET n = n - 1, blocked = blocked - (old.action = 'block')
		WHERE span = 86400 AND dim = 'app' AND bucket = old.ts / 86400000000000 * 86400 AND name = old.app;
END;
`

// rollupFill adds the counts of the events a condition on seq selects (%s:
// "seq >= ?" for a group, a range of seqs for a migration): the unary +
// keeps the planner on the seq range rather than a partial index. Timestamps
// are after 1970, so integer division is the floor.
var rollupFill = func() []string {
	var out []string
	for _, span := range []int{60, 3600} {
		out = append(out, fmt.Sprintf(`INSERT INTO rollup_counts (span, bucket, mode, action, n)
	SELECT %[1]d, ts / %[2]d * %[1]d, mode, action, count(*) FROM events WHERE %%s GROUP BY 2, 3, 4
	ON CONFLICT DO UPDATE SET n = n + excluded.n`, span, int64(span)*1e9))
	}
	for _, span := range []int{3600, 86400} {
		for _, d := range []struct{ dim, col string }{{"user", "user_name"}, {"app", "app"}} {
			out = append(out, fmt.Sprintf(`INSERT INTO rollup_names (span, dim, bucket, name, n, blocked)
	SELECT %[1]d, '%[3]s', ts / %[2]d * %[1]d, %[4]s, count(*), sum(action = 'block') FROM events
	WHERE %%s AND +%[4]s != '' GROUP BY 3, 4
	ON CONFLICT DO UPDATE SET n = n + excluded.n, blocked = blocked + excluded.blocked`, span, int64(span)*1e9, d.dim, d.col))
		}
	}
	return out
}()

// rollupFromEvents are the rollups a migration reads from the events
// (rollupFill's minute counts and hourly names); rollupFromFiner the rest,
// each summed from the finer span of its table over a range of buckets
// (two ?, Unix seconds on day boundaries): an hour of minute buckets, a day
// of hour buckets. Those are the numbers rollupFill gives, from rows that
// are far fewer and narrower than the events: the migration reads the
// events table four times instead of six.
var (
	rollupFromEvents = []string{rollupFill[0], rollupFill[2], rollupFill[3]}
	rollupFromFiner  = []string{
		`INSERT INTO rollup_counts (span, bucket, mode, action, n)
	SELECT 3600, bucket / 3600 * 3600, mode, action, sum(n) FROM rollup_counts
	WHERE span = 60 AND bucket >= ? AND bucket < ? GROUP BY 2, 3, 4
	ON CONFLICT DO UPDATE SET n = n + excluded.n`,
		`INSERT INTO rollup_names (span, dim, bucket, name, n, blocked)
	SELECT 86400, dim, bucket / 86400 * 86400, name, sum(n), sum(blocked) FROM rollup_names
	WHERE span = 3600 AND dim IN ('user', 'app') AND bucket >= ? AND bucket < ? GROUP BY 2, 3, 4
	ON CONFLICT DO UPDATE SET n = n + excluded.n, blocked = blocked + excluded.blocked`,
	}
)

// pruneRollups drops the buckets that end before the oldest stored event:
// retention's trigger has brought them to zero.
func (s *Store) pruneRollups() error {
	if !s.feat.rollups {
		return nil
	}
	var oldest sql.NullInt64
	if err := s.wdb.QueryRow("SELECT min(ts) FROM events").Scan(&oldest); err != nil {
		return fmt.Errorf("prune rollups: %w", err)
	}
	cut := time.Now().Unix()
	if oldest.Valid {
		cut = oldest.Int64 / 1e9
	}
	for _, q := range []string{
		"DELETE FROM rollup_counts WHERE span = 60 AND bucket < ? - 60",
		"DELETE FROM rollup_counts WHERE span = 3600 AND bucket < ? - 3600",
		"DELETE FROM rollup_names WHERE span = 3600 AND dim = 'user' AND bucket < ? - 3600",
		"DELETE FROM rollup_names WHERE span = 3600 AND dim = 'app' AND bucket < ? - 3600",
		"DELETE FROM rollup_names WHERE span = 86400 AND dim = 'user' AND bucket < ? - 86400",
		"DELETE FROM rollup_names WHERE span = 86400 AND dim = 'app' AND bucket < ? - 86400",
	} {
		if _, err := s.wdb.Exec(q, cut); err != nil {
			return fmt.Errorf("prune rollups: %w", err)
		}
	}
	return nil
}

// Count is the number of events in one bucket with one mode and action.
type Count struct {
	Bucket       time.Time // start of the bucket
	Mode, Action string
	N            int64
}

// Counts returns the events in [from, to) per bucket of length bucket, mode
// and action, from the rollups: the dashboard's charts. from and to must
// fall on minute boundaries and bucket be a whole number of minutes; a
// bucket that is a whole number of hours, with from on an hour, reads the
// hourly rollup. Buckets are aligned on from.
func (s *Store) Counts(from, to time.Time, bucket time.Duration) ([]Count, error) {
	if bucket < time.Minute || bucket%time.Minute != 0 || from.Unix()%60 != 0 || to.Unix()%60 != 0 || !from.Before(to) {
		return nil, fmt.Errorf("%w: counts from %s to %s by %s: minute boundaries", ErrBadQuery, from, to, bucket)
	}
	if !s.feat.rollups {
		return nil, fmt.Errorf("%w: store without rollups", ErrBadQuery)
	}
	span := int64(60)
	if bucket%time.Hour == 0 && from.Unix()%3600 == 0 && to.Unix()%3600 == 0 {
		span = 3600
	}
	f, t, b := from.Unix(), to.Unix(), int64(bucket/time.Second)
	rows, err := s.rdb.Query(`SELECT (bucket - ?) / ?, mode, action, sum(n) FROM rollup_counts
		WHERE span = ? AND bucket >= ? AND bucket < ? GROUP BY 1, 2, 3`, f, b, span, f, t)
	if err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	defer rows.Close()
	var out []Count
	for rows.Next() {
		var (
			i int64
			c Count
		)
		if err := rows.Scan(&i, &c.Mode, &c.Action, &c.N); err != nil {
			return nil, fmt.Errorf("counts: %w", err)
		}
		if c.N == 0 {
			continue
		}
		c.Bucket = time.Unix(f+i*b, 0).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	return out, nil
}

// NameCount is one row of a top list.
type NameCount struct {
	Name       string
	N, Blocked int64
}

// Top returns the n names of dim ("user" or "app") with the most events in
// [from, to), most first (ties by name), with their counts and blocked
// counts: exact, the numbers a GROUP BY over events would give. from and to
// must fall on minute boundaries.
//
// A range is summed from the day rollup for whole UTC days, the hour rollup
// for the remaining whole hours and the events themselves for the
// remaining minutes (under two hours). A week of 10,000 active users is
// still a few hundred thousand rows, so the sums of each range asked for
// are kept (topCache) and moved forward with the clock: the next call reads
// only the minutes that left the range and the hours that entered it.
func (s *Store) Top(dim string, from, to time.Time, n int) ([]NameCount, error) {
	col, ok := map[string]string{"user": "user_name", "app": "app"}[dim]
	if !ok {
		return nil, fmt.Errorf("%w: top of %q: user or app", ErrBadQuery, dim)
	}
	if from.Unix()%60 != 0 || to.Unix()%60 != 0 || !from.Before(to) {
		return nil, fmt.Errorf("%w: top from %s to %s: minute boundaries", ErrBadQuery, from, to)
	}
	if !s.feat.rollups {
		return nil, fmt.Errorf("%w: store without rollups", ErrBadQuery)
	}
	sums, err := s.tops.sums(s, dim, col, from.Unix(), to.Unix())
	if err != nil {
		return nil, err
	}
	out := make([]NameCount, 0, len(sums))
	for name, c := range sums {
		if c[0] > 0 {
			out = append(out, NameCount{Name: name, N: c[0], Blocked: c[1]})
		}
	}
	slices.SortFunc(out, func(a, b NameCount) int {
		if a.N != b.N {
			if a.N > b.N {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out[:min(n, len(out))], nil
}

// addRange adds to m the counts of dim in [from, to) (Unix seconds on
// minute boundaries) with sign +1 or -1.
func (s *Store) addRange(m map[string]*[2]int64, dim, col string, from, to int64, sign int64) error {
	if from >= to {
		return nil
	}
	add := func(rows *sql.Rows, err error) error {
		if err != nil {
			return fmt.Errorf("top %s: %w", dim, err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				name       string
				n, blocked int64
			)
			if err := rows.Scan(&name, &n, &blocked); err != nil {
				return fmt.Errorf("top %s: %w", dim, err)
			}
			c := m[name]
			if c == nil {
				c = new([2]int64)
				m[name] = c
			}
			c[0] += sign * n
			c[1] += sign * blocked
			if c[0] == 0 && c[1] == 0 {
				delete(m, name)
			}
		}
		return rows.Err()
	}
	rollup := func(span, a, b int64) error {
		if a >= b {
			return nil
		}
		return add(s.rdb.Query(`SELECT name, sum(n), sum(blocked) FROM rollup_names
			WHERE span = ? AND dim = ? AND bucket >= ? AND bucket < ? GROUP BY name`, span, dim, a, b))
	}
	raw := func(a, b int64) error {
		if a >= b {
			return nil
		}
		return add(s.rdb.Query(`SELECT `+col+`, count(*), sum(action = 'block') FROM events
			WHERE ts >= ? AND ts < ? AND `+col+` != '' GROUP BY 1`, a*1e9, b*1e9))
	}
	up := func(t, span int64) int64 { return (t + span - 1) / span * span }
	down := func(t, span int64) int64 { return t / span * span }
	h0, h1 := up(from, 3600), down(to, 3600)
	if h0 >= h1 {
		return raw(from, to)
	}
	if err := raw(from, h0); err != nil {
		return err
	}
	if err := raw(h1, to); err != nil {
		return err
	}
	d0, d1 := up(h0, 86400), down(h1, 86400)
	if d0 >= d1 {
		return rollup(3600, h0, h1)
	}
	if err := rollup(3600, h0, d0); err != nil {
		return err
	}
	if err := rollup(3600, d1, h1); err != nil {
		return err
	}
	return rollup(86400, d0, d1)
}

// topCache keeps, per dimension and range length, the sums of a range's
// settled part: [from, settled), where settled is an hour before the hour
// of the newest event written when they were read. Nothing is written
// there any more unless an event arrives late (its time is before the
// writer's settled hour), or retention deletes there: both advance the
// store's rollup generation (commit, Prune), which empties the cache. The
// part after settled is read afresh on every call.
type topCache struct {
	mu      sync.Mutex
	entries map[topKey]*topEntry
}

type topKey struct {
	dim  string
	span int64
}

type topEntry struct {
	gen, pruneGen uint64
	from, settled int64
	sums          map[string]*[2]int64
}

// settledBefore is the start of the hour before the hour holding hw (Unix
// nanoseconds), in Unix seconds: events are stamped when emitted, so none
// is written after an hour has passed unless it was held up.
func settledBefore(hw int64) int64 {
	if hw <= 0 {
		return 0
	}
	return hw/1e9/3600*3600 - 3600
}

func (c *topCache) sums(s *Store, dim, col string, from, to int64) (map[string]*[2]int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[topKey]*topEntry{}
	}
	// The generation first, then the high-water mark: a commit that moves
	// the mark is visible to the reads below (commit stores the mark after
	// its transaction), and a late one after them changes the generation.
	gen, pg := s.rollupGen.Load(), s.pruneGen.Load()
	settled := min(max(settledBefore(s.highWater.Load()), from), to)
	key := topKey{dim, to - from}
	e := c.entries[key]
	if e != nil && e.pruneGen != pg {
		if s.prunedMax.Load() >= e.from*1e9 {
			e = nil // retention deleted inside the kept sums
		} else {
			e.pruneGen = pg
		}
	}
	if e == nil || e.gen != gen || from < e.from || from > e.settled || settled < e.settled {
		e = &topEntry{gen: gen, pruneGen: pg, from: from, settled: from, sums: map[string]*[2]int64{}}
		c.entries[key] = e
	}
	if err := s.addRange(e.sums, dim, col, e.from, from, -1); err != nil {
		delete(c.entries, key)
		return nil, err
	}
	if err := s.addRange(e.sums, dim, col, e.settled, settled, +1); err != nil {
		delete(c.entries, key)
		return nil, err
	}
	e.from, e.settled = from, settled
	out := make(map[string]*[2]int64, len(e.sums))
	for k, v := range e.sums {
		cp := *v
		out[k] = &cp
	}
	if err := s.addRange(out, dim, col, settled, to, +1); err != nil {
		return nil, err
	}
	return out, nil
}
