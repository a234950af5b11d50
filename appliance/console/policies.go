package console

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
)

// Errors of policy editing.
var (
	ErrNoPolicyDir   = errors.New("the appliance has no policy directory (policy.dir)")
	ErrBadFileName   = errors.New("file name must be letters, digits, . _ - ending in .yaml or .yml")
	ErrEditConflict  = errors.New("the file changed since you opened it")
	ErrInvalidPolicy = errors.New("the policies do not validate")
)

var fileNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.ya?ml$`)

// policyFiles reads the policy directory: relative name → content. It
// follows the appliance's loader: every *.yaml and *.yml below the
// directory, in lexical order of their paths.
func (c *Console) policyFiles() (map[string][]byte, []string, error) {
	dir := c.opt.PolicyDir
	if dir == "" {
		return nil, nil, ErrNoPolicyDir
	}
	files := map[string][]byte{}
	var order []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[rel] = b
		order = append(order, p)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("policy directory: %w", err)
	}
	slices.Sort(order)
	names := make([]string, len(order))
	for i, p := range order {
		names[i], _ = filepath.Rel(dir, p)
	}
	return files, names, nil
}

// Problem is one validation finding, as `policy check` prints it.
type Problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	Text    string `json:"text"` // the whole line, as the CLI shows it
}

func problemsOf(err error) []Problem {
	var out []Problem
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		var list policy.ErrorList
		if errors.As(err, &list) && err.Error() == list.Error() {
			for _, e := range list {
				kind := "error"
				if e.Kind != nil {
					kind = e.Kind.Error()
				}
				out = append(out, Problem{File: e.Pos.File, Line: e.Pos.Line, Col: e.Pos.Col, Kind: kind, Message: e.Msg, Hint: e.Hint, Text: e.Error()})
			}
			return
		}
		var pe *policy.Error
		if errors.As(err, &pe) && err.Error() == pe.Error() {
			out = append(out, Problem{File: pe.Pos.File, Line: pe.Pos.Line, Col: pe.Pos.Col, Kind: fmt.Sprint(pe.Kind), Message: pe.Msg, Hint: pe.Hint, Text: pe.Error()})
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		out = append(out, Problem{Kind: "error", Message: err.Error(), Text: err.Error()})
	}
	walk(err)
	return out
}

// parseSet parses and merges files (name → content) in the loader's
// order. The partial set comes back with the errors, so checking goes on.
func parseSet(files map[string][]byte) (*policy.PolicySet, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var sets []*policy.PolicySet
	var errs []error
	for _, n := range names {
		s, err := policy.Parse(n, files[n])
		if err != nil {
			errs = append(errs, err)
		}
		if s != nil {
			sets = append(sets, s)
		}
	}
	set, err := policy.Merge(sets...)
	errs = append(errs, err)
	return set, errors.Join(errs...)
}

// validate checks the directory as it would be with file set to content:
// what `policy check` says, with the appliance's capabilities.
func (c *Console) validate(files map[string][]byte) (*policy.PolicySet, []Problem) {
	set, err := parseSet(files)
	if set != nil {
		err = errors.Join(err, policy.CheckFor(set, c.opt.Capabilities()))
	}
	return set, problemsOf(err)
}

func withFile(files map[string][]byte, name string, content []byte) map[string][]byte {
	out := make(map[string][]byte, len(files)+1)
	for k, v := range files {
		out[k] = v
	}
	if content == nil {
		delete(out, name)
	} else {
		out[name] = content
	}
	return out
}

func digest(b []byte) string {
	if b == nil {
		return ""
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// PolicyRow is one policy in evaluation order.
type PolicyRow struct {
	Order    int       `json:"order"`
	Kind     string    `json:"kind"` // access or session
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Control  string    `json:"control,omitempty"`
	Action   string    `json:"action"`
	Disabled bool      `json:"disabled,omitempty"`
	File     string    `json:"file"`
	Line     int       `json:"line"`
	Hits     int       `json:"hits_7d"`
	LastHit  time.Time `json:"last_hit,omitzero"`
}

// PolicyFileInfo is one file of the directory.
type PolicyFileInfo struct {
	Name     string `json:"name"`
	SHA256   string `json:"sha256"`
	Size     int    `json:"size"`
	Editable bool   `json:"editable"`
}

// PolicyList is the policies page's data.
type PolicyList struct {
	Dir      string           `json:"dir"`
	Files    []PolicyFileInfo `json:"files"`
	Access   []PolicyRow      `json:"access_policies"`
	Session  []PolicyRow      `json:"session_policies"`
	Problems []Problem        `json:"problems,omitempty"`
}

func (c *Console) policyList() (*PolicyList, error) {
	files, names, err := c.policyFiles()
	if err != nil {
		return nil, err
	}
	pl := &PolicyList{Dir: c.opt.PolicyDir}
	for _, n := range names {
		pl.Files = append(pl.Files, PolicyFileInfo{Name: n, SHA256: digest(files[n]), Size: len(files[n]), Editable: fileNamePattern.MatchString(n)})
	}
	set, problems := c.validate(files)
	pl.Problems = problems
	if set == nil {
		return pl, nil
	}
	var ids []string
	for i, p := range set.AccessPolicies {
		pl.Access = append(pl.Access, PolicyRow{Order: i + 1, Kind: "access", ID: p.ID, Name: p.Name, Action: p.Action.String(),
			Disabled: p.Disabled, File: p.At.File, Line: p.At.Line})
		ids = append(ids, p.ID)
	}
	for i, p := range set.SessionPolicies {
		pl.Session = append(pl.Session, PolicyRow{Order: i + 1, Kind: "session", ID: p.ID, Name: p.Name, Control: p.Control.String(),
			Action: p.Action.String(), Disabled: p.Disabled, File: p.At.File, Line: p.At.Line})
		ids = append(ids, p.ID)
	}
	hits := c.policyHits(ids, c.opt.Now().Add(-7*24*time.Hour))
	for _, rows := range [][]PolicyRow{pl.Access, pl.Session} {
		for i := range rows {
			h := hits[rows[i].ID]
			rows[i].Hits, rows[i].LastHit = h.Count, h.Last
		}
	}
	return pl, nil
}

func (c *Console) apiPolicies(w http.ResponseWriter, _ *http.Request, _ *session) {
	pl, err := c.policyList()
	if err != nil {
		apiError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, pl)
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNoPolicyDir), errors.Is(err, errNoSNMPUsers):
		return http.StatusNotFound
	case errors.Is(err, ErrBadFileName), errors.Is(err, ErrSNMPUser):
		return http.StatusBadRequest
	case errors.Is(err, ErrEditConflict):
		return http.StatusConflict
	case errors.Is(err, ErrInvalidPolicy):
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

func (c *Console) apiPolicyFile(w http.ResponseWriter, r *http.Request, _ *session) {
	name := r.PathValue("name")
	if !fileNamePattern.MatchString(name) {
		apiError(w, http.StatusBadRequest, ErrBadFileName.Error())
		return
	}
	files, _, err := c.policyFiles()
	if err != nil {
		apiError(w, statusOf(err), err.Error())
		return
	}
	b, ok := files[name]
	if !ok {
		apiError(w, http.StatusNotFound, "no such policy file")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "content": string(b), "sha256": digest(b)})
}

// policyInput is what the editor sends to validate, dry-run and save.
type policyInput struct {
	File    string `json:"file"`
	Content string `json:"content"`
	// BaseSHA256 is the digest of the file when the editor opened it
	// ("" for a new file): a save refuses if the file changed since.
	BaseSHA256 string `json:"base_sha256"`
	Summary    string `json:"summary"`
	Events     int    `json:"events"` // dry-run: how many recent events (default 1000)
}

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	return nil
}

func (c *Console) readInput(w http.ResponseWriter, r *http.Request) (policyInput, map[string][]byte, bool) {
	var in policyInput
	if err := decodeJSON(r, &in); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return in, nil, false
	}
	if name := r.PathValue("name"); name != "" {
		in.File = name
	}
	if !fileNamePattern.MatchString(in.File) {
		apiError(w, http.StatusBadRequest, ErrBadFileName.Error())
		return in, nil, false
	}
	if len(in.Content) > policy.MaxFileSize {
		apiError(w, http.StatusRequestEntityTooLarge, "policy file too large")
		return in, nil, false
	}
	files, _, err := c.policyFiles()
	if err != nil {
		apiError(w, statusOf(err), err.Error())
		return in, nil, false
	}
	return in, files, true
}

func (c *Console) apiPolicyValidate(w http.ResponseWriter, r *http.Request, _ *session) {
	in, files, ok := c.readInput(w, r)
	if !ok {
		return
	}
	set, problems := c.validate(withFile(files, in.File, []byte(in.Content)))
	out := map[string]any{"valid": !blocking(problems), "problems": problems}
	if set != nil {
		out["access_policies"], out["session_policies"] = len(set.AccessPolicies), len(set.SessionPolicies)
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) apiPolicyDryRun(w http.ResponseWriter, r *http.Request, _ *session) {
	in, files, ok := c.readInput(w, r)
	if !ok {
		return
	}
	res, problems, err := c.dryRun(files, withFile(files, in.File, []byte(in.Content)), in.Events)
	switch {
	case len(problems) > 0:
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": ErrInvalidPolicy.Error(), "problems": problems})
	case err != nil:
		apiError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

// SaveResult is what a save answers.
type SaveResult struct {
	Revision *Revision `json:"revision"`
	SHA256   string    `json:"sha256"`
	Reloaded bool      `json:"reloaded"`
	// Savepoint: the change is risky and is reverted unless an admin
	// confirms it in time, as any apply of the tray.
	Savepoint *SavepointView `json:"savepoint,omitempty"`
}

// apiPolicySave is the editor's "Save and apply now": the file's new
// content is staged as a policy_file change and applied alone, through the
// tray (the same validation, conflict check, revision, reload and
// savepoint as the tray's apply).
func (c *Console) apiPolicySave(w http.ResponseWriter, r *http.Request, s *session) {
	in, _, ok := c.readInput(w, r)
	if !ok {
		return
	}
	content := in.Content
	ch := Change{Kind: ChangePolicyFile, File: in.File, Note: in.Summary, Content: &content}
	res, err := c.applyNow(s.User, ch, in.BaseSHA256, "")
	if err != nil {
		c.record(r, s, auditTrayRefused, in.File, clip(err.Error(), 300))
		out := map[string]any{"error": err.Error()}
		var ae *applyError
		if errors.As(err, &ae) && ae.problems != nil {
			out["error"], out["problems"] = ErrInvalidPolicy.Error(), ae.problems
		}
		writeJSON(w, trayStatus(err), out)
		return
	}
	if len(res.Revisions) != 1 {
		apiError(w, http.StatusInternalServerError, "saved, but its revision was not kept")
		return
	}
	rev := res.Revisions[0]
	detail := fmt.Sprintf("revision %d: %s", rev.ID, rev.Summary)
	if res.Savepoint != nil {
		detail = "risky, to confirm by " + res.Savepoint.Deadline.Format(time.RFC3339) + ": " + detail
	}
	c.record(r, s, auditPolicySave, in.File, clip(detail, 1000))
	writeJSON(w, http.StatusOK, SaveResult{Revision: rev, SHA256: rev.SHA256, Reloaded: res.Reloaded, Savepoint: res.Savepoint})
}

// summarizeChange says in words what a save changed, policy by policy:
// "policy x: action monitor → block", "added session policy y".
func summarizeChange(file string, before, after []byte) string {
	type info struct {
		kind, action, control string
		disabled              bool
	}
	index := func(b []byte) map[string]info {
		m := map[string]info{}
		if b == nil {
			return m
		}
		s, _ := policy.Parse(file, b)
		if s == nil {
			return m
		}
		for _, p := range s.AccessPolicies {
			m[p.ID] = info{"access", p.Action.String(), "", p.Disabled}
		}
		for _, p := range s.SessionPolicies {
			m[p.ID] = info{"session", p.Action.String(), p.Control.String(), p.Disabled}
		}
		return m
	}
	was, now := index(before), index(after)
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(now)) {
		n, ok := was[id]
		a := now[id]
		switch {
		case !ok:
			parts = append(parts, fmt.Sprintf("added %s policy %s (%s)", a.kind, id, a.action))
		case n.action != a.action:
			parts = append(parts, fmt.Sprintf("policy %s: action %s → %s", id, n.action, a.action))
		case n.disabled != a.disabled:
			parts = append(parts, fmt.Sprintf("policy %s: %s", id, map[bool]string{true: "disabled", false: "enabled"}[a.disabled]))
		case n.control != a.control:
			parts = append(parts, fmt.Sprintf("policy %s: control %s → %s", id, n.control, a.control))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(was)) {
		if _, ok := now[id]; !ok {
			parts = append(parts, "removed policy "+id)
		}
	}
	if len(parts) == 0 {
		if before == nil {
			return "created " + file
		}
		return "edited " + file + " (no policy action changed)"
	}
	return strings.Join(parts, "; ")
}
