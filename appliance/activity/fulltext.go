package activity

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// The full-text index (schema 6). events_fts is an FTS5 table with the
// trigram tokenizer over the four fields free text searches: host, path,
// file name and user. It is contentless (its content option empty: the text stays in
// events only), keeps no positions (detail=none) and no token counts
// (columnsize=0), so it holds a doclist of seqs per trigram and nothing
// else. The writer fills it in the event's own transaction (insert.go), one
// INSERT … SELECT per group. Retention deletes a row from it with FTS5's
// 'delete' command and the row's own text, which the trigger below reads
// from the event being deleted (the text the row was indexed with: events
// are never updated), and only for rows already indexed (seq at or below
// fts_mark): deleting a row the index never had would corrupt it.
//
// Databases made before this form have contentless_delete=1 instead, which
// deletes by seq alone but needs the token counts (FTS5 refuses it with
// columnsize=0): a docsize row per event, written with every group. The
// writer spent 10.5-11.0 µs of CPU per plain event without them against
// 11.9-15.0 with (BenchmarkCommitGroup/plain, alternated three times in one
// run). Such a database keeps its table and trigger (the CREATEs below skip
// both); search and the writer treat the two alike.
//
// FTS5 cannot match phrases without positions, so a search term becomes the
// AND of its trigrams: a superset of the rows holding the term, which the
// query then checks with the same LIKE as the scan. The index only ever
// narrows the rows a search reads; what matches is decided by LIKE, so the
// two paths return the same events.
const fullTextSchema = `
CREATE TABLE IF NOT EXISTS fts_mark (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(
	host, path, file_name, user_name,
	content='', detail=none, columnsize=0,
	tokenize='trigram case_sensitive 0'
);
CREATE TRIGGER IF NOT EXISTS events_fts_del AFTER DELETE ON events
	WHEN old.seq <= (SELECT seq FROM fts_mark WHERE id = 1) BEGIN
	INSERT INTO events_fts (events_fts, rowid, host, path, file_name, user_name)
		VALUES ('delete', old.seq, old.host, old.path, old.file_name, old.user_name);
END;
`

// fullTextTuning is FTS5's merge policy, kept in the index's config table
// and set at every open: 8 segments of a level are merged into the next
// (FTS5's default is 4). Each posting is rewritten once per level it passes,
// so fewer, wider levels cut the merges that were a third of the index's
// write cost; a term's lookup reads a few more segments. BenchmarkIngest,
// 4/8/16 alternated three times in one run: fts_cpu_cost 0.215/0.315/0.203,
// 0.187/0.181/0.206, 0.195/0.185/0.201.
const fullTextTuning = `INSERT INTO events_fts (events_fts, rank) VALUES ('automerge', 8)`

// fullTextFill indexes the events the WHERE clause that follows selects.
const fullTextFill = `INSERT INTO events_fts (rowid, host, path, file_name, user_name)
	SELECT seq, host, path, file_name, user_name FROM events`

// Statements of the writer's batches: the events after the mark, then the
// mark.
const (
	fullTextBatch = fullTextFill + " WHERE seq > ?"
	fullTextMark  = "INSERT INTO fts_mark (id, seq) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq"
)

// defaultFTSBatch is how many events the writer lets accumulate before it
// indexes them (Options.ftsBatch in tests).
const defaultFTSBatch = 512

// ftsCandidateLimit bounds the rows the index may hand to one search. A term
// in at most this many events is served from the index: its rows are read
// by seq, checked and sorted (a few tens of ms at most). A term in more
// events is common enough that walking the time index, newest first, finds
// a page of matches after few rows, which is what the scan does.
const ftsCandidateLimit = 10000

// maxTrigrams bounds the terms of one MATCH. Every term of an AND costs a
// walk of its doclist, and the dense ones (a trigram of ".com" or "/doc"
// is in most rows) cost the most: at 300k events the nine trigrams of
// "/doc/12345/" took 104 ms, the four that cover it without overlap 37 ms
// (machine loaded; 23 ms and 1 ms for two when quieter). So a term is
// narrowed by the trigrams that cover it end to end without overlapping
// (the last one aligned on its end), at most maxTrigrams of them spread
// over it; LIKE checks the rest.
const maxTrigrams = 6

// ftsQuery is the MATCH expression for a free-text search: the AND of some
// of the text's trigrams, each a quoted FTS5 string, so no character of the
// user's text is ever read as query syntax (a double quote is doubled, the
// only escape inside an FTS5 string). ok is false when the index cannot
// serve the text: under three characters (trigrams need three), invalid
// UTF-8 or a NUL (the tokenizer and LIKE might not agree on those).
func ftsQuery(text string) (string, bool) {
	terms, ok := ftsTerms(text)
	return strings.Join(terms, " AND "), ok
}

// ftsTerms are the terms of ftsQuery, each a quoted trigram.
func ftsTerms(text string) ([]string, bool) {
	if !utf8.ValidString(text) || strings.IndexByte(text, 0) >= 0 {
		return nil, false
	}
	r := []rune(text)
	if len(r) < 3 {
		return nil, false
	}
	// Starts of the non-overlapping cover: 0, 3, 6, … and len-3.
	var starts []int
	for i := 0; i+3 <= len(r); i += 3 {
		starts = append(starts, i)
	}
	if last := len(r) - 3; starts[len(starts)-1] != last {
		starts = append(starts, last)
	}
	if len(starts) > maxTrigrams {
		spread := make([]int, maxTrigrams)
		for k := range spread {
			spread[k] = starts[k*(len(starts)-1)/(maxTrigrams-1)]
		}
		starts = spread
	}
	var (
		terms []string
		seen  = map[string]bool{}
	)
	for _, i := range starts {
		tri := string(r[i : i+3])
		if seen[strings.ToLower(tri)] {
			continue
		}
		seen[strings.ToLower(tri)] = true
		terms = append(terms, `"`+strings.ReplaceAll(tri, `"`, `""`)+`"`)
	}
	return terms, true
}

// A trigram in most events narrows a search by little and costs it the
// most: walking its doclist. At 10M events "use", "cor" and "orp" made the
// MATCH of user4242@corp take 1.1-1.5 s, and the two other trigrams alone
// found the same 2,041 rows in 17 ms ("/do", "/pa" and "age" of
// /doc/4242/page: 0.47-1.0 s against 45 ms). And of the sparse ones some
// narrow far better than the fixed cover's: "/42", "424" and "242" leave
// 1/5 of the candidates "c/4" and "242" leave, each a row to read.
//
// So once the index holds more than densityWindow events, a term is
// narrowed by counts: each of its trigrams (up to maxProbed, spread over
// it) is counted in the newest densityWindow indexed events, a few ms each
// (the index seeks to the window's first seq). The MATCH is the cover's
// trigrams but those in more than 1/denseShare of the window (they keep
// the whole term in view), and the sparsestKept sparsest trigrams of all
// (at 10M events "42/" and "424" with the cover's "c/4" and "242" leave
// /doc/4242/page 215 candidates, the cover alone 5,517);
// the sparsest one alone if every one is dense. The counts only steer the
// choice: with any of the term's trigrams the candidates hold every row
// the term is in, and LIKE decides.
const (
	defaultDensityWindow = 20000
	denseShare           = 2
	maxProbed            = 12
	sparsestKept         = 3
)

// sparseTerms is the MATCH terms for text, cover its ftsTerms (see
// defaultDensityWindow), and an estimate of the indexed events that hold
// them all: their share of the window times the seqs indexed (-1 when the
// index is too small to be counted).
func (s *Store) sparseTerms(text string, cover []string) ([]string, int64, error) {
	window := int64(s.opt.densityWindow)
	if window <= 0 {
		window = defaultDensityWindow
	}
	var mark int64
	if err := s.rdb.QueryRow("SELECT coalesce(max(seq), 0) FROM fts_mark").Scan(&mark); err != nil {
		return nil, -1, fmt.Errorf("search text: %w", err)
	}
	if mark < window {
		return cover, -1, nil // a small index is walked in no time
	}
	count := func(match string) (int64, error) {
		var n int64
		if err := s.rdb.QueryRow(`SELECT count(*) FROM events_fts WHERE events_fts MATCH ? AND rowid > ?`,
			match, mark-window).Scan(&n); err != nil {
			return 0, fmt.Errorf("search text: %w", err)
		}
		return n, nil
	}
	type counted struct {
		term string
		n    int64
	}
	var all []counted
	dense := map[string]bool{}
	for _, term := range allTrigrams(text) {
		n, err := count(term)
		if err != nil {
			return nil, -1, err
		}
		all = append(all, counted{term, n})
		dense[strings.ToLower(term)] = n*denseShare > window
	}
	slices.SortStableFunc(all, func(a, b counted) int { return cmp.Compare(a.n, b.n) })
	var keep []string
	have := map[string]bool{}
	add := func(term string) {
		if k := strings.ToLower(term); !have[k] {
			have[k] = true
			keep = append(keep, term)
		}
	}
	for _, term := range cover {
		if d, counted := dense[strings.ToLower(term)]; counted && !d {
			add(term)
		}
	}
	for i, c := range all {
		if i == sparsestKept || (i > 0 && dense[strings.ToLower(c.term)]) {
			break
		}
		add(c.term)
	}
	n, err := count(strings.Join(keep, " AND "))
	if err != nil {
		return nil, -1, err
	}
	var lo int64
	if err := s.rdb.QueryRow("SELECT coalesce(min(seq), 0) FROM events").Scan(&lo); err != nil {
		return nil, -1, fmt.Errorf("search text: %w", err)
	}
	return keep, n * max(mark-lo+1, window) / window, nil
}

// allTrigrams are the distinct trigrams of text (ignoring case), quoted as
// ftsTerms quotes them, at most maxProbed spread over it.
func allTrigrams(text string) []string {
	r := []rune(text)
	var out []string
	seen := map[string]bool{}
	for i := 0; i+3 <= len(r); i++ {
		tri := string(r[i : i+3])
		if k := strings.ToLower(tri); !seen[k] {
			seen[k] = true
			out = append(out, `"`+strings.ReplaceAll(tri, `"`, `""`)+`"`)
		}
	}
	if len(out) > maxProbed {
		spread := make([]string, maxProbed)
		for k := range spread {
			spread[k] = out[k*(len(out)-1)/(maxProbed-1)]
		}
		out = spread
	}
	return out
}

// textCondition is the free-text check on an events row e: the term as a
// substring of host, path, file name or user, ignoring ASCII case (LIKE),
// with its arguments.
func textCondition(text string) (string, []any) {
	pat := "%" + escapeLike(text) + "%"
	return `(e.host LIKE ? ESCAPE '\' OR e.path LIKE ? ESCAPE '\' OR e.file_name LIKE ? ESCAPE '\' OR e.user_name LIKE ? ESCAPE '\')`,
		[]any{pat, pat, pat, pat}
}

// ftsCandidates returns the seqs the index holds for the text, or ok false
// when there are more than ftsCandidateLimit (or the index cannot serve it).
func (s *Store) ftsCandidates(text string) (seqs []int64, ok bool, err error) {
	if !s.feat.fullText {
		return nil, false, nil
	}
	terms, ok := ftsTerms(text)
	if !ok {
		return nil, false, nil
	}
	terms, estimate, err := s.sparseTerms(text, terms)
	if err != nil {
		return nil, false, err
	}
	if estimate > 2*ftsCandidateLimit {
		// As common in the whole index as in its newest events, the term
		// would hand over more rows than the limit: scan at once rather
		// than read ftsCandidateLimit rows to find that out.
		return nil, false, nil
	}
	match := strings.Join(terms, " AND ")
	cond, targs := textCondition(text)
	args := append([]any{match}, targs...)
	rows, err := s.rdb.Query(`SELECT rowid FROM events_fts WHERE events_fts MATCH ?
		UNION ALL
		SELECT e.seq FROM events e WHERE e.seq > (SELECT coalesce(max(seq), 0) FROM fts_mark) AND `+cond+`
		LIMIT `+fmt.Sprint(ftsCandidateLimit+1), args...)
	if err != nil {
		return nil, false, fmt.Errorf("search text: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return nil, false, fmt.Errorf("search text: %w", err)
		}
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("search text: %w", err)
	}
	if len(seqs) > ftsCandidateLimit {
		return nil, false, nil
	}
	return seqs, true, nil
}

// candidateSQL is Search's statement when the full-text index narrowed the
// rows to seqs: they are read by seq (every other filter hidden from the
// planner with a unary +, the lists checked with EXISTS), checked with
// every filter and the LIKE, and sorted. The order and the page token are
// the scan's, so pages of either path continue each other.
func candidateSQL(q Query, seqs []int64) (string, []any, int, error) {
	if !q.From.IsZero() && !q.To.IsZero() && q.From.After(q.To) {
		return "", nil, 0, fmt.Errorf("%w: from %s is after to %s", ErrBadQuery, q.From, q.To)
	}
	limit := pageLimit(q.Limit)
	list, err := json.Marshal(seqs)
	if err != nil {
		return "", nil, 0, err
	}
	where := []string{"e.seq IN (SELECT value FROM json_each(?))"}
	args := []any{string(list)}
	if q.Policy != "" {
		where, args = append(where, "EXISTS (SELECT 1 FROM event_policy p WHERE p.policy = ? AND p.ts = e.ts AND p.seq = e.seq)"), append(args, q.Policy)
	}
	if q.DeviceTag != "" {
		where, args = append(where, "EXISTS (SELECT 1 FROM event_tag t WHERE t.tag = ? AND t.ts = e.ts AND t.seq = e.seq)"), append(args, q.DeviceTag)
	}
	for _, f := range []struct{ col, val string }{
		{"user_name", q.User}, {"app", q.App}, {"activity", q.Activity},
		{"action", q.Action}, {"client_app", q.ClientApp},
	} {
		if f.val != "" {
			where, args = append(where, "+e."+f.col+" = ?"), append(args, f.val)
		}
	}
	if !q.From.IsZero() {
		where, args = append(where, "+e.ts >= ?"), append(args, q.From.UnixNano())
	}
	if !q.To.IsZero() {
		where, args = append(where, "+e.ts < ?"), append(args, q.To.UnixNano())
	}
	cond, targs := textCondition(q.Text)
	where, args = append(where, cond), append(args, targs...)
	where, args, err = appendRest(q, "e", where, args)
	if err != nil {
		return "", nil, 0, err
	}
	query := fmt.Sprintf("SELECT %s FROM events e WHERE %s ORDER BY e.ts DESC, e.seq DESC LIMIT %d",
		selectColumns, strings.Join(where, " AND "), limit+1)
	return query, args, limit, nil
}
