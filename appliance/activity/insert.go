package activity

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Rows per multi-row INSERT. One statement per row made the database/sql
// and VDBE set-up cost as much as the b-tree work; 32 event rows (24
// columns each) and 64 side-table rows stay well under SQLite's 32766
// bound on parameters. A group's remainder goes in power-of-two chunks, so
// at most 6+7+7 statements are ever prepared (lazily, on first use).
const (
	eventRowsPerInsert = 32
	sideRowsPerInsert  = 64
)

// inserter holds the writer's prepared statements and reused argument
// buffers. It belongs to whoever holds the write connection's transaction
// (the writer goroutine, under Store.wmu), so it needs no lock.
//
// It talks to the driver connection directly (sql.Conn.Raw): database/sql
// allocated and checked a []driver.NamedValue for every statement, a third
// of the writer's allocations. Statements are prepared on the connection
// they run on, and again if the pool ever replaces it.
type inserter struct {
	db    *sql.DB
	conn  any // the driver connection the statements belong to
	stmts map[string]driver.Stmt
	args  []any
	box   argBoxer // boxes args' values (eventargs.go)
	side  []any    // a side table's rows, when bound (sideRows)
	nv    []driver.NamedValue
	// fixedSets are the sets of text columns the events INSERTs are
	// prepared for (fixedSet).
	fixedSets []uint32
	nextSeq   int64 // seq of the next event; reset from the table on failure
	// rollups: the group's counts are added up here as its rows are bound
	// and written as one upsert per bucket (rollupgroup.go).
	rollups bool
	counts  map[countKey]int64
	names   map[nameKey]nameCount
	upserts []any
	// fullText: the index is written every ftsBatch events, past ftsMark
	// (the highest seq indexed, as fts_mark holds it).
	fullText bool
	ftsBatch int
	ftsMark  int64
}

func newInserter(db *sql.DB, f features, ftsBatch int) (*inserter, error) {
	in := &inserter{db: db, stmts: map[string]driver.Stmt{}, fullText: f.fullText, ftsBatch: ftsBatch}
	if in.ftsBatch <= 0 {
		in.ftsBatch = defaultFTSBatch
	}
	if f.fullText {
		if err := db.QueryRow("SELECT coalesce(max(seq), 0) FROM fts_mark").Scan(&in.ftsMark); err != nil {
			return nil, fmt.Errorf("read full-text mark: %w", err)
		}
	}
	if f.rollups {
		in.rollups = true
		in.counts = map[countKey]int64{}
		in.names = map[nameKey]nameCount{}
	}
	if err := in.reloadSeq(); err != nil {
		return nil, err
	}
	return in, nil
}

// reloadSeq reads the next seq from the table and the mark retention keeps
// (nextSeqQuery), so seqs are never reused.
func (in *inserter) reloadSeq() error {
	if err := in.db.QueryRow(nextSeqQuery).Scan(&in.nextSeq); err != nil {
		return fmt.Errorf("read last event seq: %w", err)
	}
	return nil
}

// close finalizes the statements on their connection.
func (in *inserter) close() error {
	if len(in.stmts) == 0 {
		return nil
	}
	conn, err := in.db.Conn(context.Background())
	if err != nil {
		return fmt.Errorf("close statements: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		var first error
		if dc == in.conn {
			for _, st := range in.stmts {
				if err := st.Close(); err != nil && first == nil {
					first = err
				}
			}
		}
		clear(in.stmts)
		return first
	})
}

// release drops what the inserter keeps for the next group: its prepared
// statements (C heap, close) and its argument buffers, which stay at the
// size of the largest group bound (0.2 MiB of the appliance's idle heap
// after the lab keep-alive runs). The next group makes both again.
func (in *inserter) release() error {
	err := in.close()
	in.args, in.side, in.nv, in.upserts = nil, nil, nil, nil
	in.box.ids, in.box.idBox, in.box.nID = nil, nil, 0
	return err
}

func stmtKey(table string, rows int, fixed uint32) string {
	return table + "/" + strconv.Itoa(rows) + "/" + strconv.FormatUint(uint64(fixed), 16)
}

// maxFixedSets bounds the sets of fixed text columns (eventRowFor) the
// writer prepares INSERTs for: each costs up to six statements of C heap
// (a 32-row one is ~100 KiB). A chunk with a new set past it binds every
// column (fixed 0).
const maxFixedSets = 4

// stmt returns the INSERT of rows rows into table prepared on dc; for
// events, with the text columns of fixed written as their usual value.
func (in *inserter) stmt(dc any, table string, rows int, fixed uint32) (driver.Stmt, error) {
	if dc != in.conn {
		// A new connection: the old statements died with the old one.
		clear(in.stmts)
		in.conn = dc
	}
	key := stmtKey(table, rows, fixed)
	if st, ok := in.stmts[key]; ok {
		return st, nil
	}
	var cols string
	switch table {
	case "events":
		cols = "seq, " + eventColumns
	case "event_policy":
		cols = "policy, ts, seq"
	case "event_tag":
		cols = "tag, ts, seq"
	case "rollup_counts":
		cols = "span, bucket, mode, action, n"
	case "rollup_names":
		cols = "span, dim, bucket, name, n, blocked"
	default:
		return nil, fmt.Errorf("insert into unknown table %q", table)
	}
	n := strings.Count(cols, ",") + 1
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")"
	if table == "events" {
		row = eventRowFor(fixed)
	}
	// OR IGNORE on the side tables: an event listing a policy twice stores
	// one row. OR ROLLBACK on events: any failure dooms the group anyway, and
	// without an ABORT conflict clause SQLite needs no statement journal for
	// a multi-row statement.
	verb, tail := "INSERT OR ROLLBACK INTO ", ""
	switch table {
	case "events":
	case "rollup_counts":
		verb, tail = "INSERT INTO ", " ON CONFLICT DO UPDATE SET n = n + excluded.n"
	case "rollup_names":
		verb, tail = "INSERT INTO ", " ON CONFLICT DO UPDATE SET n = n + excluded.n, blocked = blocked + excluded.blocked"
	default:
		verb = "INSERT OR IGNORE INTO "
	}
	q := verb + table + " (" + cols + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+",", rows), ",") + tail
	prep, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("sqlite driver connection %T cannot prepare", dc)
	}
	st, err := prep.PrepareContext(context.Background(), q)
	if err != nil {
		return nil, fmt.Errorf("prepare insert of %d rows into %s: %w", rows, table, err)
	}
	in.stmts[key] = st
	return st, nil
}

// execQuery runs query, prepared on dc once, with one integer argument.
func (in *inserter) execQuery(dc any, query string, arg int64) error {
	if dc != in.conn {
		clear(in.stmts)
		in.conn = dc
	}
	st, ok := in.stmts[query]
	if !ok {
		prep, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("sqlite driver connection %T cannot prepare", dc)
		}
		var err error
		if st, err = prep.PrepareContext(context.Background(), query); err != nil {
			return fmt.Errorf("prepare %.40q: %w", query, err)
		}
		in.stmts[query] = st
	}
	ex, ok := st.(driver.StmtExecContext)
	if !ok {
		return fmt.Errorf("sqlite statement %T cannot exec", st)
	}
	nv := append(in.nv[:0], driver.NamedValue{Ordinal: 1, Value: arg})
	in.nv = nv
	if _, err := ex.ExecContext(context.Background(), nv); err != nil {
		return fmt.Errorf("write group: %.40q: %w", query, err)
	}
	return nil
}

// exec runs the INSERT for table with args holding rows of width values,
// in chunks of at most maxRows rows (then halving for the remainder).
func (in *inserter) exec(dc any, table string, args []any, width, maxRows int) error {
	for len(args) > 0 {
		rows := len(args) / width
		chunk := maxRows
		for chunk > rows {
			chunk /= 2
		}
		if chunk == 0 {
			return fmt.Errorf("insert into %s: %d values are not rows of %d", table, len(args), width)
		}
		var fixed uint32
		if table == "events" && width == len(eventRowText) {
			fixed = in.fixedSet(chunkFixed(args[:chunk*width]))
		}
		st, err := in.stmt(dc, table, chunk, fixed)
		if err != nil {
			return err
		}
		ex, ok := st.(driver.StmtExecContext)
		if !ok {
			return fmt.Errorf("sqlite statement %T cannot exec", st)
		}
		nv := in.nv[:0]
		for i, v := range args[:chunk*width] {
			if fixed != 0 && fixed&eventRowText[i%width] != 0 {
				continue // written by the statement itself
			}
			nv = append(nv, driver.NamedValue{Ordinal: len(nv) + 1, Value: v})
		}
		in.nv = nv
		_, err = ex.ExecContext(context.Background(), nv)
		clear(nv)
		if err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
		args = args[chunk*width:]
	}
	return nil
}

// fixedSet is fixed if the writer prepares INSERTs for it (one of the
// first maxFixedSets sets the inserter has seen, kept for its life, over
// connections), else 0. The first sets are not always the commonest (a
// burst of logins may come first); a set shut out costs what every chunk
// cost before, its binds.
func (in *inserter) fixedSet(fixed uint32) uint32 {
	if fixed == 0 || slices.Contains(in.fixedSets, fixed) {
		return fixed
	}
	if len(in.fixedSets) == maxFixedSets {
		return 0
	}
	in.fixedSets = append(in.fixedSets, fixed)
	return fixed
}

// commit writes events in one transaction, numbering them from nextSeq.
func (s *Store) commit(events []Event) (err error) {
	in := s.ins
	first := in.nextSeq
	defer func() {
		if err != nil {
			in.nextSeq = first
		}
	}()
	ctx := context.Background()
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin group: %w", err)
	}
	defer conn.Close()
	if err := conn.Raw(func(dc any) error { return in.commitOn(dc, events) }); err != nil {
		return err
	}
	s.noteWritten(events)
	return nil
}

// noteWritten tells the top-list cache (rollup.go) about a committed group:
// an event before the settled hour changes the rollup generation, then the
// high-water mark moves to the newest event.
func (s *Store) noteWritten(events []Event) {
	lo, hi := int64(0), int64(0)
	for i := range events {
		ts := events[i].Time.UnixNano()
		if i == 0 || ts < lo {
			lo = ts
		}
		hi = max(hi, ts)
	}
	hw := s.highWater.Load()
	if len(events) > 0 && lo < settledBefore(hw)*1e9 {
		s.rollupGen.Add(1)
	}
	if hi > hw {
		s.highWater.Store(hi)
	}
}

func (in *inserter) commitOn(dc any, events []Event) (err error) {
	b, ok := dc.(driver.ConnBeginTx)
	if !ok {
		return fmt.Errorf("sqlite driver connection %T cannot begin", dc)
	}
	tx, err := b.BeginTx(context.Background(), driver.TxOptions{})
	if err != nil {
		return fmt.Errorf("begin group: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the first error is the one worth reporting
		}
	}()
	args := in.args[:0]
	in.box.newGroup()
	if in.rollups {
		// A retried group counts its events afresh.
		clear(in.counts)
		clear(in.names)
	}
	for i := range events {
		ev := &events[i]
		seq := in.nextSeq
		in.nextSeq++
		ev.Seq = seq
		args = appendEventArgs(args, seq, ev, &in.box)
		if in.rollups {
			in.count(ev, ev.Time.UnixNano())
		}
	}
	// Keep the buffer for the next group, but not the strings it points to.
	defer func() { in.args = reusable(args) }()
	if err := in.exec(dc, "events", args, eventInsertWidth, eventRowsPerInsert); err != nil {
		return err
	}
	if len(events) == 0 {
		return tx.Commit()
	}
	for _, side := range sideLists {
		if err := in.sideRows(dc, side, events); err != nil {
			return err
		}
	}
	if in.rollups {
		if err := in.writeCounts(dc); err != nil {
			return err
		}
	}
	// The full-text index reads the batch's rows back (their pages are in
	// the cache): one statement, whatever the batch's size, with nothing to
	// bind but a seq.
	mark := in.ftsMark
	if last := in.nextSeq - 1; in.fullText && last-mark >= int64(in.ftsBatch) {
		if err := in.execQuery(dc, fullTextBatch, mark); err != nil {
			return err
		}
		if err := in.execQuery(dc, fullTextMark, last); err != nil {
			return err
		}
		mark = last
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit group: %w", err)
	}
	in.ftsMark = mark
	return nil
}

// reusable is a bound-values buffer cleared for the next group (the strings
// it points to are not kept), or nil when the group just bound filled less
// than a quarter of it: a burst's large groups grow it to megabytes
// (MaxBatch events of ~28 values, 16 bytes each), and the small groups that
// follow would otherwise keep that for good.
func reusable(buf []any) []any {
	clear(buf)
	if cap(buf) > 1024 && 4*len(buf) < cap(buf) {
		return nil
	}
	return buf[:0]
}

// Policies and device tags go to their side tables in the group's
// transaction (a trigger's json_each per row had cost a statement journal
// and a third of the insert time). One INSERT … SELECT per table reads them
// back from the group's rows just written (their pages are in the cache),
// out of the JSON lists the delete triggers read too: binding three values
// per side row cost more than SQLite's json_each (BenchmarkCommitGroup
// sample, two policies and two tags an event, three alternated pairs:
// 53.7/54.5, 51.3/48.8 and 50.2/45.0 µs of CPU per event bound/read back,
// and 13 allocations fewer).
// A list json_each would not give back byte for byte (jsonExact) is bound
// row by row instead, as it was given.
type sideList struct {
	table    string
	list     func(*Event) []string
	fromRows string // the INSERT … SELECT of a group's rows, from the group's first seq
}

var sideLists = []sideList{
	{"event_policy", func(ev *Event) []string { return ev.Policies }, `INSERT OR IGNORE INTO event_policy (policy, ts, seq)
	SELECT j.value, e.ts, e.seq FROM events e, json_each(e.policies) j WHERE e.seq >= ? AND e.policies IS NOT NULL`},
	{"event_tag", func(ev *Event) []string { return ev.DeviceTags }, `INSERT OR IGNORE INTO event_tag (tag, ts, seq)
	SELECT j.value, e.ts, e.seq FROM events e, json_each(e.device_tags) j WHERE e.seq >= ? AND e.device_tags IS NOT NULL`},
}

// sideRows writes the side table's rows of events, numbered already.
func (in *inserter) sideRows(dc any, side sideList, events []Event) error {
	some, exact := false, true
	for i := range events {
		if l := side.list(&events[i]); len(l) > 0 {
			some = true
			exact = exact && jsonExact(l)
		}
	}
	switch {
	case !some:
		return nil
	case exact:
		return in.execQuery(dc, side.fromRows, events[0].Seq)
	}
	rows := in.side[:0]
	for i := range events {
		ev := &events[i]
		for _, v := range side.list(ev) {
			rows = append(rows, v, ev.Time.UnixNano(), ev.Seq)
		}
	}
	defer func() { in.side = reusable(rows) }()
	return in.exec(dc, side.table, rows, 3, sideRowsPerInsert)
}
