package activity

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Alert severities, named as in policy files.
const (
	SeverityLow    = "low"
	SeverityMedium = "medium"
	SeverityHigh   = "high"
)

// Alert is one alert raised by a policy with alert: true, or a summary of
// the alerts the policy's daily limit suppressed on one UTC day (Suppressed
// > 0, EventID zero).
type Alert struct {
	// Seq is the alert's position in the alerts table: increasing in
	// commit order, never reused. Alert cursors are expressed in it.
	Seq int64
	// ID is a UUIDv7 assigned by RaiseAlert when zero; receivers
	// de-duplicate at-least-once delivery on it.
	ID       uuid.UUID
	Time     time.Time
	PolicyID string
	Severity string // SeverityLow, SeverityMedium or SeverityHigh
	User     string
	App      string
	Host     string
	Activity string
	Message  string
	// EventID is the activity event that raised the alert.
	EventID uuid.UUID
	// Suppressed is, on a summary row, how many alerts of PolicyID the daily
	// limit held back on Day.
	Suppressed int64
	// Day is the UTC day (2006-01-02) the alert counts against.
	Day string
}

// alertCursorPrefix keeps alert cursors apart from event cursors in
// sink_cursor: an exporter named "syslog" has both.
const alertCursorPrefix = "alert/"

const alertColumns = `seq, id, ts, policy_id, severity, user_name, app, host, activity, message, event_id, suppressed, day`

// RaiseAlert stores a unless its policy already raised dailyLimit alerts on
// a's UTC day (dailyLimit <= 0: no limit). It reports whether the alert was
// stored; a suppressed one is counted, and once the day is over a summary
// row says how many were suppressed (see SummarizeAlerts). The counts are
// in the database, so a restart does not reset the limit. a.Time defaults
// to now and a.ID to a new UUIDv7.
//
// It writes on the store's one write connection, so it waits for a group
// commit in progress; alerts are rare next to events.
func (s *Store) RaiseAlert(a Alert, dailyLimit int) (raised bool, err error) {
	if a.PolicyID == "" {
		return false, errors.New("raise alert: empty policy id")
	}
	now := time.Now()
	if a.Time.IsZero() {
		a.Time = now
	}
	if a.ID == (uuid.UUID{}) {
		if a.ID, err = uuid.NewV7(); err != nil {
			return false, fmt.Errorf("alert id: %w", err)
		}
	}
	a.Day = a.Time.UTC().Format(time.DateOnly)
	a.Suppressed = 0

	if s.isClosed() {
		return false, ErrClosed
	}
	tx, err := s.wdb.Begin()
	if err != nil {
		return false, fmt.Errorf("raise alert %s: %w", a.PolicyID, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var count int64
	err = tx.QueryRow("SELECT raised FROM alert_budget WHERE policy_id = ? AND day = ?", a.PolicyID, a.Day).Scan(&count)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("raise alert %s: read daily count: %w", a.PolicyID, err)
	}
	raised = dailyLimit <= 0 || count < int64(dailyLimit)
	r, sup := 0, 0
	if raised {
		r = 1
		if err = insertAlert(tx, &a); err != nil {
			return false, err
		}
	} else {
		sup = 1
	}
	if _, err = tx.Exec(`INSERT INTO alert_budget (policy_id, day, raised, suppressed) VALUES (?, ?, ?, ?)
		ON CONFLICT (policy_id, day) DO UPDATE SET raised = raised + excluded.raised, suppressed = suppressed + excluded.suppressed`,
		a.PolicyID, a.Day, r, sup); err != nil {
		return false, fmt.Errorf("raise alert %s: count: %w", a.PolicyID, err)
	}
	if err = tx.Commit(); err != nil {
		return false, fmt.Errorf("raise alert %s: commit: %w", a.PolicyID, err)
	}
	return raised, nil
}

func insertAlert(tx *sql.Tx, a *Alert) error {
	var eventID any
	if a.EventID != (uuid.UUID{}) {
		eventID = a.EventID[:]
	}
	err := tx.QueryRow(`INSERT INTO alerts (id, ts, policy_id, severity, user_name, app, host, activity, message, event_id, suppressed, day)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		a.ID[:], a.Time.UnixNano(), a.PolicyID, a.Severity, a.User, a.App, a.Host, a.Activity, a.Message, eventID, a.Suppressed, a.Day,
	).Scan(&a.Seq)
	if err != nil {
		return fmt.Errorf("store alert of %s: %w", a.PolicyID, err)
	}
	return nil
}

// SummarizeAlerts writes one summary alert for every policy and UTC day
// before now's day on which the daily limit suppressed alerts and no summary
// was written yet, and reports how many it wrote. Open runs it, and so does
// a background tick every PruneInterval, so a summary follows the end of a
// day within that interval, even across a restart.
func (s *Store) SummarizeAlerts(now time.Time) (int, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	today := now.UTC().Format(time.DateOnly)
	tx, err := s.wdb.Begin()
	if err != nil {
		return 0, fmt.Errorf("summarize alerts: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	rows, err := tx.Query(`SELECT policy_id, day, raised, suppressed FROM alert_budget
		WHERE summarized = 0 AND day < ? AND suppressed > 0`, today)
	if err != nil {
		return 0, fmt.Errorf("summarize alerts: %w", err)
	}
	type open struct {
		policy, day        string
		raised, suppressed int64
	}
	var todo []open
	for rows.Next() {
		var o open
		if err := rows.Scan(&o.policy, &o.day, &o.raised, &o.suppressed); err != nil {
			rows.Close()
			return 0, fmt.Errorf("summarize alerts: %w", err)
		}
		todo = append(todo, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("summarize alerts: %w", err)
	}
	for _, o := range todo {
		id, err := uuid.NewV7()
		if err != nil {
			return 0, fmt.Errorf("alert id: %w", err)
		}
		end, _ := time.Parse(time.DateOnly, o.day)
		sev := SeverityLow
		_ = tx.QueryRow("SELECT severity FROM alerts WHERE policy_id = ? AND day = ? ORDER BY seq DESC LIMIT 1", o.policy, o.day).Scan(&sev)
		a := Alert{
			ID: id, Time: end.Add(24*time.Hour - time.Nanosecond), PolicyID: o.policy, Severity: sev,
			Message: fmt.Sprintf("%d alerts of policy %s suppressed on %s by the daily limit (%d raised)",
				o.suppressed, o.policy, o.day, o.raised),
			Suppressed: o.suppressed, Day: o.day,
		}
		if err := insertAlert(tx, &a); err != nil {
			return 0, err
		}
		if _, err := tx.Exec("UPDATE alert_budget SET summarized = 1 WHERE policy_id = ? AND day = ?", o.policy, o.day); err != nil {
			return 0, fmt.Errorf("summarize alerts: %w", err)
		}
	}
	// Days fully summarized (or never suppressed) are no longer needed.
	if _, err := tx.Exec("DELETE FROM alert_budget WHERE day < ? AND (summarized = 1 OR suppressed = 0)",
		now.UTC().Add(-48*time.Hour).Format(time.DateOnly)); err != nil {
		return 0, fmt.Errorf("summarize alerts: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("summarize alerts: commit: %w", err)
	}
	return len(todo), nil
}

// AlertQuery selects alerts for SearchAlerts; zero fields do not filter.
type AlertQuery struct {
	From, To time.Time // Time in [From, To)
	PolicyID string
	Severity string
	User     string
	Limit    int    // default 50, at most 1000
	After    string // AlertPage.Next of the previous page
}

// AlertPage is one page of alerts, newest first.
type AlertPage struct {
	Alerts []Alert
	Next   string
}

// SearchAlerts returns the alerts matching q, newest first (by Time, then
// Seq), paginated by key like Search.
func (s *Store) SearchAlerts(q AlertQuery) (AlertPage, error) {
	if !q.From.IsZero() && !q.To.IsZero() && q.From.After(q.To) {
		return AlertPage{}, fmt.Errorf("%w: from %s is after to %s", ErrBadQuery, q.From, q.To)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultPageSize
	}
	limit = min(limit, maxPageSize)
	var (
		where []string
		args  []any
	)
	for _, f := range []struct{ col, val string }{{"policy_id", q.PolicyID}, {"severity", q.Severity}, {"user_name", q.User}} {
		if f.val != "" {
			where, args = append(where, f.col+" = ?"), append(args, f.val)
		}
	}
	if !q.From.IsZero() {
		where, args = append(where, "ts >= ?"), append(args, q.From.UnixNano())
	}
	if !q.To.IsZero() {
		where, args = append(where, "ts < ?"), append(args, q.To.UnixNano())
	}
	if q.After != "" {
		ts, seq, err := decodePageToken(q.After)
		if err != nil {
			return AlertPage{}, err
		}
		where, args = append(where, "(ts, seq) < (?, ?)"), append(args, ts, seq)
	}
	query := "SELECT " + alertColumns + " FROM alerts"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += fmt.Sprintf(" ORDER BY ts DESC, seq DESC LIMIT %d", limit+1)
	rows, err := s.rdb.Query(query, args...)
	if err != nil {
		return AlertPage{}, fmt.Errorf("search alerts: %w", err)
	}
	alerts, err := scanAlerts(rows)
	if err != nil {
		return AlertPage{}, err
	}
	var p AlertPage
	if len(alerts) > limit {
		alerts = alerts[:limit]
		last := alerts[limit-1]
		p.Next = encodePageToken(last.Time.UnixNano(), last.Seq)
	}
	p.Alerts = alerts
	return p, nil
}

// AlertCursor is Cursor for sink's alert stream.
func (s *Store) AlertCursor(sink string) (int64, error) {
	if sink == "" {
		return 0, fmt.Errorf("%w: empty sink name", ErrBadCursor)
	}
	return s.Cursor(alertCursorPrefix + sink)
}

// ReadAlertsAfter returns up to limit alerts after sink's alert cursor,
// oldest first (limit clamped to 1..10000). It does not move the cursor.
func (s *Store) ReadAlertsAfter(sink string, limit int) ([]Alert, error) {
	after, err := s.AlertCursor(sink)
	if err != nil {
		return nil, err
	}
	limit = min(max(limit, 1), maxReadAfter)
	rows, err := s.rdb.Query("SELECT "+alertColumns+" FROM alerts WHERE seq > ? ORDER BY seq LIMIT ?", after, limit)
	if err != nil {
		return nil, fmt.Errorf("read alerts after %q: %w", sink, err)
	}
	return scanAlerts(rows)
}

// AdvanceAlerts records that sink delivered every alert up to and including
// seq. Like Advance it never moves back and cannot pass the last alert.
func (s *Store) AdvanceAlerts(sink string, seq int64) error {
	if sink == "" {
		return fmt.Errorf("%w: empty sink name", ErrBadCursor)
	}
	var last int64
	err := s.wdb.QueryRow("SELECT seq FROM sqlite_sequence WHERE name = 'alerts'").Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("advance alerts %q: %w", sink, err)
	}
	if seq < 0 || seq > last {
		return fmt.Errorf("%w: alerts of %q to %d, last alert is %d", ErrBadCursor, sink, seq, last)
	}
	_, err = s.wdb.Exec(`INSERT INTO sink_cursor (name, seq) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET seq = max(seq, excluded.seq)`, alertCursorPrefix+sink, seq)
	if err != nil {
		return fmt.Errorf("advance alerts %q: %w", sink, err)
	}
	return nil
}

func scanAlerts(rows *sql.Rows) ([]Alert, error) {
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		var (
			a           Alert
			id, eventID []byte
			ts          int64
		)
		if err := rows.Scan(&a.Seq, &id, &ts, &a.PolicyID, &a.Severity, &a.User, &a.App, &a.Host,
			&a.Activity, &a.Message, &eventID, &a.Suppressed, &a.Day); err != nil {
			return nil, fmt.Errorf("scan alert: %w", err)
		}
		var err error
		if a.ID, err = uuid.FromBytes(id); err != nil {
			return nil, fmt.Errorf("alert %d id: %w", a.Seq, err)
		}
		if len(eventID) > 0 {
			if a.EventID, err = uuid.FromBytes(eventID); err != nil {
				return nil, fmt.Errorf("alert %d event id: %w", a.Seq, err)
			}
		}
		a.Time = time.Unix(0, ts).UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	return out, nil
}

// alertLoop summarizes finished days every PruneInterval until Close.
func (s *Store) alertLoop() {
	defer close(s.alertsDone)
	tick := time.NewTicker(s.opt.PruneInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.closing:
			return
		case now := <-tick.C:
			if _, err := s.SummarizeAlerts(now); err != nil {
				s.setError(err)
			}
		}
	}
}

func (s *Store) isClosed() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.closed
}
