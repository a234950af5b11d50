package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// A saved search is a name for an activity search (its URL parameters).
// Each account keeps its own: saving one changes nothing the appliance
// does, so auditors may save searches too. They live in the console's
// directory, written atomically.
type SavedSearch struct {
	ID      string    `json:"id"`
	Owner   string    `json:"owner"`
	Name    string    `json:"name"`
	Query   string    `json:"query"` // URL-encoded parameters of /activity
	Created time.Time `json:"created"`
}

// Link is the activity page of the search.
func (s SavedSearch) Link() string { return "/activity?" + s.Query }

const (
	auditSavedSearch = "search_saved"
	maxSavedSearches = 100 // per account
	maxSearchName    = 80
)

var (
	errSearchName  = errors.New("name: 1 to 80 characters, no control characters")
	errSearchFull  = fmt.Errorf("at most %d saved searches per account: delete one first", maxSavedSearches)
	errNoSuchSaved = errors.New("no such saved search")
)

type savedSearches struct {
	mu   sync.Mutex
	path string
	list []SavedSearch
}

func openSavedSearches(dir string) (*savedSearches, error) {
	s := &savedSearches{path: filepath.Join(dir, "searches.json")}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("console saved searches: %w", err)
	}
	if err := json.Unmarshal(b, &s.list); err != nil {
		return nil, fmt.Errorf("console saved searches %s: %w", s.path, err)
	}
	return s, nil
}

func (s *savedSearches) of(owner string) []SavedSearch {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SavedSearch
	for _, x := range s.list {
		if x.Owner == owner {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b SavedSearch) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	return out
}

// add saves (or, for the same owner and name, replaces) a search.
func (s *savedSearches) add(x SavedSearch) (SavedSearch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := slices.Clone(s.list)
	n := 0
	for i := range next {
		if next[i].Owner != x.Owner {
			continue
		}
		if next[i].Name == x.Name {
			x.ID = next[i].ID
			next[i] = x
			return x, s.write(next)
		}
		n++
	}
	if n >= maxSavedSearches {
		return x, errSearchFull
	}
	x.ID = randomToken(8)
	next = append(next, x)
	return x, s.write(next)
}

func (s *savedSearches) remove(owner, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.list, func(x SavedSearch) bool { return x.Owner == owner && x.ID == id })
	if i < 0 {
		return errNoSuchSaved
	}
	return s.write(slices.Delete(slices.Clone(s.list), i, i+1))
}

func (s *savedSearches) write(list []SavedSearch) error {
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.path, b, 0o600); err != nil {
		return err
	}
	s.list = list
	return nil
}

// cleanSearchQuery keeps only the parameters a search has, drops the page
// token, and checks that the search parses, so a saved search always opens.
func (c *Console) cleanSearchQuery(raw string) (string, error) {
	in, err := url.ParseQuery(strings.TrimPrefix(raw, "?"))
	if err != nil {
		return "", fmt.Errorf("query: %w", err)
	}
	out := url.Values{}
	for _, f := range eventFilters {
		for _, k := range []string{f.Param, "not_" + f.Param} {
			if vs := in[k]; len(vs) > 0 {
				out[k] = vs
			}
		}
	}
	for _, k := range searchExtraParams {
		if vs := in[k]; len(vs) > 0 {
			out[k] = vs
		}
	}
	if _, err := parseEventQuery(out, c.opt.Now()); err != nil {
		return "", err
	}
	return out.Encode(), nil
}

// searchExtraParams are the non-filter parameters a saved search keeps.
var searchExtraParams = []string{"since", "from", "to", "limit"}

func validSearchName(n string) bool {
	if n == "" || utf8.RuneCountInString(n) > maxSearchName || !utf8.ValidString(n) {
		return false
	}
	return visible(n) == n
}

type saveSearchInput struct {
	Name  string `json:"name"`
	Query string `json:"query"`
}

func (c *Console) saveSearch(s *session, in saveSearchInput) (SavedSearch, error) {
	in.Name = strings.TrimSpace(in.Name)
	if !validSearchName(in.Name) {
		return SavedSearch{}, errSearchName
	}
	q, err := c.cleanSearchQuery(in.Query)
	if err != nil {
		return SavedSearch{}, err
	}
	return c.searches.add(SavedSearch{Owner: s.User, Name: in.Name, Query: q, Created: c.opt.Now().UTC()})
}

// activitySave is the activity page's "Save this search" form.
func (c *Console) activitySave(w http.ResponseWriter, r *http.Request, s *session) {
	x, err := c.saveSearch(s, saveSearchInput{Name: r.PostFormValue("name"), Query: r.PostFormValue("query")})
	if err != nil {
		http.Error(w, "Search not saved: "+err.Error(), http.StatusBadRequest)
		return
	}
	c.record(r, s, auditSavedSearch, x.Name, x.Query)
	http.Redirect(w, r, x.Link(), http.StatusSeeOther)
}

func (c *Console) activityForget(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.searches.remove(s.User, r.PostFormValue("id")); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	http.Redirect(w, r, "/activity", http.StatusSeeOther)
}

func (c *Console) apiSearches(w http.ResponseWriter, r *http.Request, s *session) {
	writeJSON(w, http.StatusOK, map[string]any{"searches": orEmpty(c.searches.of(s.User))})
}

func (c *Console) apiSearchSave(w http.ResponseWriter, r *http.Request, s *session) {
	var in saveSearchInput
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		apiError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	x, err := c.saveSearch(s, in)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	c.record(r, s, auditSavedSearch, x.Name, x.Query)
	writeJSON(w, http.StatusOK, x)
}

func (c *Console) apiSearchDelete(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.searches.remove(s.User, r.PathValue("id")); err != nil {
		apiError(w, http.StatusNotFound, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func orEmpty[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}
