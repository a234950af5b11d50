package activity

import (
	"fmt"
	"net/netip"
	"strings"
)

// Field names an event attribute that Query.Any and Query.Not filter on.
type Field string

const (
	FieldUser      Field = "user"
	FieldApp       Field = "app"
	FieldAction    Field = "action"
	FieldActivity  Field = "activity"
	FieldClientApp Field = "client_app"
	FieldSource    Field = "source" // the client's address
	FieldHost      Field = "host"
	FieldPolicy    Field = "policy" // one of the matched policies
	FieldTag       Field = "tag"    // one of the device tags
)

// maxBoolValues bounds the values of one field in Any or Not, so a query
// stays a statement SQLite plans quickly.
const maxBoolValues = 50

// fieldColumn is the events column of a single-valued field; policies and
// tags live in side tables.
var fieldColumn = map[Field]string{
	FieldUser: "user_name", FieldApp: "app", FieldAction: "action", FieldActivity: "activity",
	FieldClientApp: "client_app", FieldSource: "source_ip", FieldHost: "host",
}

var sideTable = map[Field]struct{ table, col string }{
	FieldPolicy: {"event_policy", "policy"},
	FieldTag:    {"event_tag", "tag"},
}

// boolConditions are the OR (Any), NOT (Not, NotText) and Source parts of
// q: conditions on the rows another filter's index (or the time index)
// reads, never an index choice of their own, so they narrow a search
// without changing its plan. Both Search paths (index walk and full-text
// candidates) add them.
func boolConditions(q Query) (where []string, args []any, err error) {
	if q.Source.IsValid() {
		forms := addrForms(q.Source)
		where = append(where, "+e.source_ip IN ("+strings.TrimSuffix(strings.Repeat("?,", len(forms)), ",")+")")
		for _, f := range forms {
			args = append(args, f)
		}
	}
	for _, part := range []struct {
		m   map[Field][]string
		not bool
	}{{q.Any, false}, {q.Not, true}} {
		for _, f := range sortedFields(part.m) {
			vals := part.m[f]
			if len(vals) == 0 {
				continue
			}
			if len(vals) > maxBoolValues {
				return nil, nil, fmt.Errorf("%w: %s: at most %d values", ErrBadQuery, f, maxBoolValues)
			}
			if f == FieldSource {
				vals, err = normaliseAddrs(vals)
				if err != nil {
					return nil, nil, err
				}
			}
			marks := strings.TrimSuffix(strings.Repeat("?,", len(vals)), ",")
			var cond string
			if col, ok := fieldColumn[f]; ok {
				op := "IN"
				if part.not {
					op = "NOT IN"
				}
				cond = "+e." + col + " " + op + " (" + marks + ")"
			} else if st, ok := sideTable[f]; ok {
				cond = "EXISTS (SELECT 1 FROM " + st.table + " x WHERE x." + st.col + " IN (" + marks + ") AND x.ts = e.ts AND x.seq = e.seq)"
				if part.not {
					cond = "NOT " + cond
				}
			} else {
				return nil, nil, fmt.Errorf("%w: no field %q to filter on", ErrBadQuery, f)
			}
			where = append(where, cond)
			for _, v := range vals {
				args = append(args, v)
			}
		}
	}
	if q.NotText != "" {
		cond, targs := textCondition(q.NotText)
		where, args = append(where, "NOT "+cond), append(args, targs...)
	}
	return where, args, nil
}

// appendRest adds what both Search paths add last: the OR/NOT/source
// conditions and the page token (key is the table ordering the scan).
func appendRest(q Query, key string, where []string, args []any) ([]string, []any, error) {
	bw, bargs, err := boolConditions(q)
	if err != nil {
		return nil, nil, err
	}
	where, args = append(where, bw...), append(args, bargs...)
	if q.After != "" {
		ts, seq, err := decodePageToken(q.After)
		if err != nil {
			return nil, nil, err
		}
		where, args = append(where, "("+key+".ts, "+key+".seq) < (?, ?)"), append(args, ts, seq)
	}
	return where, args, nil
}

func sortedFields(m map[Field][]string) []Field {
	out := make([]Field, 0, len(m))
	for f := range m {
		out = append(out, f)
	}
	// Deterministic statements: the same query is the same SQL.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// normaliseAddrs gives each address in every form the store may hold it
// (a dual-stack listener reports IPv4 clients as IPv4-mapped IPv6),
// refusing what is not an address.
func normaliseAddrs(vals []string) ([]string, error) {
	out := make([]string, 0, 2*len(vals))
	for _, v := range vals {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("%w: source %q: not an IP address", ErrBadQuery, v)
		}
		out = append(out, addrForms(a)...)
	}
	return out, nil
}

func addrForms(a netip.Addr) []string {
	a = a.Unmap()
	if a.Is4() {
		return []string{a.String(), netip.AddrFrom16(a.As16()).String()}
	}
	return []string{a.String()}
}
