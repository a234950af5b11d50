package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Revision is one saved change of a policy file: who, when, what in words,
// the diff, and both contents so it can be restored.
type Revision struct {
	ID      int       `json:"id"`
	Time    time.Time `json:"time"`
	Author  string    `json:"author"`
	File    string    `json:"file"`
	Summary string    `json:"summary"`
	Diff    string    `json:"diff"`
	Before  string    `json:"before"`
	After   string    `json:"after"`
	SHA256  string    `json:"sha256"`
}

// revisions are one JSON file each under revisions/ (0600), numbered.
type revisions struct {
	mu   sync.Mutex
	dir  string
	next int
}

func openRevisions(consoleDir string) (*revisions, error) {
	dir := filepath.Join(consoleDir, "revisions")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("console revisions: %w", err)
	}
	r := &revisions{dir: dir, next: 1}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("console revisions: %w", err)
	}
	for _, e := range ents {
		if n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".json")); err == nil && n >= r.next {
			r.next = n + 1
		}
	}
	return r, nil
}

func (r *revisions) add(rev Revision) (*Revision, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rev.ID = r.next
	b, err := json.MarshalIndent(rev, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(r.dir, fmt.Sprintf("%06d.json", rev.ID)), b, 0o600); err != nil {
		return nil, fmt.Errorf("console revision: %w", err)
	}
	r.next++
	return &rev, nil
}

// list returns revisions newest first, of one file when file is set.
func (r *revisions) list(file string, limit int) ([]Revision, error) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, err
	}
	slices.Reverse(ents) // names are zero-padded: lexical is numeric
	var out []Revision
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(r.dir, e.Name()))
		if err != nil {
			continue
		}
		var rev Revision
		if json.Unmarshal(b, &rev) != nil || file != "" && rev.File != file {
			continue
		}
		out = append(out, rev)
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

func (c *Console) apiRevisions(w http.ResponseWriter, r *http.Request, _ *session) {
	revs, err := c.revs.list(r.URL.Query().Get("file"), 100)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revisions": revs})
}

func (c *Console) apiAudit(w http.ResponseWriter, r *http.Request, _ *session) {
	v := r.URL.Query()
	limit, _ := strconv.Atoi(v.Get("limit"))
	es, err := c.audit.search(AuditQuery{Actor: v.Get("actor"), Action: v.Get("action"), Limit: limit})
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": es})
}
