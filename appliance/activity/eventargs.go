package activity

import (
	"encoding/json"
	mbits "math/bits"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// eventInsertWidth is the number of values per event row: seq and the
// eventColumns.
var eventInsertWidth = len(eventRowNames)

// The driver spends more on a bound text value than SQLite spends storing
// it: a C copy (malloc under the C heap's lock), the bind under the
// connection's mutex, then a free and an unbind after the statement ran.
// Binding was a quarter of the writer's CPU (pprof, BenchmarkCommitGroup).
// So the writer binds NULL for a NOT NULL text column holding its usual
// value, and the INSERT writes that value itself (coalesce): the empty string for most
// columns, and the dominant value partialIndexes names for action and
// client_app. What is stored is the same text either way
// (TestWriterStoresWhatIsBound); plain traffic leaves nine or ten of its
// eighteen text columns at their usual value.
type textCol int

// The NOT NULL text columns of events, in eventColumns order.
const (
	colMode textCol = iota
	colUser
	colSourceIP
	colClientApp
	colClientWhy
	colJA4
	colApp
	colHost
	colMethod
	colPath
	colActivity
	colFileName
	colFileSHA256
	colFileType
	colFileLabel
	colAction
	colReason
	colSessionID
	numTextCols
)

// textColumns names them; recurring marks those whose values repeat from
// event to event, which the writer boxes once (argBoxer).
var textColumns = [numTextCols]struct {
	name      string
	recurring bool
}{
	colMode: {"mode", true}, colUser: {"user_name", true}, colSourceIP: {"source_ip", false}, // by address: argBoxer.addr
	colClientApp: {"client_app", true}, colClientWhy: {"client_why", true}, colJA4: {"ja4", true},
	colApp: {"app", true}, colHost: {"host", true}, colMethod: {"method", true}, colPath: {"path", false},
	colActivity: {"activity", true}, colFileName: {"file_name", false}, colFileSHA256: {"file_sha256", false},
	colFileType: {"file_type", true}, colFileLabel: {"file_label", true}, colAction: {"action", true},
	colReason: {"reason", true}, colSessionID: {"session_id", false},
}

// textDefault is each text column's usual value, the one bound as NULL.
var textDefault = func() (d [numTextCols]string) {
	for c, col := range textColumns {
		for _, ix := range partialIndexes {
			if ix.col == col.name {
				d[c] = ix.dominant
			}
		}
	}
	return d
}()

// eventRowNames are the columns of an events row as the writer binds it:
// seq, then eventColumns.
var eventRowNames = strings.Split(strings.Join(strings.Fields("seq, "+eventColumns), ""), ",")

// eventRowText is, for each value of an events row (eventRowNames), the
// bit of its text column (1 << textCol), or 0 for a column that is not one
// of them.
var eventRowText = func() []uint32 {
	bits := make([]uint32, len(eventRowNames))
	for i, name := range eventRowNames {
		for c, col := range textColumns {
			if col.name == name {
				bits[i] = 1 << c
			}
		}
	}
	return bits
}()

// eventRowFor is one row of the writer's INSERT into events (eventRowNames):
// a plain parameter for every column but the text ones, which take their
// usual value when bound NULL, and the text columns of fixed (bits of
// eventRowText) written as their usual value, with no parameter at all.
//
// Binding a NULL still costs the driver a call into SQLite under the
// connection's mutex, and plain traffic leaves nine or ten text columns at
// their usual value in every row of a group, so the writer prepares the
// INSERT for the columns a chunk's rows all leave at it (chunkFixed).
func eventRowFor(fixed uint32) string {
	p := make([]string, len(eventRowNames))
	for i, bit := range eventRowText {
		if bit == 0 {
			p[i] = "?"
			continue
		}
		lit := "'" + strings.ReplaceAll(textDefault[mbits.TrailingZeros32(bit)], "'", "''") + "'"
		if fixed&bit != 0 {
			p[i] = lit
		} else {
			p[i] = "coalesce(?, " + lit + ")"
		}
	}
	return "(" + strings.Join(p, ", ") + ")"
}

// chunkFixed is the text columns that every row of args (rows of
// eventRowText's width) binds as NULL: their usual value.
func chunkFixed(args []any) uint32 {
	w := len(eventRowText)
	fixed := uint32(1<<numTextCols - 1)
	for r := 0; r+w <= len(args) && fixed != 0; r += w {
		for i, bit := range eventRowText {
			if bit != 0 && args[r+i] != nil {
				fixed &^= bit
			}
		}
	}
	return fixed
}

// argBoxer turns an event's values into the writer's statement arguments
// with few allocations: a string put in an interface is copied to the heap
// each time, which was most of the writer's allocations per event. It keeps
// the last few boxes of each recurring column (a handful of users, apps,
// hosts and one JA4 make most of the traffic) and of the lists, and keeps
// the ids in an arena whose slots were boxed once. The driver copies every
// value into C memory when it binds it, so a box may be shared by any
// number of rows. It belongs to the inserter; a nil *argBoxer boxes plainly
// and binds every value as it is (appendEventArgs' other callers).
type argBoxer struct {
	text  [numTextCols]recentText
	addr  recentAddr
	lists [3]recentList
	ids   []uuid.UUID
	idBox []any
	nID   int // ids in use by the group being bound
}

const recentSize = 4

type recentText struct {
	keys [recentSize]string
	vals [recentSize]any
	next int
}

type recentAddr struct {
	keys [recentSize]netip.Addr
	vals [recentSize]any
	next int
}

type recentList struct {
	keys [recentSize][]string
	vals [recentSize]any
	next int
}

// The list columns.
const (
	listGroups = iota
	listDeviceTags
	listPolicies
)

// newGroup makes the arena's slots free for the next group's ids. The
// previous group's arguments are gone by then (commitOn clears them).
func (b *argBoxer) newGroup() { b.nID = 0 }

func (b *argBoxer) str(c textCol, s string) any {
	if b == nil {
		return s
	}
	if s == textDefault[c] {
		return nil
	}
	if !textColumns[c].recurring {
		return s
	}
	r := &b.text[c]
	for i := range r.keys {
		if r.vals[i] != nil && r.keys[i] == s {
			return r.vals[i]
		}
	}
	v := any(s)
	r.keys[r.next], r.vals[r.next] = s, v
	r.next = (r.next + 1) % recentSize
	return v
}

func (b *argBoxer) ip(a netip.Addr) any {
	if !a.IsValid() {
		return b.str(colSourceIP, "")
	}
	if b == nil {
		return a.String()
	}
	r := &b.addr
	for i := range r.keys {
		if r.vals[i] != nil && r.keys[i] == a {
			return r.vals[i]
		}
	}
	v := any(a.String())
	r.keys[r.next], r.vals[r.next] = a, v
	r.next = (r.next + 1) % recentSize
	return v
}

func (b *argBoxer) list(k int, l []string) any {
	if len(l) == 0 {
		return nil
	}
	if b == nil {
		return jsonList(l)
	}
	r := &b.lists[k]
	for i := range r.keys {
		if r.vals[i] != nil && slices.Equal(r.keys[i], l) {
			return r.vals[i]
		}
	}
	v := jsonList(l)
	r.keys[r.next], r.vals[r.next] = l, v
	r.next = (r.next + 1) % recentSize
	return v
}

func (b *argBoxer) id(id *uuid.UUID) any {
	if b == nil {
		return id[:]
	}
	if b.nID == len(b.ids) {
		// A bigger arena; the boxes already handed out keep the old one.
		n := max(64, 2*len(b.ids))
		b.ids, b.idBox = make([]uuid.UUID, n), make([]any, n)
		for i := range b.ids {
			b.idBox[i] = b.ids[i][:]
		}
		b.nID = 0
	}
	b.ids[b.nID] = *id
	b.nID++
	return b.idBox[b.nID-1]
}

// appendEventArgs appends seq and ev's values in eventColumns order. Lists
// are JSON arrays (NULL when empty): retention's delete triggers read them
// with json_each, and JSON survives any byte a name may contain. With a
// nil b the values are those stored, for a statement of plain parameters;
// the writer's b binds usual values as NULL for eventRowFor.
func appendEventArgs(args []any, seq int64, ev *Event, b *argBoxer) []any {
	return append(args,
		seq, b.id(&ev.ID), ev.Time.UnixNano(), b.str(colMode, string(ev.Mode)), b.str(colUser, ev.User),
		b.list(listGroups, ev.Groups), b.ip(ev.SourceIP), b.list(listDeviceTags, ev.DeviceTags),
		b.str(colClientApp, ev.ClientApp), b.str(colClientWhy, ev.ClientWhy), b.str(colJA4, ev.JA4),
		b.str(colApp, ev.App), b.str(colHost, ev.Host), b.str(colMethod, ev.Method), b.str(colPath, ev.Path),
		b.str(colActivity, ev.Activity), b.str(colFileName, ev.FileName), ev.FileSize,
		b.str(colFileSHA256, ev.FileSHA256), b.str(colFileType, ev.FileType), b.str(colFileLabel, ev.FileLabel),
		detectionsJSON(ev.Detectors), b.list(listPolicies, ev.Policies), b.str(colAction, ev.Action),
		b.str(colReason, ev.Reason), ev.BytesUp, ev.BytesDown, b.str(colSessionID, ev.SessionID),
	)
}

// detectionsJSON encodes the detections, nil when there are none (most
// events: the common path allocates nothing).
func detectionsJSON(d []Detection) any {
	if len(d) == 0 {
		return nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil
	}
	return string(b)
}

// jsonList encodes l as a JSON array of strings, nil when empty. It writes
// the JSON directly: encoding/json's reflection was a tenth of the writer's
// allocations. Invalid UTF-8 becomes U+FFFD, as encoding/json would do.
func jsonList(l []string) any {
	if len(l) == 0 {
		return nil
	}
	n := 2
	for _, s := range l {
		n += len(s) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, s := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return string(append(b, ']'))
}

// jsonExact reports whether SQLite's json_each gives back every string of l
// from jsonList(l) byte for byte: not when one is invalid UTF-8 (jsonList
// replaces it) or holds a NUL.
func jsonExact(l []string) bool {
	for _, s := range l {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	return true
}

func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
		i++
	}
	return append(b, '"')
}
