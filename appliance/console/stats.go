package console

import (
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// openReadOnly opens the activity store's file for the console's own
// aggregations. query_only makes any write an error on this connection; WAL
// lets these reads run beside the store's writer without blocking it.
func openReadOnly(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("console: open activity store read-only: %w", err)
	}
	db.SetMaxOpenConns(2)
	return db, nil
}

// Ranges the dashboard offers, with the bucket each is drawn in.
var dashboardRanges = []struct {
	Name   string
	Span   time.Duration
	Bucket time.Duration
}{
	{"1h", time.Hour, time.Minute},
	{"24h", 24 * time.Hour, 15 * time.Minute},
	{"7d", 7 * 24 * time.Hour, 2 * time.Hour},
	{"30d", 30 * 24 * time.Hour, 6 * time.Hour},
}

func dashboardRange(name string) (string, time.Duration, time.Duration) {
	for _, r := range dashboardRanges {
		if r.Name == name {
			return r.Name, r.Span, r.Bucket
		}
	}
	return "24h", 24 * time.Hour, 15 * time.Minute
}

// Dashboard is the data behind the dashboard page and /api/v1/dashboard.
type Dashboard struct {
	Range  string    `json:"range"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Bucket int64     `json:"bucket_seconds"`
	// Times are the buckets' starts (Unix seconds); every series has one
	// count per bucket.
	Times    []int64          `json:"times"`
	ByAction map[string][]int `json:"by_action"`
	ByMode   map[string][]int `json:"by_mode"`
	Total    int              `json:"total"`
	Blocked  int              `json:"blocked"`
	Monitor  int              `json:"monitored"`
	TopApps  []TopEntry       `json:"top_apps"`
	TopUsers []TopEntry       `json:"top_users"`
	// RecentBlocks are the newest blocked events of the range.
	RecentBlocks []EventJSON       `json:"recent_blocks"`
	Store        StoreHealth       `json:"store"`
	Appliance    map[string]string `json:"appliance,omitempty"`
}

// TopEntry is one row of a top list.
type TopEntry struct {
	Name    string `json:"name"`
	Count   int    `json:"count"`
	Blocked int    `json:"blocked"`
}

// StoreHealth is the event store's state: lag and losses matter to an
// auditor as much as the counts.
type StoreHealth struct {
	Healthy       bool    `json:"healthy"`
	Written       uint64  `json:"written"`
	QueueDepth    int     `json:"queue_depth"`
	QueueCapacity int     `json:"queue_capacity"`
	LastCommitLag float64 `json:"last_commit_lag_ms"`
	Dropped       uint64  `json:"dropped"`
	Refused       uint64  `json:"refused"`
	WriteErrors   uint64  `json:"write_errors"`
	PrunedUnsent  uint64  `json:"pruned_undelivered"`
}

func (c *Console) dashboard(rangeName string) (*Dashboard, error) {
	name, span, bucket := dashboardRange(rangeName)
	now := c.opt.Now()
	to := now.Truncate(bucket).Add(bucket)
	from := to.Add(-span)
	d := &Dashboard{Range: name, From: from.UTC(), To: to.UTC(), Bucket: int64(bucket / time.Second),
		ByAction: map[string][]int{}, ByMode: map[string][]int{}}
	n := int(span / bucket)
	for i := range n {
		d.Times = append(d.Times, from.Add(time.Duration(i)*bucket).Unix())
	}
	switch {
	case c.opt.Activity != nil:
		// The store's rollups: exact, and independent of how many events
		// the range holds (activity/rollup.go).
		if err := c.rollupBuckets(d, from, to, bucket, n); err != nil {
			return nil, err
		}
		var err error
		if d.TopApps, err = c.rollupTop("app", from, to); err != nil {
			return nil, err
		}
		if d.TopUsers, err = c.rollupTop("user", from, to); err != nil {
			return nil, err
		}
	case c.ro != nil:
		if err := c.countBuckets(d, from, to, bucket, n); err != nil {
			return nil, err
		}
		var err error
		if d.TopApps, err = c.top("app", from, to); err != nil {
			return nil, err
		}
		if d.TopUsers, err = c.top("user_name", from, to); err != nil {
			return nil, err
		}
	}
	if c.opt.Activity != nil {
		p, err := c.opt.Activity.Search(activity.Query{Action: "block", From: from, To: to, Limit: 8})
		if err != nil {
			return nil, err
		}
		for i := range p.Events {
			d.RecentBlocks = append(d.RecentBlocks, eventJSON(&p.Events[i]))
		}
		st := c.opt.Activity.Stats()
		d.Store = StoreHealth{Healthy: st.Healthy, Written: st.Written, QueueDepth: st.QueueDepth, QueueCapacity: st.QueueCapacity,
			LastCommitLag: float64(st.LastCommitLag.Microseconds()) / 1000, Dropped: st.Dropped, Refused: st.Refused,
			WriteErrors: st.WriteErrors, PrunedUnsent: st.PrunedUndelivered}
	}
	if c.opt.Health != nil {
		d.Appliance = c.opt.Health()
	}
	return d, nil
}

// prepareDashboard computes every dashboard range once, before the console
// serves: the top lists of a range are sums over its rollups (a week of
// 10,000 active users is hundreds of thousands of rows, seconds at 10
// million events), which the store keeps and then moves forward with the
// clock (activity.Store.Top). Done here, the first render after a start
// reads only what changed since. A failure is logged: the page reports it
// again when asked.
func (c *Console) prepareDashboard() {
	if c.opt.Activity == nil {
		return
	}
	start := time.Now()
	for _, r := range dashboardRanges {
		if _, err := c.dashboard(r.Name); err != nil {
			c.opt.Log.Warn("prepare the dashboard", "range", r.Name, "err", err)
			return
		}
	}
	c.opt.Log.Info("dashboard prepared", "took", time.Since(start).Round(time.Millisecond))
}

// addCount adds count events of action and mode to bucket b of d.
func (d *Dashboard) addCount(b int64, n int, action, mode string, count int) {
	if b < 0 || b >= int64(n) {
		return
	}
	add := func(m map[string][]int, k string) {
		if k == "" {
			k = "none"
		}
		s, ok := m[k]
		if !ok {
			s = make([]int, n)
			m[k] = s
		}
		s[b] += count
	}
	add(d.ByAction, action)
	add(d.ByMode, mode)
	d.Total += count
	switch action {
	case "block":
		d.Blocked += count
	case "monitor":
		d.Monitor += count
	}
}

// rollupBuckets reads the counts per bucket, action and mode from the
// store's minute or hour rollup.
func (c *Console) rollupBuckets(d *Dashboard, from, to time.Time, bucket time.Duration, n int) error {
	counts, err := c.opt.Activity.Counts(from, to, bucket)
	if err != nil {
		return fmt.Errorf("dashboard counts: %w", err)
	}
	for _, k := range counts {
		d.addCount(int64(k.Bucket.Sub(from)/bucket), n, k.Action, k.Mode, int(k.N))
	}
	return nil
}

// rollupTop is the top eight of dim ("user" or "app") from the store.
func (c *Console) rollupTop(dim string, from, to time.Time) ([]TopEntry, error) {
	top, err := c.opt.Activity.Top(dim, from, to, 8)
	if err != nil {
		return nil, fmt.Errorf("dashboard top %s: %w", dim, err)
	}
	var out []TopEntry
	for _, e := range top {
		out = append(out, TopEntry{Name: e.Name, Count: int(e.N), Blocked: int(e.Blocked)})
	}
	return out, nil
}

// countBuckets reads the counts per bucket, action and mode in one pass
// over the range of the time index (a console given only the store's file).
func (c *Console) countBuckets(d *Dashboard, from, to time.Time, bucket time.Duration, n int) error {
	rows, err := c.ro.Query(`SELECT (ts - ?) / ?, action, mode, count(*) FROM events
		WHERE ts >= ? AND ts < ? GROUP BY 1, 2, 3`,
		from.UnixNano(), int64(bucket), from.UnixNano(), to.UnixNano())
	if err != nil {
		return fmt.Errorf("dashboard counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			b            int64
			action, mode string
			count        int
		)
		if err := rows.Scan(&b, &action, &mode, &count); err != nil {
			return err
		}
		d.addCount(b, n, action, mode, count)
	}
	return rows.Err()
}

func (c *Console) top(col string, from, to time.Time) ([]TopEntry, error) {
	// col is one of two constants, never input.
	rows, err := c.ro.Query(`SELECT `+col+`, count(*) AS n, sum(action = 'block') FROM events
		WHERE ts >= ? AND ts < ? AND `+col+` <> '' GROUP BY 1 ORDER BY n DESC LIMIT 8`, from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("dashboard top %s: %w", col, err)
	}
	defer rows.Close()
	var out []TopEntry
	for rows.Next() {
		var e TopEntry
		if err := rows.Scan(&e.Name, &e.Count, &e.Blocked); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// policyHits is how often each policy matched since from, and when last.
type policyHits struct {
	Count int
	Last  time.Time
}

func (c *Console) policyHits(ids []string, from time.Time) map[string]policyHits {
	out := map[string]policyHits{}
	if c.ro == nil {
		return out
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	for _, id := range ids {
		var n int
		var last sql.NullInt64
		// The side table's key is (policy, ts, seq): one index range each.
		if err := c.ro.QueryRow(`SELECT count(*), max(ts) FROM event_policy WHERE policy = ? AND ts >= ?`, id, from.UnixNano()).Scan(&n, &last); err != nil {
			continue
		}
		h := policyHits{Count: n}
		if last.Valid {
			h.Last = time.Unix(0, last.Int64).UTC()
		}
		if n == 0 {
			// Last hit ever, even before the window.
			if err := c.ro.QueryRow(`SELECT max(ts) FROM event_policy WHERE policy = ?`, id).Scan(&last); err == nil && last.Valid {
				h.Last = time.Unix(0, last.Int64).UTC()
			}
		}
		out[id] = h
	}
	return out
}
