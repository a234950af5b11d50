package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-gw/portcullis/policy"
)

// The pending-changes tray. Every change the console makes to the
// appliance's files is staged here first, by any admin, and the tray is
// applied as one: every file validated together, written atomically, one
// revision per file with author, time and summary, and one reload through
// the appliance's reload path. A change is an operation (disable policy x,
// replace file y, add app z), not a snapshot, so changes to one file
// compose and each can be discarded alone; the tray replays them over the
// files on disk to show each one's diff and to apply.
//
// Concurrent edits: a change remembers the digest of its file on disk when
// it was staged; if the file changed since (another admin applied, or a
// hand edit), the apply is refused with a conflict and nothing is written.
// The tray itself has a version every stage and discard bumps; an apply
// names the version its admin reviewed, so nobody applies a change they
// have not seen.
//
// Risky changes (those that could lock the admin out: today access
// policies that apply to the app serving the console's own address, or a
// change of which app serves it; settings pages add theirs) are applied
// with a savepoint: unless an admin confirms within ConfirmTimeout, the
// files are put back as they were and the appliance reloads again.

// Errors of the tray.
var (
	ErrTrayChanged   = errors.New("the pending changes changed since you reviewed them")
	ErrTrayEmpty     = errors.New("there are no pending changes")
	ErrBaseChanged   = errors.New("the file changed on disk since the change was staged")
	ErrSavepoint     = errors.New("a risky change is waiting for confirmation: confirm or revert it first")
	ErrNoSavepoint   = errors.New("no change is waiting for confirmation")
	ErrBadChange     = errors.New("bad change")
	ErrTooManyStaged = errors.New("too many pending changes")
)

const maxStaged = 200

// Change kinds.
const (
	ChangePolicyFile    = "policy_file"    // File's content replaced (the editor)
	ChangePolicyEnabled = "policy_enabled" // Policy enabled or disabled
	ChangeMonitorOnly   = "monitor_only"   // Policy's monitor-only switch
	ChangeRestore       = "restore"        // File as before or after Revision
	ChangeAppAdd        = "app_add"        // a custom app in the console's apps file
	ChangeAppDomain     = "app_domain"     // a domain added to an app (custom_domains)
)

// Change is one staged edit.
type Change struct {
	ID     int       `json:"id"`
	Kind   string    `json:"kind"`
	Author string    `json:"author"`
	Time   time.Time `json:"time"`
	Note   string    `json:"note,omitempty"`
	File   string    `json:"file"`
	// BaseSHA256 is the file's digest on disk when the change was staged
	// ("" when it did not exist).
	BaseSHA256 string `json:"base_sha256"`

	Policy   string   `json:"policy,omitempty"`
	Enabled  *bool    `json:"enabled,omitempty"`
	On       *bool    `json:"on,omitempty"` // monitor-only
	Content  *string  `json:"content,omitempty"`
	Revision int      `json:"revision,omitempty"`
	Side     string   `json:"side,omitempty"` // restore: "before" or "after" the revision
	App      *AppForm `json:"app,omitempty"`
	AppID    string   `json:"app_id,omitempty"`
	Domain   string   `json:"domain,omitempty"`
	Setting  string   `json:"setting,omitempty"` // trayext.go
}

// trayState is what tray.json holds.
type trayState struct {
	Version   int        `json:"version"`
	NextID    int        `json:"next_id"`
	Changes   []Change   `json:"changes"`
	Savepoint *savepoint `json:"savepoint,omitempty"`
}

// savepoint is an applied risky change waiting for confirmation.
type savepoint struct {
	Deadline time.Time `json:"deadline"`
	Author   string    `json:"author"`
	Summary  string    `json:"summary"`
	// Before is every file the apply wrote, as it was (nil: did not exist).
	Before map[string]*string `json:"before"`
	// MonitorBefore is the monitor-only memory before the apply.
	MonitorBefore map[string]monitorMemory `json:"monitor_before"`
}

type tray struct {
	mu    sync.Mutex
	path  string
	st    trayState
	timer *time.Timer
}

func openTray(consoleDir string) (*tray, error) {
	t := &tray{path: filepath.Join(consoleDir, "tray.json"), st: trayState{NextID: 1}}
	b, err := os.ReadFile(t.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("console tray: %w", err)
	default:
		if err := json.Unmarshal(b, &t.st); err != nil {
			return nil, fmt.Errorf("console tray %s: %w", t.path, err)
		}
	}
	return t, nil
}

// save writes the state; the caller holds mu.
func (t *tray) save() error {
	b, err := json.MarshalIndent(t.st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(t.path, b, 0o600)
}

// monitorMemory is what the monitor-only switch replaced, to put it back.
type monitorMemory struct {
	File    string `json:"file"`
	Action  string `json:"action"`
	Protect string `json:"protect,omitempty"` // YAML of the protect block
}

// monitorMemories is monitor-only.json: policy id → what the switch
// replaced. A policy is "monitor-only" while its action is monitor and it
// has a memory; a hand edit of its action ends the switch.
func (c *Console) monitorMemories() map[string]monitorMemory {
	m := map[string]monitorMemory{}
	if b, err := os.ReadFile(filepath.Join(c.dir, "monitor-only.json")); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

func (c *Console) saveMonitorMemories(m map[string]monitorMemory) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.dir, "monitor-only.json"), b, 0o600)
}

// StagedChange is a change as the tray shows it: with its diff and what it
// does in words, computed against the files as they are now.
type StagedChange struct {
	Change
	Summary string `json:"summary"`
	Diff    string `json:"diff"`
	Risky   bool   `json:"risky"`
	// Conflict: the file changed on disk since the change was staged.
	Conflict bool   `json:"conflict,omitempty"`
	Error    string `json:"error,omitempty"`
}

// TrayView is GET /api/v1/tray.
type TrayView struct {
	Version  int            `json:"version"`
	Changes  []StagedChange `json:"changes"`
	Problems []Problem      `json:"problems,omitempty"`
	// Valid: the files with every change applied pass validation
	// (warnings allowed).
	Valid     bool           `json:"valid"`
	Risky     bool           `json:"risky"`
	Savepoint *SavepointView `json:"savepoint,omitempty"`
	// ConfirmSeconds is how long a risky change waits for confirmation.
	ConfirmSeconds int `json:"confirm_seconds"`
}

// SavepointView is the pending confirmation.
type SavepointView struct {
	Deadline  time.Time `json:"deadline"`
	Remaining float64   `json:"remaining_seconds"`
	Author    string    `json:"author"`
	Summary   string    `json:"summary"`
}

// trayReplay is the outcome of replaying changes over the files on disk.
type trayReplay struct {
	files   map[string][]byte // every file, as the changes leave it (nil value: deleted)
	touched []string          // files the changes write, in first-touch order
	views   []StagedChange
	monitor map[string]monitorMemory // the memory as the changes leave it
	err     error                    // the first change that could not be replayed
}

// replay applies changes in order to the files on disk (disk: name →
// content).
func (c *Console) replay(disk map[string][]byte, changes []Change) *trayReplay {
	r := &trayReplay{files: withFile(disk, "", nil), monitor: c.monitorMemories()}
	seen := map[string]bool{}
	for _, ch := range changes {
		v := StagedChange{Change: ch, Conflict: digest(disk[ch.File]) != ch.BaseSHA256}
		before, had := r.files[ch.File]
		if !had {
			before = nil
		}
		after, summary, err := c.applyChange(ch, before, r.monitor)
		if err != nil {
			v.Error = err.Error()
			if r.err == nil {
				r.err = fmt.Errorf("change %d (%s): %w", ch.ID, ch.Kind, err)
			}
			r.views = append(r.views, v)
			continue
		}
		v.Summary = summary
		v.Diff = unifiedDiff(ch.File, string(before), string(after))
		beforeSet := withFile(r.files, "", nil)
		if after == nil {
			delete(r.files, ch.File)
		} else {
			r.files[ch.File] = after
		}
		v.Risky = c.risky(beforeSet, r.files)
		if !seen[ch.File] {
			seen[ch.File] = true
			r.touched = append(r.touched, ch.File)
		}
		r.views = append(r.views, v)
	}
	return r
}

// applyChange is one change's effect on its file: the new content (nil
// deletes the file) and a summary in words.
func (c *Console) applyChange(ch Change, before []byte, monitor map[string]monitorMemory) ([]byte, string, error) {
	note := func(s string) string {
		if n := strings.TrimSpace(ch.Note); n != "" {
			return clip(n, 200) + " — " + s
		}
		return s
	}
	switch ch.Kind {
	case ChangePolicyFile:
		if ch.Content == nil {
			return nil, "", fmt.Errorf("%w: content missing", ErrBadChange)
		}
		after := []byte(*ch.Content)
		if len(after) > 0 && after[len(after)-1] != '\n' {
			after = append(after, '\n')
		}
		return after, note(summarizeChange(ch.File, before, after)), nil
	case ChangePolicyEnabled:
		if ch.Enabled == nil {
			return nil, "", fmt.Errorf("%w: enabled missing", ErrBadChange)
		}
		disabled := !*ch.Enabled
		after, err := editPolicy(ch.File, before, ch.Policy, policyEdit{Disabled: &disabled})
		if err != nil {
			return nil, "", err
		}
		return after, note(fmt.Sprintf("policy %s: %s", ch.Policy, map[bool]string{true: "enabled", false: "disabled"}[*ch.Enabled])), nil
	case ChangeMonitorOnly:
		if ch.On == nil {
			return nil, "", fmt.Errorf("%w: on missing", ErrBadChange)
		}
		p, err := findPolicy(ch.File, before, ch.Policy)
		if err != nil {
			return nil, "", err
		}
		if *ch.On {
			if p.action == policy.ActionMonitor {
				return nil, "", fmt.Errorf("%w: policy %s already monitors", ErrBadChange, ch.Policy)
			}
			e := policyEdit{Action: policy.ActionMonitor, DropProtect: p.protect != ""}
			after, err := editPolicy(ch.File, before, ch.Policy, e)
			if err != nil {
				return nil, "", err
			}
			monitor[ch.Policy] = monitorMemory{File: ch.File, Action: p.action.String(), Protect: p.protect}
			return after, note(fmt.Sprintf("policy %s: monitor-only on (action %s → monitor)", ch.Policy, p.action)), nil
		}
		mem, ok := monitor[ch.Policy]
		if !ok || p.action != policy.ActionMonitor {
			return nil, "", fmt.Errorf("%w: policy %s is not in monitor-only mode", ErrBadChange, ch.Policy)
		}
		var a policy.Action
		if err := a.UnmarshalText([]byte(mem.Action)); err != nil {
			return nil, "", fmt.Errorf("%w: remembered action: %v", ErrBadChange, err)
		}
		after, err := editPolicy(ch.File, before, ch.Policy, policyEdit{Action: a, Protect: mem.Protect})
		if err != nil {
			return nil, "", err
		}
		delete(monitor, ch.Policy)
		return after, note(fmt.Sprintf("policy %s: monitor-only off (action monitor → %s)", ch.Policy, a)), nil
	case ChangeRestore:
		rev, err := c.revs.get(ch.Revision)
		if err != nil {
			return nil, "", err
		}
		content := rev.After
		if ch.Side == "before" {
			content = rev.Before
		}
		var after []byte
		if content != "" {
			after = []byte(content)
		}
		what := map[bool]string{true: "as before revision", false: "as of revision"}[ch.Side == "before"]
		return after, note(fmt.Sprintf("rollback: %s %s %d — %s", ch.File, what, rev.ID, summarizeChange(ch.File, before, after))), nil
	case ChangeAppAdd, ChangeAppDomain:
		return c.applyAppChange(ch, before, note)
	}
	if extKind(ch.Kind) { // files outside the policy directory (trayext.go)
		return c.applyExtChange(ch, before, note)
	}
	return nil, "", fmt.Errorf("%w: unknown kind %q", ErrBadChange, ch.Kind)
}

type policyFacts struct {
	action  policy.Action
	protect string
}

func findPolicy(file string, src []byte, id string) (policyFacts, error) {
	s, err := policy.Parse(file, src)
	if err != nil && s == nil {
		return policyFacts{}, fmt.Errorf("%w: %s does not parse: %v", ErrCannotEdit, file, err)
	}
	for _, p := range s.AccessPolicies {
		if p.ID == id {
			return policyFacts{action: p.Action}, nil
		}
	}
	for _, p := range s.SessionPolicies {
		if p.ID == id {
			f := policyFacts{action: p.Action}
			if !p.Protect.IsZero() {
				b, err := yaml.Marshal(p.Protect)
				if err != nil {
					return f, fmt.Errorf("%w: protect block: %v", ErrCannotEdit, err)
				}
				f.protect = string(b)
			}
			return f, nil
		}
	}
	return policyFacts{}, fmt.Errorf("%w %q in %s", ErrNoSuchPolicy, id, file)
}

// risky reports whether going from before to after could cut the admin
// off from the console.
func (c *Console) risky(before, after map[string][]byte) bool {
	hosts := c.opt.ManagementHosts
	if len(hosts) == 0 {
		return false
	}
	return managementSig(policyOnly(before), hosts) != managementSig(policyOnly(after), hosts)
}

// managementSig describes what decides connections to the console's
// addresses: the app serving each and the access policies applying to
// that app.
func managementSig(files map[string][]byte, hosts []string) string {
	set, _ := parseSet(files)
	if set == nil {
		return "unparsable"
	}
	e, err := policy.Compile(set)
	if err != nil {
		return "invalid"
	}
	var b strings.Builder
	for _, h := range hosts {
		app := e.App(h)
		if app == nil {
			b.WriteString(h + "=none;")
			continue
		}
		b.WriteString(h + "=" + app.ID + ":")
		for i := range set.AccessPolicies {
			p := set.AccessPolicies[i]
			if !appliesTo(&p.Filters, app.ID) {
				continue
			}
			p.At = policy.Pos{}
			one, _ := policy.Marshal(&policy.PolicySet{AccessPolicies: []policy.AccessPolicy{p}})
			b.Write(one)
		}
		b.WriteString(";")
	}
	return b.String()
}

func appliesTo(f *policy.Filters, app string) bool {
	if len(f.Apps.AnyOf) > 0 && !slices.Contains(f.Apps.AnyOf, app) {
		return false
	}
	return !slices.Contains(f.Apps.NoneOf, app)
}

// view is the tray as it would apply now.
func (c *Console) trayView() (*TrayView, error) {
	disk, _, err := c.trayFiles()
	if err != nil && !errors.Is(err, ErrNoPolicyDir) {
		return nil, err
	}
	c.tray.mu.Lock()
	st := c.tray.st
	changes := slices.Clone(st.Changes)
	var sp *SavepointView
	if s := st.Savepoint; s != nil {
		sp = &SavepointView{Deadline: s.Deadline, Remaining: max(0, s.Deadline.Sub(c.opt.Now()).Seconds()), Author: s.Author, Summary: s.Summary}
	}
	c.tray.mu.Unlock()
	tv := &TrayView{Version: st.Version, Savepoint: sp, ConfirmSeconds: int(c.opt.ConfirmTimeout / time.Second), Valid: true}
	if len(changes) == 0 {
		tv.Changes = []StagedChange{}
		return tv, nil
	}
	r := c.replay(disk, changes)
	tv.Changes = r.views
	for _, v := range r.views {
		tv.Risky = tv.Risky || v.Risky
		if v.Conflict || v.Error != "" {
			tv.Valid = false
		}
	}
	_, tv.Problems = c.trayValidate(nonNil(r.files))
	if blocking(tv.Problems) {
		tv.Valid = false
	}
	return tv, nil
}

func nonNil(files map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range files {
		if v != nil {
			out[k] = v
		}
	}
	return out
}

// blocking: a problem other than a warning.
func blocking(ps []Problem) bool {
	return slices.ContainsFunc(ps, func(p Problem) bool { return p.Kind != policy.ErrNoCondition.Error() })
}

// stage adds a change after checking it replays and leaves the files
// valid. base is the digest the author's view of the file had ("-": take
// the file as it is on disk now).
func (c *Console) stage(author string, ch Change, base string) (*Change, []Problem, error) {
	if !fileNamePattern.MatchString(ch.File) && !isExtFile(ch.File) {
		return nil, nil, ErrBadFileName
	}
	c.policyMu.Lock()
	defer c.policyMu.Unlock()
	disk, _, err := c.trayFiles()
	if err != nil {
		return nil, nil, err
	}
	ch.BaseSHA256 = digest(disk[ch.File])
	if base != "-" && base != ch.BaseSHA256 {
		return nil, nil, fmt.Errorf("%w: %s changed since you opened it; reload, merge your change and stage it again", ErrEditConflict, ch.File)
	}
	ch.Author, ch.Time = author, c.opt.Now().UTC()
	ch.Note = clip(strings.TrimSpace(ch.Note), 200)
	c.tray.mu.Lock()
	defer c.tray.mu.Unlock()
	if len(c.tray.st.Changes) >= maxStaged {
		return nil, nil, ErrTooManyStaged
	}
	ch.ID = c.tray.st.NextID
	r := c.replay(disk, append(slices.Clone(c.tray.st.Changes), ch))
	if r.err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadChange, r.views[len(r.views)-1].Error)
	}
	if _, problems := c.trayValidate(nonNil(r.files)); blocking(problems) {
		return nil, problems, nil
	}
	c.tray.st.NextID++
	c.tray.st.Version++
	c.tray.st.Changes = append(c.tray.st.Changes, ch)
	if err := c.tray.save(); err != nil {
		return nil, nil, err
	}
	return &ch, nil, nil
}

func (c *Console) discard(id int) (*Change, error) {
	c.tray.mu.Lock()
	defer c.tray.mu.Unlock()
	i := slices.IndexFunc(c.tray.st.Changes, func(ch Change) bool { return ch.ID == id })
	if i < 0 {
		return nil, fmt.Errorf("%w: no pending change %d", ErrBadChange, id)
	}
	ch := c.tray.st.Changes[i]
	c.tray.st.Changes = slices.Delete(c.tray.st.Changes, i, i+1)
	c.tray.st.Version++
	return &ch, c.tray.save()
}

// ApplyResult is what an apply answers.
type ApplyResult struct {
	Revisions []*Revision    `json:"revisions"`
	Reloaded  bool           `json:"reloaded"`
	Savepoint *SavepointView `json:"savepoint,omitempty"`
}

// applyError carries the problems or conflicting changes of a refused
// apply.
type applyError struct {
	err       error
	problems  []Problem
	conflicts []int
}

func (e *applyError) Error() string { return e.err.Error() }
func (e *applyError) Unwrap() error { return e.err }

// apply writes every staged change (the tray version the admin reviewed),
// reloads, keeps revisions, and starts a savepoint when a change is risky.
func (c *Console) apply(author string, version int, note string) (*ApplyResult, error) {
	return c.commit(author, note, func(st *trayState, _ map[string][]byte) ([]Change, []Change, error) {
		if version != st.Version {
			return nil, nil, fmt.Errorf("%w (you saw version %d, it is %d now): review them again", ErrTrayChanged, version, st.Version)
		}
		if len(st.Changes) == 0 {
			return nil, nil, ErrTrayEmpty
		}
		return st.Changes, nil, nil
	})
}

// applyNow stages ch and applies it alone, in one step: the editor's "Save
// and apply now". base is the digest of the file the author edited, as for
// stage. The change goes through the tray's apply (validation, revision,
// reload, savepoint when risky); the other pending changes stay staged, and
// those to the same file then show as conflicts, as after another admin's
// apply.
func (c *Console) applyNow(author string, ch Change, base, note string) (*ApplyResult, error) {
	if !fileNamePattern.MatchString(ch.File) && !isExtFile(ch.File) {
		return nil, ErrBadFileName
	}
	return c.commit(author, note, func(st *trayState, disk map[string][]byte) ([]Change, []Change, error) {
		ch.BaseSHA256 = digest(disk[ch.File])
		if base != "-" && base != ch.BaseSHA256 {
			return nil, nil, fmt.Errorf("%w: %s changed since you opened it; reload, merge your change and save again", ErrEditConflict, ch.File)
		}
		ch.Author, ch.Time = author, c.opt.Now().UTC()
		ch.Note = clip(strings.TrimSpace(ch.Note), 200)
		ch.ID = st.NextID
		st.NextID++
		return []Change{ch}, st.Changes, nil
	})
}

// commit applies changes: take picks them from the tray (and what the
// tray holds afterwards) given the files on disk. The changes are
// replayed over the files, refused on a conflict or an invalid result,
// written, reloaded, kept as one revision per file, and a risky one starts
// a savepoint. Nothing is applied while a savepoint waits.
func (c *Console) commit(author, note string, take func(st *trayState, disk map[string][]byte) (changes, rest []Change, err error)) (*ApplyResult, error) {
	c.policyMu.Lock()
	defer c.policyMu.Unlock()
	c.tray.mu.Lock()
	defer c.tray.mu.Unlock()
	st := &c.tray.st
	if st.Savepoint != nil {
		return nil, ErrSavepoint
	}
	disk, _, err := c.trayFiles()
	if err != nil {
		return nil, err
	}
	changes, rest, err := take(st, disk)
	if err != nil {
		return nil, err
	}
	r := c.replay(disk, changes)
	var conflicts []int
	for _, v := range r.views {
		if v.Conflict {
			conflicts = append(conflicts, v.ID)
		}
	}
	if len(conflicts) > 0 {
		return nil, &applyError{err: fmt.Errorf("%w: another admin or a hand edit changed the file; discard the conflicting changes and stage them again", ErrBaseChanged), conflicts: conflicts}
	}
	if r.err != nil {
		return nil, &applyError{err: fmt.Errorf("%w: %v", ErrBadChange, r.err)}
	}
	if _, problems := c.trayValidate(nonNil(r.files)); blocking(problems) {
		return nil, &applyError{err: ErrInvalidPolicy, problems: problems}
	}
	risky := false
	var parts []string
	for _, v := range r.views {
		risky = risky || v.Risky
		parts = append(parts, v.Summary)
	}
	summary := strings.Join(parts, "; ")
	if n := strings.TrimSpace(note); n != "" {
		summary = clip(n, 200) + " — " + summary
	}
	before := map[string]*string{}
	for _, f := range r.touched {
		if b, ok := disk[f]; ok {
			s := string(b)
			before[f] = &s
		} else {
			before[f] = nil
		}
	}
	monitorBefore := c.monitorMemories()
	if err := c.writeFiles(r.files, r.touched, before); err != nil {
		return nil, err
	}
	reloaded := false
	if c.opt.Reload != nil {
		if err := c.opt.Reload(); err != nil {
			_ = c.restoreFiles(before)
			_ = c.opt.Reload()
			return nil, fmt.Errorf("the appliance refused the changes, the files were restored: %w", err)
		}
		reloaded = true
	}
	if err := c.saveMonitorMemories(r.monitor); err != nil {
		c.opt.Log.Error("console monitor-only memory", "err", err)
	}
	res := &ApplyResult{Reloaded: reloaded}
	now := c.opt.Now().UTC()
	for _, f := range r.touched {
		var fileParts []string
		for _, v := range r.views {
			if v.File == f {
				fileParts = append(fileParts, v.Summary)
			}
		}
		fs := strings.Join(fileParts, "; ")
		if n := strings.TrimSpace(note); n != "" {
			fs = clip(n, 200) + " — " + fs
		}
		old := ""
		if before[f] != nil {
			old = *before[f]
		}
		rev, err := c.revs.add(Revision{Time: now, Author: author, File: f, Summary: fs,
			Diff: unifiedDiff(f, old, string(r.files[f])), Before: old, After: string(r.files[f]), SHA256: digest(r.files[f])})
		if err != nil {
			c.opt.Log.Error("console revision", "err", err)
			continue
		}
		res.Revisions = append(res.Revisions, rev)
	}
	st.Changes = rest
	st.Version++
	if risky {
		st.Savepoint = &savepoint{Deadline: now.Add(c.opt.ConfirmTimeout), Author: author, Summary: summary, Before: before, MonitorBefore: monitorBefore}
		res.Savepoint = &SavepointView{Deadline: st.Savepoint.Deadline, Remaining: c.opt.ConfirmTimeout.Seconds(), Author: author, Summary: summary}
		c.armSavepoint(c.opt.ConfirmTimeout)
	}
	if err := c.tray.save(); err != nil {
		return res, err
	}
	return res, nil
}

// writeFiles writes the touched files atomically, one by one; if one
// fails, those already written are put back.
func (c *Console) writeFiles(files map[string][]byte, touched []string, before map[string]*string) error {
	var done []string
	for _, f := range touched {
		path := c.trayPath(f)
		var err error
		if b := files[f]; b == nil {
			err = os.Remove(path)
			if errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		} else {
			mode := os.FileMode(0o644)
			if fi, serr := os.Stat(path); serr == nil {
				mode = fi.Mode().Perm()
			}
			err = writeFileAtomic(path, b, mode)
		}
		if err != nil {
			part := map[string]*string{}
			for _, d := range done {
				part[d] = before[d]
			}
			_ = c.restoreFiles(part)
			return fmt.Errorf("write %s: %w (nothing applied)", f, err)
		}
		done = append(done, f)
	}
	return nil
}

func (c *Console) restoreFiles(before map[string]*string) error {
	var errs []error
	for f, b := range before {
		path := c.trayPath(f)
		if b == nil {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		mode := os.FileMode(0o644)
		if fi, err := os.Stat(path); err == nil {
			mode = fi.Mode().Perm()
		}
		errs = append(errs, writeFileAtomic(path, []byte(*b), mode))
	}
	return errors.Join(errs...)
}

// armSavepoint (re)starts the revert timer; the caller holds tray.mu.
func (c *Console) armSavepoint(d time.Duration) {
	if c.tray.timer != nil {
		c.tray.timer.Stop()
	}
	c.tray.timer = time.AfterFunc(max(d, 0), func() {
		if err := c.revertSavepoint("console (not confirmed in time)", true); err != nil && !errors.Is(err, ErrNoSavepoint) {
			c.opt.Log.Error("console auto-revert", "err", err)
		}
	})
}

// confirm keeps a risky change.
func (c *Console) confirm() (*savepoint, error) {
	c.tray.mu.Lock()
	defer c.tray.mu.Unlock()
	sp := c.tray.st.Savepoint
	if sp == nil {
		return nil, ErrNoSavepoint
	}
	if c.tray.timer != nil {
		c.tray.timer.Stop()
	}
	c.tray.st.Savepoint = nil
	c.tray.st.Version++
	return sp, c.tray.save()
}

// revertSavepoint puts the files of a risky change back, reloads and keeps
// a revision saying so. expired: only when the deadline passed (the timer;
// a confirm that raced it wins).
func (c *Console) revertSavepoint(author string, expired bool) error {
	c.policyMu.Lock()
	defer c.policyMu.Unlock()
	c.tray.mu.Lock()
	defer c.tray.mu.Unlock()
	sp := c.tray.st.Savepoint
	if sp == nil {
		return ErrNoSavepoint
	}
	if expired && c.opt.Now().Before(sp.Deadline.Add(-50*time.Millisecond)) {
		c.armSavepoint(sp.Deadline.Sub(c.opt.Now()))
		return nil
	}
	disk, _, _ := c.trayFiles()
	if err := c.restoreFiles(sp.Before); err != nil {
		return fmt.Errorf("revert: %w", err)
	}
	if err := c.saveMonitorMemories(sp.MonitorBefore); err != nil {
		c.opt.Log.Error("console monitor-only memory", "err", err)
	}
	if c.opt.Reload != nil {
		if err := c.opt.Reload(); err != nil {
			c.opt.Log.Error("console revert: reload", "err", err)
		}
	}
	why := "reverted by an admin"
	if expired {
		why = fmt.Sprintf("reverted automatically: not confirmed within %s", c.opt.ConfirmTimeout)
	}
	now := c.opt.Now().UTC()
	for _, f := range slices.Sorted(mapsKeys(sp.Before)) {
		b := ""
		if sp.Before[f] != nil {
			b = *sp.Before[f]
		}
		cur := string(disk[f])
		if _, err := c.revs.add(Revision{Time: now, Author: author, File: f, Summary: why + " — " + clip(sp.Summary, 300),
			Diff: unifiedDiff(f, cur, b), Before: cur, After: b, SHA256: digest([]byte(b))}); err != nil {
			c.opt.Log.Error("console revision", "err", err)
		}
	}
	c.tray.st.Savepoint = nil
	c.tray.st.Version++
	c.opt.Log.Warn("console: risky change "+why, "summary", sp.Summary)
	_ = c.audit.add(AuditEntry{Time: now, Actor: author, Action: auditTrayRevert, Detail: why + ": " + clip(sp.Summary, 300)})
	return c.tray.save()
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ErrNoRevision: a rollback names a revision that is not kept.
var ErrNoRevision = errors.New("no such revision")

// get is one revision by number.
func (r *revisions) get(id int) (*Revision, error) {
	b, err := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("%06d.json", id)))
	if err != nil {
		return nil, fmt.Errorf("%w: %d", ErrNoRevision, id)
	}
	var rev Revision
	if err := json.Unmarshal(b, &rev); err != nil {
		return nil, fmt.Errorf("revision %d: %w", id, err)
	}
	return &rev, nil
}

// resumeSavepoint restarts the timer of a savepoint left by a previous
// run: the deadline still holds (past it, the revert runs at once).
func (c *Console) resumeSavepoint() {
	c.tray.mu.Lock()
	defer c.tray.mu.Unlock()
	if sp := c.tray.st.Savepoint; sp != nil {
		c.armSavepoint(sp.Deadline.Sub(c.opt.Now()))
	}
}

// Audit actions of the tray.
const (
	auditTrayStage   = "change_staged"
	auditTrayDiscard = "change_discarded"
	auditTrayApply   = "changes_applied"
	auditTrayConfirm = "change_confirmed"
	auditTrayRevert  = "change_reverted"
	auditTrayRefused = "changes_refused"
)

// ---- API ----

func (c *Console) apiTray(w http.ResponseWriter, _ *http.Request, _ *session) {
	tv, err := c.trayView()
	if err != nil {
		apiError(w, statusOf(err), err.Error())
		return
	}
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(tv.Version)))
	writeJSON(w, http.StatusOK, tv)
}

// stageInput is POST /api/v1/tray/changes.
type stageInput struct {
	Kind string `json:"kind"`
	File string `json:"file"`
	Note string `json:"note"`
	// BaseSHA256 (policy_file): the file's digest when the editor opened it.
	BaseSHA256 *string  `json:"base_sha256"`
	Policy     string   `json:"policy"`
	Enabled    *bool    `json:"enabled"`
	On         *bool    `json:"on"`
	Content    *string  `json:"content"`
	Revision   int      `json:"revision"`
	Side       string   `json:"side"`
	App        *AppForm `json:"app"`
	AppID      string   `json:"app_id"`
	Domain     string   `json:"domain"`
	Setting    string   `json:"setting"` // trayext.go
}

// toChange checks the input's shape and fills what the kind implies: the
// file of a policy (from the directory) or of a revision.
func (c *Console) toChange(in stageInput) (Change, string, error) {
	ch := Change{Kind: in.Kind, File: in.File, Note: in.Note, Policy: in.Policy, Enabled: in.Enabled, On: in.On,
		Content: in.Content, Revision: in.Revision, Side: in.Side, App: in.App, AppID: in.AppID, Domain: in.Domain}
	base := "-"
	switch in.Kind {
	case ChangePolicyFile:
		if in.Content == nil || in.BaseSHA256 == nil {
			return ch, "", fmt.Errorf("%w: policy_file needs file, content and base_sha256", ErrBadChange)
		}
		if len(*in.Content) > policy.MaxFileSize {
			return ch, "", fmt.Errorf("%w: policy file too large", ErrBadChange)
		}
		base = *in.BaseSHA256
	case ChangePolicyEnabled, ChangeMonitorOnly:
		if in.Kind == ChangePolicyEnabled && in.Enabled == nil || in.Kind == ChangeMonitorOnly && in.On == nil {
			return ch, "", fmt.Errorf("%w: %s needs policy and %s", ErrBadChange, in.Kind, map[bool]string{true: "enabled", false: "on"}[in.Kind == ChangePolicyEnabled])
		}
		f, err := c.policyFileOf(in.Policy)
		if err != nil {
			return ch, "", err
		}
		ch.File = f
	case ChangeRestore:
		rev, err := c.revs.get(in.Revision)
		if err != nil {
			return ch, "", err
		}
		if in.Side != "before" && in.Side != "after" {
			return ch, "", fmt.Errorf("%w: side is before or after", ErrBadChange)
		}
		ch.File = rev.File
	case ChangeAppAdd, ChangeAppDomain:
		ch.File = consoleAppsFile
	case ChangeDeviceCA, ChangeDeviceCRL, ChangeDeviceRemove, ChangeSetting: // trayext.go
		return c.extToChange(in, ch)
	default:
		return ch, "", fmt.Errorf("%w: kind must be one of policy_file, policy_enabled, monitor_only, restore, app_add, app_domain", ErrBadChange)
	}
	return ch, base, nil
}

// policyFileOf is the file that defines policy id now (staged changes
// included, so a policy added in the tray can be toggled too).
func (c *Console) policyFileOf(id string) (string, error) {
	disk, _, err := c.policyFiles()
	if err != nil {
		return "", err
	}
	c.tray.mu.Lock()
	r := c.replay(disk, slices.Clone(c.tray.st.Changes))
	c.tray.mu.Unlock()
	set, _ := parseSet(nonNil(policyOnly(r.files)))
	if set != nil {
		for _, p := range set.AccessPolicies {
			if p.ID == id {
				return p.At.File, nil
			}
		}
		for _, p := range set.SessionPolicies {
			if p.ID == id {
				return p.At.File, nil
			}
		}
	}
	return "", fmt.Errorf("%w %q", ErrNoSuchPolicy, id)
}

func trayStatus(err error) int {
	switch {
	case errors.Is(err, ErrTrayChanged), errors.Is(err, ErrBaseChanged), errors.Is(err, ErrEditConflict), errors.Is(err, ErrSavepoint):
		return http.StatusConflict
	case errors.Is(err, ErrBadChange), errors.Is(err, ErrNoSuchPolicy), errors.Is(err, ErrCannotEdit), errors.Is(err, ErrBadFileName),
		errors.Is(err, ErrTrayEmpty), errors.Is(err, ErrNoSavepoint), errors.Is(err, ErrNoRevision), errors.Is(err, ErrBadApp):
		return http.StatusBadRequest
	case errors.Is(err, ErrInvalidPolicy):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrTooManyStaged):
		return http.StatusTooManyRequests
	}
	return statusOf(err)
}

// stageChange is the API's and the pages' way in.
func (c *Console) stageChange(r *http.Request, s *session, in stageInput) (*Change, []Problem, error) {
	ch, base, err := c.toChange(in)
	if err != nil {
		return nil, nil, err
	}
	staged, problems, err := c.stage(s.User, ch, base)
	if err == nil && staged != nil {
		c.record(r, s, auditTrayStage, staged.File, fmt.Sprintf("change %d: %s", staged.ID, staged.Kind))
	}
	return staged, problems, err
}

func (c *Console) apiTrayStage(w http.ResponseWriter, r *http.Request, s *session) {
	var in stageInput
	if err := decodeJSON(r, &in); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	ch, problems, err := c.stageChange(r, s, in)
	switch {
	case err != nil:
		apiError(w, trayStatus(err), err.Error())
	case len(problems) > 0:
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": ErrInvalidPolicy.Error(), "problems": problems})
	default:
		writeJSON(w, http.StatusCreated, ch)
	}
}

func (c *Console) apiTrayDiscard(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "change id: a number")
		return
	}
	ch, err := c.discard(id)
	if err != nil {
		apiError(w, trayStatus(err), err.Error())
		return
	}
	c.record(r, s, auditTrayDiscard, ch.File, fmt.Sprintf("change %d: %s", ch.ID, ch.Kind))
	writeJSON(w, http.StatusOK, map[string]any{"discarded": ch.ID})
}

type applyInput struct {
	Version int    `json:"version"`
	Note    string `json:"note"`
}

func (c *Console) applyAndRecord(r *http.Request, s *session, in applyInput) (*ApplyResult, error) {
	res, err := c.apply(s.User, in.Version, in.Note)
	if err != nil {
		c.record(r, s, auditTrayRefused, "", clip(err.Error(), 300))
		return nil, err
	}
	var ids []string
	for _, rev := range res.Revisions {
		ids = append(ids, fmt.Sprintf("revision %d (%s): %s", rev.ID, rev.File, rev.Summary))
	}
	detail := strings.Join(ids, "; ")
	if res.Savepoint != nil {
		detail = "risky, to confirm by " + res.Savepoint.Deadline.Format(time.RFC3339) + ": " + detail
	}
	c.record(r, s, auditTrayApply, "", clip(detail, 1000))
	return res, nil
}

func (c *Console) apiTrayApply(w http.ResponseWriter, r *http.Request, s *session) {
	var in applyInput
	if err := decodeJSON(r, &in); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := c.applyAndRecord(r, s, in)
	if err != nil {
		out := map[string]any{"error": err.Error()}
		var ae *applyError
		if errors.As(err, &ae) {
			if ae.problems != nil {
				out["problems"] = ae.problems
			}
			if ae.conflicts != nil {
				out["conflicts"] = ae.conflicts
			}
		}
		writeJSON(w, trayStatus(err), out)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (c *Console) apiTrayConfirm(w http.ResponseWriter, r *http.Request, s *session) {
	sp, err := c.confirm()
	if err != nil {
		apiError(w, trayStatus(err), err.Error())
		return
	}
	c.record(r, s, auditTrayConfirm, "", clip(sp.Summary, 500))
	writeJSON(w, http.StatusOK, map[string]any{"confirmed": true})
}

func (c *Console) apiTrayRevert(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.revertSavepoint(s.User, false); err != nil {
		apiError(w, trayStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"reverted": true})
}

// ---- page ----

func (c *Console) trayPage(w http.ResponseWriter, r *http.Request, s *session) {
	tv, err := c.trayView()
	var msg string
	if err != nil {
		msg = err.Error()
		tv = &TrayView{}
	}
	c.render(w, r, s, "tray", view{Title: "Pending changes", Nav: "changes", Error: msg, Flash: flashOf(r), D: tv})
}

// flashOf is the message a form post left for the page it redirected to
// (a fixed set of words, never input echoed back).
func flashOf(r *http.Request) string {
	switch r.URL.Query().Get("done") {
	case "staged":
		return "Change added to the pending changes."
	case "discarded":
		return "Change discarded."
	case "applied":
		return "Changes applied."
	case "applied-risky":
		return "Changes applied. They could lock you out: confirm them before the countdown ends, or they are reverted."
	case "confirmed":
		return "Change confirmed and kept."
	case "reverted":
		return "Change reverted."
	case "account-added":
		return "Account added."
	case "account-unlocked":
		return "Account unlocked."
	case "account-removed":
		return "Account removed; its sessions ended."
	}
	return ""
}

// formError shows a refused form post on the tray page.
func (c *Console) formError(w http.ResponseWriter, r *http.Request, s *session, err error, problems []Problem) {
	tv, terr := c.trayView()
	if terr != nil {
		tv = &TrayView{}
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if len(problems) > 0 {
		var lines []string
		for _, p := range problems {
			lines = append(lines, p.Text)
		}
		msg = strings.TrimSpace(msg + " " + ErrInvalidPolicy.Error() + ": " + strings.Join(lines, "; "))
	}
	status := http.StatusBadRequest
	if err != nil {
		status = trayStatus(err)
	} else {
		status = http.StatusUnprocessableEntity
	}
	w.WriteHeader(status)
	c.render(w, r, s, "tray", view{Title: "Pending changes", Nav: "changes", Error: msg, D: tv})
}

// trayStageForm stages from the pages' forms (policy list, apps,
// revisions) and goes back to where the form was.
func (c *Console) trayStageForm(w http.ResponseWriter, r *http.Request, s *session) {
	in := stageInput{Kind: r.PostFormValue("kind"), Policy: r.PostFormValue("policy"), Note: r.PostFormValue("note"),
		Side: r.PostFormValue("side"), AppID: r.PostFormValue("app_id"), Domain: strings.TrimSpace(r.PostFormValue("domain"))}
	if v := r.PostFormValue("enabled"); v != "" {
		b := v == "true"
		in.Enabled = &b
	}
	if v := r.PostFormValue("on"); v != "" {
		b := v == "true"
		in.On = &b
	}
	if v := r.PostFormValue("revision"); v != "" {
		in.Revision, _ = strconv.Atoi(v)
	}
	if in.Kind == ChangeAppAdd {
		in.App = appFormOf(r)
	}
	_, problems, err := c.stageChange(r, s, in)
	if err != nil || len(problems) > 0 {
		c.formError(w, r, s, err, problems)
		return
	}
	back := "/changes"
	switch r.PostFormValue("back") {
	case "policies":
		back = "/policies"
	case "apps":
		back = "/apps"
	}
	http.Redirect(w, r, back+"?done=staged", http.StatusSeeOther)
}

func (c *Console) trayDiscardForm(w http.ResponseWriter, r *http.Request, s *session) {
	id, _ := strconv.Atoi(r.PostFormValue("id"))
	ch, err := c.discard(id)
	if err != nil {
		c.formError(w, r, s, err, nil)
		return
	}
	c.record(r, s, auditTrayDiscard, ch.File, fmt.Sprintf("change %d: %s", ch.ID, ch.Kind))
	http.Redirect(w, r, "/changes?done=discarded", http.StatusSeeOther)
}

func (c *Console) trayApplyForm(w http.ResponseWriter, r *http.Request, s *session) {
	v, _ := strconv.Atoi(r.PostFormValue("version"))
	res, err := c.applyAndRecord(r, s, applyInput{Version: v, Note: r.PostFormValue("note")})
	if err != nil {
		var ae *applyError
		var problems []Problem
		if errors.As(err, &ae) {
			problems = ae.problems
			if problems != nil {
				err = nil
			}
		}
		c.formError(w, r, s, err, problems)
		return
	}
	done := "applied"
	if res.Savepoint != nil {
		done = "applied-risky"
	}
	http.Redirect(w, r, "/changes?done="+done, http.StatusSeeOther)
}

func (c *Console) trayConfirmForm(w http.ResponseWriter, r *http.Request, s *session) {
	sp, err := c.confirm()
	if err != nil {
		c.formError(w, r, s, err, nil)
		return
	}
	c.record(r, s, auditTrayConfirm, "", clip(sp.Summary, 500))
	http.Redirect(w, r, "/changes?done=confirmed", http.StatusSeeOther)
}

func (c *Console) trayRevertForm(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.revertSavepoint(s.User, false); err != nil {
		c.formError(w, r, s, err, nil)
		return
	}
	http.Redirect(w, r, "/changes?done=reverted", http.StatusSeeOther)
}

// stopSavepointTimer stops the revert timer at Close; the savepoint stays
// in tray.json and the next start resumes it.
func (c *Console) stopSavepointTimer() {
	c.tray.mu.Lock()
	defer c.tray.mu.Unlock()
	if c.tray.timer != nil {
		c.tray.timer.Stop()
	}
}
