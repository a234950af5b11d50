package activity

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Page sizes for Search.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// Query selects events for Search. Zero fields do not filter; string filters
// match exactly, except Text.
type Query struct {
	From, To time.Time // Time in [From, To)

	User      string
	App       string
	Action    string
	Activity  string
	Policy    string // one of the event's matched policies
	DeviceTag string // one of the event's device tags
	ClientApp string
	// Text matches a substring of host, path, file name or user, ignoring
	// ASCII case. A term of three characters or more is looked up in the
	// full-text index first (fulltext.go); a shorter one, or one in too many
	// events for the index to help, is checked on each row the other
	// filters' index walk reads.
	Text string

	// Source is the client's address (zero: any).
	Source netip.Addr
	// Any widens a search to several values of a field (OR within the
	// field); Not excludes events whose field has one of its values, and
	// NotText those whose host, path, file name or user contains it.
	// Fields combine with AND, with each other and with the filters above
	// (searchbool.go).
	Any, Not map[Field][]string
	NotText  string

	Limit int    // events per page: default 50, at most 1000
	After string // Page.Next of the previous page; empty for the first page
}

// Page is one page of results, newest first.
type Page struct {
	Events []Event
	// Next fetches the following (older) page; empty when there is none.
	Next string
}

// Search returns the events matching q, newest first (by Time, then Seq).
// Pagination is by key, not offset: a token names the last event returned,
// so page n costs the same as page 1 and events stored meanwhile never shift
// a page.
//
// Each equality filter has an index that also orders by time, so the first
// page is read by walking one index backwards. A policy or device-tag filter
// drives the query from its side table for the same reason.
//
// Free text is narrowed by the full-text index when it holds few enough
// rows for the term (ftsCandidates); otherwise it is checked on the rows of
// the scan, where a common term soon fills a page.
func (s *Store) Search(q Query) (Page, error) {
	query, args, limit, err := searchSQL(q)
	if err != nil {
		return Page{}, err
	}
	if q.Text != "" {
		seqs, ok, err := s.ftsCandidates(q.Text)
		if err != nil {
			return Page{}, err
		}
		if ok {
			if len(seqs) == 0 {
				return Page{}, nil
			}
			if query, args, limit, err = candidateSQL(q, seqs); err != nil {
				return Page{}, err
			}
		}
	}
	rows, err := s.rdb.Query(query, args...)
	if err != nil {
		return Page{}, fmt.Errorf("search: %w", err)
	}
	events, err := scanEvents(rows)
	if err != nil {
		return Page{}, err
	}
	var p Page
	if len(events) > limit {
		events = events[:limit]
		last := events[limit-1]
		p.Next = encodePageToken(last.Time.UnixNano(), last.Seq)
	}
	p.Events = events
	return p, nil
}

// searchSQL is Search's statement for q, with its arguments and page size.
func searchSQL(q Query) (string, []any, int, error) {
	if !q.From.IsZero() && !q.To.IsZero() && q.From.After(q.To) {
		return "", nil, 0, fmt.Errorf("%w: from %s is after to %s", ErrBadQuery, q.From, q.To)
	}
	limit := pageLimit(q.Limit)

	var (
		b     strings.Builder
		where []string
		args  []any
	)
	// key is the table whose (ts, seq) orders the scan.
	key := "e"
	b.WriteString("SELECT " + selectColumns + " FROM ")
	switch {
	case q.Policy != "":
		// CROSS JOIN pins the side table as the outer loop.
		b.WriteString("event_policy k CROSS JOIN events e ON e.seq = k.seq")
		key = "k"
		where, args = append(where, "k.policy = ?"), append(args, q.Policy)
	case q.DeviceTag != "":
		b.WriteString("event_tag k CROSS JOIN events e ON e.seq = k.seq")
		key = "k"
		where, args = append(where, "k.tag = ?"), append(args, q.DeviceTag)
	default:
		b.WriteString("events e")
	}
	if q.Policy != "" && q.DeviceTag != "" {
		where = append(where, "EXISTS (SELECT 1 FROM event_tag t WHERE t.tag = ? AND t.ts = e.ts AND t.seq = e.seq)")
		args = append(args, q.DeviceTag)
	}
	// Most selective first. Only the first filter given may use its index;
	// the others get a unary + that hides theirs from the planner. Without
	// statistics SQLite guessed wrong on user+app+action (it walked the
	// action index: 235 ms on 1M events instead of <1 ms), and ANALYZE on a
	// 10M-row table is not something to run on every start.
	//
	// The indexes are partial (schema.go): the filter that uses one also
	// states the index's condition, which the planner needs to see. A filter
	// on a column's dominant value has no index; it is checked on the rows
	// of whichever index drives the query (events_ts when none does), where
	// nearly every row matches it.
	indexed := key != "e"
	for _, f := range []struct{ col, val string }{
		{"user_name", q.User}, {"app", q.App}, {"activity", q.Activity},
		{"action", q.Action}, {"client_app", q.ClientApp},
	} {
		if f.val == "" {
			continue
		}
		col := "e." + f.col
		cond, dominant := partialCondition(f.col)
		switch {
		case indexed || f.val == dominant:
			col = "+" + col
		default:
			indexed = true
			where = append(where, cond)
		}
		where, args = append(where, col+" = ?"), append(args, f.val)
	}
	if !q.From.IsZero() {
		where, args = append(where, key+".ts >= ?"), append(args, q.From.UnixNano())
	}
	if !q.To.IsZero() {
		where, args = append(where, key+".ts < ?"), append(args, q.To.UnixNano())
	}
	if q.Text != "" {
		cond, targs := textCondition(q.Text)
		where, args = append(where, cond), append(args, targs...)
	}
	where, args, err := appendRest(q, key, where, args)
	if err != nil {
		return "", nil, 0, err
	}
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	// One extra row tells whether a next page exists without a COUNT.
	fmt.Fprintf(&b, " ORDER BY %[1]s.ts DESC, %[1]s.seq DESC LIMIT %d", key, limit+1)
	return b.String(), args, limit, nil
}

// pageLimit is the page size a Query asks for, within bounds.
func pageLimit(n int) int {
	if n <= 0 {
		return defaultPageSize
	}
	return min(n, maxPageSize)
}

// partialCondition is the WHERE clause of col's partial index, as the index
// states it (with the events alias), and the value the index leaves out.
func partialCondition(col string) (cond, dominant string) {
	for _, ix := range partialIndexes {
		if ix.col == col {
			return "e." + col + " != '" + ix.dominant + "'", ix.dominant
		}
	}
	return "true", "\x00" // not partial (no filter column is, today)
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// A page token is the (ts, seq) key of the last event of a page: opaque to
// callers so the key can change without breaking the CLI or the console.
func encodePageToken(ts, seq int64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(ts))
	binary.BigEndian.PutUint64(b[8:], uint64(seq))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func decodePageToken(tok string) (ts, seq int64, err error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != 16 {
		return 0, 0, fmt.Errorf("%w: %q", ErrBadPageToken, tok)
	}
	return int64(binary.BigEndian.Uint64(b[:8])), int64(binary.BigEndian.Uint64(b[8:])), nil
}
