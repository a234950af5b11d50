package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"
)

// remoteCommand is `portcullis remote ...`: the console's JSON API on the
// command line, for operators' scripts and terminals, with the console's
// rules (sessions, roles, the pending-changes tray, the audit log).
func remoteCommand(env Env) *cobra.Command {
	var sessPath string
	r := &remote{env: env, sessPath: &sessPath}
	c := group(env, "remote", "Use the web console's API: activity, policies, pending changes, revisions, audit",
		r.loginCommand(), r.logoutCommand(), r.statusCommand(), r.activityCommand(), r.policiesCommand(),
		r.changesCommand(), r.revisionsCommand(), r.auditCommand())
	c.Long = `Use the appliance's web console through its versioned JSON API (/api/v1,
documented in the openapi.yaml the console serves): log in once, then search
and export activity, switch policies, review and apply the pending changes,
roll back revisions and read the admin audit log. Changes are staged in the
console's pending-changes tray, as the console's pages stage them; auditors
may read everything and change nothing.

The session (cookie and CSRF token) is kept in a 0600 file under the user's
configuration directory (~/.config/portcullis/console-session.json), or the
file given with --session.`
	c.PersistentFlags().StringVar(&sessPath, "session", "", "session file (default: $XDG_CONFIG_HOME or ~/.config, portcullis/console-session.json)")
	_ = c.MarkPersistentFlagFilename("session", "json")
	return c
}

type remote struct {
	env      Env
	sessPath *string
}

func (r *remote) sessionFile() (string, error) {
	if *r.sessPath != "" {
		return *r.sessPath, nil
	}
	return defaultSessionPath(r.env)
}

// client is the logged-in client of the session file.
func (r *remote) client() (*remoteClient, error) {
	path, err := r.sessionFile()
	if err != nil {
		return nil, err
	}
	s, err := loadSession(path)
	if err != nil {
		return nil, err
	}
	c, err := newRemoteClient(s.URL, s.CAPEM)
	if err != nil {
		return nil, fmt.Errorf("session file %s: %w", path, err)
	}
	c.sess = s
	return c, nil
}

// outputFlag adds --output with the given formats, the first the default.
func outputFlag(cmd *cobra.Command, p *string, formats ...string) {
	cmd.Flags().StringVarP(p, "output", "o", formats[0], strings.Join(formats, " or "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
}

func checkOutput(cmd *cobra.Command, got string, formats ...string) error {
	if slices.Contains(formats, got) {
		return nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "--output %q: use %s\n", got, strings.Join(formats, " or "))
	return ErrUsage
}

// exactArgs is cobra.ExactArgs as a usage error naming what is missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			fmt.Fprintf(cmd.ErrOrStderr(), "give %s\nRun '%s --help' for usage.\n", what, cmd.CommandPath())
			return ErrUsage
		}
		return nil
	}
}

func idArg(cmd *cobra.Command, s, what string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s %q: a positive number\n", what, s)
		return 0, ErrUsage
	}
	return n, nil
}

// ---- login, logout, status ----

func (r *remote) loginCommand() *cobra.Command {
	var cfgPath, rawURL, caPath, user string
	c := &cobra.Command{
		Use:   "login",
		Short: "Log in to the console (password from a prompt or standard input; TOTP code when the account has one)",
		Long: `Log in to the console and keep the session for the other remote commands.

The console is https://<console.listen> of the configuration (--config), or
--url. Its certificate is checked against --ca FILE, else the appliance CA of
the local install (<state_dir>/ca/ca.crt) when there is one, else the
system's roots. The password is never an argument: it is read from the
terminal without echo, or as the first line of standard input; an account
with two-factor login is then asked its TOTP or recovery code (the next
line). The session lasts as the console's sessions do (idle timeout and
lifetime); logging in again replaces it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return r.login(cmd, cfgPath, rawURL, caPath, user)
		},
	}
	configFlag(c, &cfgPath)
	c.Flags().StringVar(&rawURL, "url", "", "console URL (default: https:// and console.listen of the configuration)")
	c.Flags().StringVar(&caPath, "ca", "", "PEM file of the CA that issued the console's certificate")
	c.Flags().StringVar(&user, "user", "", "account name (asked on a terminal when not given)")
	_ = c.MarkFlagFilename("ca", "pem", "crt")
	return c
}

func (r *remote) login(cmd *cobra.Command, cfgPath, rawURL, caPath, user string) error {
	path, err := r.sessionFile()
	if err != nil {
		return err
	}
	base, caPEM, err := loginTarget(cfgPath, rawURL, caPath)
	if err != nil {
		return err
	}
	p := newPrompter(r.env)
	if user == "" {
		if !p.terminal() {
			fmt.Fprintln(r.env.Stderr, "give the account with --user (standard input is not a terminal)")
			return ErrUsage
		}
		if user, err = p.ask("User: "); err != nil {
			return err
		}
	}
	user = strings.TrimSpace(user)
	if user == "" {
		return errors.New("no account name")
	}
	password, err := p.secret("Password for "+user+": ", "password")
	if err != nil {
		return err
	}
	c, err := newRemoteClient(base, caPEM)
	if err != nil {
		return err
	}
	in := map[string]string{"user": user, "password": password}
	resp, err := c.open(cmd.Context(), epLogin, nil, nil, in)
	var ae *remoteAPIError
	if errors.As(err, &ae) && ae.CodeRequired {
		code, cerr := p.secret("Code (TOTP or recovery) for "+user+": ", "TOTP or recovery code")
		if cerr != nil {
			return cerr
		}
		in["code"] = strings.TrimSpace(code)
		resp, err = c.open(cmd.Context(), epLogin, nil, nil, in)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	cookie, err := sessionCookieOf(resp)
	if err != nil {
		return err
	}
	var info struct {
		User string `json:"user"`
		Role string `json:"role"`
		CSRF string `json:"csrf_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || info.CSRF == "" {
		return fmt.Errorf("login answer without a CSRF token: %v", err)
	}
	s := &remoteSession{URL: base, CAPEM: caPEM, Cookie: cookie, CSRF: info.CSRF, User: info.User, Role: info.Role, Created: time.Now().UTC()}
	if err := saveSession(path, s); err != nil {
		return err
	}
	fmt.Fprintf(r.env.Stdout, "logged in to %s as %s (%s); session in %s\n", base, s.User, s.Role, path)
	return nil
}

// loginTarget is the console URL and the CA to trust (PEM; empty: the
// system's roots).
func loginTarget(cfgPath, rawURL, caPath string) (string, string, error) {
	var cfg *Config
	if rawURL == "" || caPath == "" {
		var err error
		if cfg, err = LoadConfig(cfgPath); err != nil {
			if rawURL == "" {
				return "", "", err
			}
			cfg = nil // another appliance's URL: a local configuration is not needed
		}
	}
	base := ""
	var err error
	if rawURL != "" {
		base, err = consoleURL(rawURL)
	} else {
		base, err = consoleURLOf(cfg.Console)
	}
	if err != nil {
		return "", "", err
	}
	if caPath != "" {
		b, err := os.ReadFile(caPath)
		if err != nil {
			return "", "", fmt.Errorf("--ca: %w", err)
		}
		return base, string(b), nil
	}
	if cfg == nil || cfg.Console.Certificate != "" {
		return base, "", nil
	}
	local := filepath.Join(cfg.StateDir, "ca", "ca.crt")
	b, err := os.ReadFile(local)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return base, "", nil
	case err != nil:
		return "", "", fmt.Errorf("the appliance CA %s: %w: log in as a user who may read it, or give --ca FILE (`portcullis ca cert` prints it)", local, err)
	}
	return base, string(b), nil
}

func (r *remote) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End the console session and remove the session file",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := r.sessionFile()
			if err != nil {
				return err
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			callErr := c.call(cmd.Context(), epLogout, nil, nil, nil, nil)
			var ae *remoteAPIError
			if callErr != nil && !(errors.As(callErr, &ae) && ae.Status == http.StatusUnauthorized) {
				return callErr // the session may still be live: the file stays
			}
			if err := os.Remove(path); err != nil {
				return err
			}
			fmt.Fprintf(r.env.Stdout, "logged out of %s\n", c.base)
			return nil
		},
	}
}

// dashboardView is what status reads of GET /dashboard.
type dashboardView struct {
	Range   string `json:"range"`
	Total   int    `json:"total"`
	Blocked int    `json:"blocked"`
	Monitor int    `json:"monitored"`
	TopApps []struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	} `json:"top_apps"`
	Store struct {
		Healthy       bool    `json:"healthy"`
		Written       uint64  `json:"written"`
		QueueDepth    int     `json:"queue_depth"`
		QueueCapacity int     `json:"queue_capacity"`
		LastCommitLag float64 `json:"last_commit_lag_ms"`
		Dropped       uint64  `json:"dropped"`
		Refused       uint64  `json:"refused"`
		WriteErrors   uint64  `json:"write_errors"`
		PrunedUnsent  uint64  `json:"pruned_undelivered"`
	} `json:"store"`
	Appliance map[string]string `json:"appliance"`
}

func (r *remote) statusCommand() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "status",
		Short: "The session, the appliance's health, the last hour's activity and what waits in the tray",
		Long: `Show the session, what the console reports of the appliance (datapath,
exporters, the activity store's health and losses), the last hour's event
counts and the pending changes, with a risky change waiting for confirmation.

Exit status: 0 healthy, 1 when the activity store is not committing events.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(cmd, output, "table", "json"); err != nil {
				return err
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var sess struct {
				User string `json:"user"`
				Role string `json:"role"`
			}
			var dash dashboardView
			var tv trayView
			if err := c.call(ctx, epSession, nil, nil, nil, &sess); err != nil {
				return err
			}
			if err := c.call(ctx, epDashboard, nil, url.Values{"range": {"1h"}}, nil, &dash); err != nil {
				return err
			}
			if err := c.call(ctx, epTray, nil, nil, nil, &tv); err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(r.env.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(map[string]any{"console": c.base, "user": sess.User, "role": sess.Role,
					"dashboard": dash, "pending_changes": len(tv.Changes), "tray_version": tv.Version, "savepoint": tv.Savepoint}); err != nil {
					return err
				}
			} else {
				printStatus(r.env.Stdout, c.base, sess.User, sess.Role, &dash, &tv)
			}
			if !dash.Store.Healthy {
				return fmt.Errorf("%w: the activity store is not committing events", errUnhealthy)
			}
			return nil
		},
	}
	outputFlag(c, &output, "table", "json")
	return c
}

func printStatus(w io.Writer, base, user, role string, d *dashboardView, tv *trayView) {
	row := func(k, format string, a ...any) { fmt.Fprintf(w, "%-11s %s\n", k+":", fmt.Sprintf(format, a...)) }
	row("console", "%s, logged in as %s (%s)", base, user, role)
	keys := make([]string, 0, len(d.Appliance))
	for k := range d.Appliance {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var facts []string
	for _, k := range keys {
		facts = append(facts, k+" "+d.Appliance[k])
	}
	if len(facts) > 0 {
		row("appliance", "%s", clean(strings.Join(facts, ", ")))
	}
	st := d.Store
	state := "healthy"
	if !st.Healthy {
		state = "NOT committing"
	}
	row("activity", "%s, %d written since start, queue %d of %d, last commit %.0f ms; %d dropped, %d refused, %d write errors, %d pruned undelivered",
		state, st.Written, st.QueueDepth, st.QueueCapacity, st.LastCommitLag, st.Dropped, st.Refused, st.WriteErrors, st.PrunedUnsent)
	top := ""
	if len(d.TopApps) > 0 {
		top = fmt.Sprintf("; top app %s (%d)", clean(d.TopApps[0].Name), d.TopApps[0].Count)
	}
	row("last hour", "%d events, %d blocked, %d monitored%s", d.Total, d.Blocked, d.Monitor, top)
	row("pending", "%d change(s) in the tray (version %d)", len(tv.Changes), tv.Version)
	if sp := tv.Savepoint; sp != nil {
		row("savepoint", "%s applied %q: reverted in %.0f s unless confirmed (`portcullis remote changes confirm`)", clean(sp.Author), clean(sp.Summary), sp.Remaining)
	}
	if st.Healthy {
		row("health", "OK")
	} else {
		row("health", "UNHEALTHY")
	}
}

// clean makes text from the appliance safe for a terminal and a table:
// control characters (an escape sequence in a logged host name, a tab)
// are shown escaped.
func clean(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }) {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// table writes rows under a header, columns aligned.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = clean(c)
			if cells[i] == "" {
				cells[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func jsonLines[T any](w io.Writer, items []T) error {
	enc := json.NewEncoder(w)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return err
		}
	}
	return nil
}

func timeCell(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

// ---- activity ----

// eventFilterFlags are the console's search parameters as flags: flag
// name, API parameter.
var eventFilterFlags = []struct{ flag, param, help string }{
	{"user", "user", "user"},
	{"app", "app", "app id"},
	{"action", "action", "allow, monitor, block, bypass, error"},
	{"activity", "activity", "activity id"},
	{"policy", "policy", "policy id among the matches"},
	{"device-tag", "tag", "device tag"},
	{"client-app", "client", "browser or mobile_desktop"},
	{"source", "source", "the client's IP address"},
	{"host", "host", "host"},
	{"text", "q", "substring of host, path, file name or user"},
}

type eventSearch struct {
	vals            map[string]*[]string
	not             []string
	since, from, to string
}

func addEventFilters(cmd *cobra.Command) *eventSearch {
	es := &eventSearch{vals: map[string]*[]string{}}
	fs := cmd.Flags()
	for _, f := range eventFilterFlags {
		es.vals[f.param] = fs.StringArray(f.flag, nil, f.help+" (repeat: any of them)")
	}
	fs.StringArrayVar(&es.not, "not", nil, "exclude FILTER=VALUE, e.g. --not action=allow (repeatable)")
	fs.StringVar(&es.since, "since", "", "relative range: 15m, 1h, 7d (default 24h unless --from or --to, as in the console)")
	fs.StringVar(&es.from, "from", "", "start (RFC 3339)")
	fs.StringVar(&es.to, "to", "", "end (RFC 3339)")
	_ = cmd.RegisterFlagCompletionFunc("action", cobra.FixedCompletions(
		[]string{"allow", "monitor", "block", "bypass", "error"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("client-app", cobra.FixedCompletions(
		[]string{"browser", "mobile_desktop"}, cobra.ShellCompDirectiveNoFileComp))
	return es
}

// query is the search as the API's parameters.
func (es *eventSearch) query(cmd *cobra.Command) (url.Values, error) {
	q := url.Values{}
	for _, f := range eventFilterFlags {
		for _, v := range *es.vals[f.param] {
			q.Add(f.param, v)
		}
	}
	for _, n := range es.not {
		name, v, ok := strings.Cut(n, "=")
		i := slices.IndexFunc(eventFilterFlags, func(f struct{ flag, param, help string }) bool { return f.flag == name })
		if !ok || i < 0 || v == "" {
			var names []string
			for _, f := range eventFilterFlags {
				names = append(names, f.flag)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "--not %q: use FILTER=VALUE, FILTER one of %s\n", n, strings.Join(names, ", "))
			return nil, ErrUsage
		}
		q.Add("not_"+eventFilterFlags[i].param, v)
	}
	switch {
	case es.since != "":
		q.Set("since", es.since)
	case es.from == "" && es.to == "":
		q.Set("since", "24h")
	}
	if es.from != "" {
		q.Set("from", es.from)
	}
	if es.to != "" {
		q.Set("to", es.to)
	}
	return q, nil
}

// eventRow is what the table shows of an event; the JSON lines keep the
// whole event as the API sent it.
type eventRow struct {
	Time     time.Time `json:"time"`
	User     string    `json:"user"`
	SourceIP string    `json:"source_ip"`
	App      string    `json:"app"`
	Host     string    `json:"host"`
	Method   string    `json:"method"`
	Path     string    `json:"path"`
	Activity string    `json:"activity"`
	Action   string    `json:"action"`
	Policies []string  `json:"policies"`
	FileName string    `json:"file_name"`
}

func (r *remote) activityCommand() *cobra.Command {
	var output, after string
	var limit int
	search := &cobra.Command{
		Use:   "search [filters]",
		Short: "Search activity as the console's activity page does (table or JSON lines, newest first)",
		Long: `Search the activity events with the console's filters: a filter given more
than once matches any of its values, different filters all apply, --not
excludes. When more events match than --limit, the next page's token is
printed on stderr ("more: --after TOKEN"); export streams every match.`,
		Args: noArgs,
	}
	es := addEventFilters(search)
	search.Flags().IntVar(&limit, "limit", 50, "events per page (at most 1000)")
	search.Flags().StringVar(&after, "after", "", "page token printed by the previous search")
	outputFlag(search, &output, "table", "jsonl")
	search.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(cmd, output, "table", "jsonl"); err != nil {
			return err
		}
		q, err := es.query(cmd)
		if err != nil {
			return err
		}
		q.Set("limit", strconv.Itoa(limit))
		if after != "" {
			q.Set("after", after)
		}
		c, err := r.client()
		if err != nil {
			return err
		}
		var page struct {
			Events []json.RawMessage `json:"events"`
			Next   string            `json:"next"`
		}
		if err := c.call(cmd.Context(), epEvents, nil, q, nil, &page); err != nil {
			return err
		}
		if output == "jsonl" {
			if err := jsonLines(r.env.Stdout, page.Events); err != nil {
				return err
			}
		} else {
			rows := make([][]string, 0, len(page.Events))
			for _, raw := range page.Events {
				var e eventRow
				if err := json.Unmarshal(raw, &e); err != nil {
					return fmt.Errorf("event: %w", err)
				}
				what := e.Method + " " + e.Host + e.Path
				if e.FileName != "" {
					what += " (" + e.FileName + ")"
				}
				rows = append(rows, []string{timeCell(e.Time), e.User, e.SourceIP, e.App, e.Activity, e.Action,
					strings.Join(e.Policies, ","), strings.TrimSpace(what)})
			}
			if err := table(r.env.Stdout, []string{"TIME", "USER", "SOURCE", "APP", "ACTIVITY", "ACTION", "POLICIES", "REQUEST"}, rows); err != nil {
				return err
			}
		}
		if page.Next != "" {
			fmt.Fprintf(r.env.Stderr, "more: --after %s\n", page.Next)
		}
		return nil
	}

	var format, file string
	export := &cobra.Command{
		Use:   "export --format csv|jsonl [filters]",
		Short: "Export every matching event (no row cap), streamed as CSV or JSON lines",
		Long: `Export every event of a search, newest first, streamed as the console's
export streams it (CSV cells that a spreadsheet would evaluate are prefixed
with an apostrophe). The export is written to the admin audit log. Output
goes to standard output, or to --file (created 0600).`,
		Args: noArgs,
	}
	exportFilters := addEventFilters(export)
	export.Flags().StringVar(&format, "format", "", "csv or jsonl")
	export.Flags().StringVar(&file, "file", "", "write to this file instead of standard output")
	_ = export.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"csv", "jsonl"}, cobra.ShellCompDirectiveNoFileComp))
	export.RunE = func(cmd *cobra.Command, _ []string) error {
		if format != "csv" && format != "jsonl" {
			fmt.Fprintln(cmd.ErrOrStderr(), "--format: csv or jsonl")
			return ErrUsage
		}
		q, err := exportFilters.query(cmd)
		if err != nil {
			return err
		}
		q.Set("format", format)
		c, err := r.client()
		if err != nil {
			return err
		}
		resp, err := c.open(cmd.Context(), epExport, nil, q, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var w io.Writer = r.env.Stdout
		var f *os.File
		if file != "" {
			if f, err = os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
				return err
			}
			w = f
		}
		n, err := io.Copy(w, resp.Body)
		if f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return fmt.Errorf("export ended after %d bytes: %w", n, err)
		}
		if file != "" {
			fmt.Fprintf(r.env.Stderr, "%d bytes written to %s\n", n, file)
		}
		return nil
	}
	return group(r.env, "activity", "Search and export activity", search, export)
}

// ---- policies ----

type policyRowView struct {
	Order          int       `json:"order"`
	Kind           string    `json:"kind"`
	ID             string    `json:"id"`
	Name           string    `json:"name,omitempty"`
	Control        string    `json:"control,omitempty"`
	Action         string    `json:"action"`
	Disabled       bool      `json:"disabled,omitempty"`
	File           string    `json:"file"`
	Line           int       `json:"line"`
	Hits           int       `json:"hits_7d"`
	LastHit        time.Time `json:"last_hit,omitzero"`
	MonitorOnly    bool      `json:"monitor_only"`
	OriginalAction string    `json:"original_action,omitempty"`
	CanMonitorOnly bool      `json:"can_monitor_only"`
	Pending        []string  `json:"pending,omitempty"`
}

type problemView struct {
	Kind string `json:"kind"`
	Text string `json:"text"`
}

func (r *remote) policiesCommand() *cobra.Command {
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "Policies in evaluation order: enabled, monitor-only, hits in the last 7 days, pending changes",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(cmd, output, "table", "jsonl"); err != nil {
				return err
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			var ov struct {
				Access   []policyRowView `json:"access_policies"`
				Session  []policyRowView `json:"session_policies"`
				Problems []problemView   `json:"problems"`
				Pending  int             `json:"pending_changes"`
			}
			if err := c.call(cmd.Context(), epPolicies, nil, nil, nil, &ov); err != nil {
				return err
			}
			all := append(ov.Access, ov.Session...)
			if output == "jsonl" {
				return jsonLines(r.env.Stdout, all)
			}
			rows := make([][]string, 0, len(all))
			for _, p := range all {
				action := p.Action
				if p.Control != "" {
					action = p.Control + "/" + p.Action
				}
				monitor := "no"
				if p.MonitorOnly {
					monitor = "yes (was " + p.OriginalAction + ")"
				}
				rows = append(rows, []string{strconv.Itoa(p.Order), p.Kind, p.ID, action, yesNo(!p.Disabled), monitor,
					strconv.Itoa(p.Hits), timeCell(p.LastHit), p.File + ":" + strconv.Itoa(p.Line), strings.Join(p.Pending, "; ")})
			}
			if err := table(r.env.Stdout, []string{"ORDER", "KIND", "ID", "ACTION", "ENABLED", "MONITOR-ONLY", "HITS-7D", "LAST-HIT", "FILE", "PENDING"}, rows); err != nil {
				return err
			}
			for _, p := range ov.Problems {
				fmt.Fprintf(r.env.Stdout, "%s: %s\n", clean(p.Kind), clean(p.Text))
			}
			if ov.Pending > 0 {
				fmt.Fprintf(r.env.Stdout, "%d change(s) pending: portcullis remote changes list\n", ov.Pending)
			}
			return nil
		},
	}
	outputFlag(list, &output, "table", "jsonl")

	switchCmd := func(use, short string, body func(id string, off bool) map[string]any, offFlag bool) *cobra.Command {
		var note string
		var off bool
		c := &cobra.Command{
			Use:   use + " POLICY-ID",
			Short: short,
			Args:  exactArgs(1, "the policy's id"),
			RunE: func(cmd *cobra.Command, args []string) error {
				in := body(args[0], off)
				if note != "" {
					in["note"] = note
				}
				return r.stage(cmd.Context(), in)
			},
		}
		c.Flags().StringVar(&note, "note", "", "note kept with the change (at most 200 characters)")
		if offFlag {
			c.Flags().BoolVar(&off, "off", false, "turn monitor-only off: the policy's own action comes back")
		}
		return c
	}
	enable := switchCmd("enable", "Stage enabling a policy in the pending-changes tray", func(id string, _ bool) map[string]any {
		return map[string]any{"kind": "policy_enabled", "policy": id, "enabled": true}
	}, false)
	disable := switchCmd("disable", "Stage disabling a policy in the pending-changes tray", func(id string, _ bool) map[string]any {
		return map[string]any{"kind": "policy_enabled", "policy": id, "enabled": false}
	}, false)
	monitor := switchCmd("monitor-only", "Stage the monitor-only switch of a policy (its action becomes monitor; --off gives it back)", func(id string, off bool) map[string]any {
		return map[string]any{"kind": "monitor_only", "policy": id, "on": !off}
	}, true)
	c := group(r.env, "policies", "List policies and stage their switches", list, enable, disable, monitor)
	c.Aliases = []string{"policy"}
	return c
}

// stage sends a change to the tray and says what it does, as the tray
// describes it.
func (r *remote) stage(ctx context.Context, in map[string]any) error {
	c, err := r.client()
	if err != nil {
		return err
	}
	var ch struct {
		ID   int    `json:"id"`
		File string `json:"file"`
	}
	if err := c.call(ctx, epStage, nil, nil, in, &ch); err != nil {
		return err
	}
	var tv trayView
	summary := ""
	if err := c.call(ctx, epTray, nil, nil, nil, &tv); err == nil {
		for _, v := range tv.Changes {
			if v.ID == ch.ID {
				summary = ": " + v.Summary
			}
		}
	}
	fmt.Fprintf(r.env.Stdout, "staged change %d (%s)%s\napply the pending changes with: portcullis remote changes apply\n", ch.ID, clean(ch.File), clean(summary))
	return nil
}

// ---- changes ----

type stagedView struct {
	ID       int       `json:"id"`
	Kind     string    `json:"kind"`
	Author   string    `json:"author"`
	Time     time.Time `json:"time"`
	Note     string    `json:"note,omitempty"`
	File     string    `json:"file"`
	Policy   string    `json:"policy,omitempty"`
	Summary  string    `json:"summary"`
	Diff     string    `json:"diff"`
	Risky    bool      `json:"risky"`
	Conflict bool      `json:"conflict,omitempty"`
	Error    string    `json:"error,omitempty"`
}

type savepointView struct {
	Deadline  time.Time `json:"deadline"`
	Remaining float64   `json:"remaining_seconds"`
	Author    string    `json:"author"`
	Summary   string    `json:"summary"`
}

type trayView struct {
	Version        int            `json:"version"`
	Changes        []stagedView   `json:"changes"`
	Problems       []problemView  `json:"problems"`
	Valid          bool           `json:"valid"`
	Risky          bool           `json:"risky"`
	ConfirmSeconds int            `json:"confirm_seconds"`
	Savepoint      *savepointView `json:"savepoint"`
}

func (r *remote) changesCommand() *cobra.Command {
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "The pending changes of every admin, with their summaries and whether they validate",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(cmd, output, "table", "jsonl"); err != nil {
				return err
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			var tv trayView
			if err := c.call(cmd.Context(), epTray, nil, nil, nil, &tv); err != nil {
				return err
			}
			if output == "jsonl" {
				return jsonLines(r.env.Stdout, tv.Changes)
			}
			r.printTray(&tv)
			return nil
		},
	}
	outputFlag(list, &output, "table", "jsonl")

	show := &cobra.Command{
		Use:   "show CHANGE-ID",
		Short: "One pending change: what it does and its diff against the files as they are now",
		Args:  exactArgs(1, "the change's id (changes list shows them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(cmd, args[0], "change id")
			if err != nil {
				return err
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			var tv trayView
			if err := c.call(cmd.Context(), epTray, nil, nil, nil, &tv); err != nil {
				return err
			}
			i := slices.IndexFunc(tv.Changes, func(v stagedView) bool { return v.ID == id })
			if i < 0 {
				return fmt.Errorf("no pending change %d (portcullis remote changes list)", id)
			}
			v := tv.Changes[i]
			w := r.env.Stdout
			fmt.Fprintf(w, "change %d: %s of %s, staged by %s at %s\n", v.ID, v.Kind, clean(v.File), clean(v.Author), timeCell(v.Time))
			if v.Note != "" {
				fmt.Fprintf(w, "note: %s\n", clean(v.Note))
			}
			if v.Error != "" {
				fmt.Fprintf(w, "error: %s\n", clean(v.Error))
			} else {
				fmt.Fprintf(w, "%s\n", clean(v.Summary))
			}
			if v.Risky {
				fmt.Fprintln(w, "risky: it could lock admins out, and is applied with a confirmation timeout")
			}
			if v.Conflict {
				fmt.Fprintln(w, "conflict: the file changed on disk since the change was staged")
			}
			if v.Diff != "" {
				fmt.Fprintln(w)
				for _, l := range strings.SplitAfter(v.Diff, "\n") {
					fmt.Fprint(w, clean(strings.TrimSuffix(l, "\n")))
					if strings.HasSuffix(l, "\n") {
						fmt.Fprintln(w)
					}
				}
			}
			return nil
		},
	}

	var note string
	var confirm bool
	apply := &cobra.Command{
		Use:   "apply",
		Short: "Apply every pending change together (validated as one set, kept as revisions, reloaded once)",
		Long: `Apply the pending changes as the tray lists them now (the tray's version is
sent, so a change staged meanwhile is not applied unseen). A change that could
lock admins out of the console is applied with a savepoint: the appliance
reverts it unless it is confirmed in time. With --confirm the command
confirms it at once over a new connection (which shows the console is still
reachable); on a terminal it asks; otherwise confirm it with
'portcullis remote changes confirm' (or revert it with 'changes revert').`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return r.apply(cmd.Context(), note, confirm)
		},
	}
	apply.Flags().StringVar(&note, "note", "", "note kept with the revisions (at most 200 characters)")
	apply.Flags().BoolVar(&confirm, "confirm", false, "confirm a risky change right after applying it")

	var all bool
	discard := &cobra.Command{
		Use:   "discard CHANGE-ID... | --all",
		Short: "Discard pending changes",
		Args: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				fmt.Fprintf(cmd.ErrOrStderr(), "give change ids or --all\nRun '%s --help' for usage.\n", cmd.CommandPath())
				return ErrUsage
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var ids []int
			for _, a := range args {
				id, err := idArg(cmd, a, "change id")
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			if all {
				var tv trayView
				if err := c.call(cmd.Context(), epTray, nil, nil, nil, &tv); err != nil {
					return err
				}
				for _, v := range tv.Changes {
					ids = append(ids, v.ID)
				}
			}
			for _, id := range ids {
				if err := c.call(cmd.Context(), epDiscard, []string{strconv.Itoa(id)}, nil, nil, nil); err != nil {
					return fmt.Errorf("change %d: %w", id, err)
				}
				fmt.Fprintf(r.env.Stdout, "discarded change %d\n", id)
			}
			return nil
		},
	}
	discard.Flags().BoolVar(&all, "all", false, "every pending change")

	confirmCmd := &cobra.Command{
		Use:   "confirm",
		Short: "Keep the applied risky change that waits for confirmation",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			return r.confirm(cmd.Context(), c)
		},
	}
	revert := &cobra.Command{
		Use:   "revert",
		Short: "Revert the applied risky change that waits for confirmation, now",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), epRevert, nil, nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(r.env.Stdout, "reverted: the files are as before the change and the appliance reloaded them")
			return nil
		},
	}
	return group(r.env, "changes", "Review, apply and discard the pending changes", list, show, apply, discard, confirmCmd, revert)
}

func (r *remote) printTray(tv *trayView) {
	w := r.env.Stdout
	if sp := tv.Savepoint; sp != nil {
		fmt.Fprintf(w, "waiting for confirmation: %s applied %q; reverted in %.0f s unless confirmed (changes confirm, or changes revert)\n",
			clean(sp.Author), clean(sp.Summary), sp.Remaining)
	}
	if len(tv.Changes) == 0 {
		fmt.Fprintln(w, "no pending changes")
		return
	}
	rows := make([][]string, 0, len(tv.Changes))
	for _, v := range tv.Changes {
		what := v.Summary
		switch {
		case v.Error != "":
			what = "ERROR: " + v.Error
		case v.Conflict:
			what = "CONFLICT (file changed since): " + v.Summary
		}
		rows = append(rows, []string{strconv.Itoa(v.ID), v.Kind, v.Author, v.File, yesNo(v.Risky), what})
	}
	_ = table(w, []string{"ID", "KIND", "AUTHOR", "FILE", "RISKY", "SUMMARY"}, rows)
	for _, p := range tv.Problems {
		fmt.Fprintf(w, "%s: %s\n", clean(p.Kind), clean(p.Text))
	}
	switch {
	case !tv.Valid:
		fmt.Fprintf(w, "tray version %d: does not apply as it is (problems or conflicts above): discard or fix the changes\n", tv.Version)
	case tv.Risky:
		fmt.Fprintf(w, "tray version %d: valid; risky: applying needs a confirmation within %d s\n", tv.Version, tv.ConfirmSeconds)
	default:
		fmt.Fprintf(w, "tray version %d: valid\n", tv.Version)
	}
}

func (r *remote) apply(ctx context.Context, note string, confirm bool) error {
	c, err := r.client()
	if err != nil {
		return err
	}
	var tv trayView
	if err := c.call(ctx, epTray, nil, nil, nil, &tv); err != nil {
		return err
	}
	if len(tv.Changes) == 0 {
		return errors.New("nothing to apply: there are no pending changes")
	}
	w := r.env.Stdout
	for _, v := range tv.Changes {
		fmt.Fprintf(w, "applying change %d: %s\n", v.ID, clean(v.Summary))
	}
	in := map[string]any{"version": tv.Version}
	if note != "" {
		in["note"] = note
	}
	var res struct {
		Revisions []struct {
			ID      int    `json:"id"`
			File    string `json:"file"`
			Summary string `json:"summary"`
		} `json:"revisions"`
		Reloaded  bool           `json:"reloaded"`
		Savepoint *savepointView `json:"savepoint"`
	}
	if err := c.call(ctx, epApply, nil, nil, in, &res); err != nil {
		return err
	}
	for _, rev := range res.Revisions {
		fmt.Fprintf(w, "revision %d (%s): %s\n", rev.ID, clean(rev.File), clean(rev.Summary))
	}
	if res.Reloaded {
		fmt.Fprintln(w, "the appliance reloaded")
	}
	sp := res.Savepoint
	if sp == nil {
		return nil
	}
	fmt.Fprintf(w, "these changes could lock admins out of the console: they are reverted at %s (in %.0f s) unless confirmed\n",
		timeCell(sp.Deadline), sp.Remaining)
	if confirm {
		return r.confirm(ctx, c)
	}
	p := newPrompter(r.env)
	if !p.terminal() {
		fmt.Fprintln(w, "confirm with: portcullis remote changes confirm (or revert now with: portcullis remote changes revert)")
		return nil
	}
	answer := make(chan string, 1)
	go func() {
		s, _ := p.ask("Keep them? (confirmed over a new connection, which shows the console still answers) [y/N] ")
		answer <- strings.ToLower(strings.TrimSpace(s))
	}()
	select {
	case a := <-answer:
		if a == "y" || a == "yes" {
			return r.confirm(ctx, c)
		}
		if err := c.call(ctx, epRevert, nil, nil, nil, nil); err != nil {
			return err
		}
		fmt.Fprintln(w, "reverted: the files are as before and the appliance reloaded them")
		return nil
	case <-time.After(time.Until(sp.Deadline)):
		return errors.New("not confirmed in time: the appliance reverted the changes")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// confirm keeps a risky change, over a new connection.
func (r *remote) confirm(ctx context.Context, c *remoteClient) error {
	c.fresh()
	if err := c.call(ctx, epConfirm, nil, nil, nil, nil); err != nil {
		return err
	}
	fmt.Fprintln(r.env.Stdout, "confirmed: the change is kept")
	return nil
}

// ---- revisions ----

type revisionView struct {
	ID      int       `json:"id"`
	Time    time.Time `json:"time"`
	Author  string    `json:"author"`
	File    string    `json:"file"`
	Summary string    `json:"summary"`
	Diff    string    `json:"diff"`
	SHA256  string    `json:"sha256"`
}

func (r *remote) revisionsCommand() *cobra.Command {
	var output, file string
	var limit int
	var diff bool
	list := &cobra.Command{
		Use:   "list",
		Short: "Saved revisions of the policy files, newest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(cmd, output, "table", "jsonl"); err != nil {
				return err
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if file != "" {
				q.Set("file", file)
			}
			var out struct {
				Revisions []revisionView `json:"revisions"`
			}
			if err := c.call(cmd.Context(), epRevisions, nil, q, nil, &out); err != nil {
				return err
			}
			revs := out.Revisions
			if limit > 0 && len(revs) > limit {
				revs = revs[:limit]
			}
			if output == "jsonl" {
				return jsonLines(r.env.Stdout, revs)
			}
			if len(revs) == 0 {
				fmt.Fprintln(r.env.Stdout, "no revisions yet")
				return nil
			}
			if !diff {
				rows := make([][]string, 0, len(revs))
				for _, v := range revs {
					rows = append(rows, []string{strconv.Itoa(v.ID), timeCell(v.Time), v.Author, v.File, v.Summary})
				}
				return table(r.env.Stdout, []string{"ID", "TIME", "AUTHOR", "FILE", "SUMMARY"}, rows)
			}
			for _, v := range revs {
				fmt.Fprintf(r.env.Stdout, "revision %d · %s · %s by %s\n%s\n", v.ID, clean(v.File), timeCell(v.Time), clean(v.Author), clean(v.Summary))
				for _, l := range strings.Split(strings.TrimSuffix(v.Diff, "\n"), "\n") {
					fmt.Fprintln(r.env.Stdout, clean(l))
				}
				fmt.Fprintln(r.env.Stdout)
			}
			return nil
		},
	}
	outputFlag(list, &output, "table", "jsonl")
	list.Flags().StringVar(&file, "file", "", "only this policy file's revisions")
	list.Flags().IntVar(&limit, "limit", 20, "at most this many (the console keeps the newest 100 in the list)")
	list.Flags().BoolVar(&diff, "diff", false, "print each revision's diff")

	restore := func(use, short, side string) *cobra.Command {
		var note string
		c := &cobra.Command{
			Use:   use + " REVISION-ID",
			Short: short,
			Args:  exactArgs(1, "the revision's id (revisions list shows them)"),
			RunE: func(cmd *cobra.Command, args []string) error {
				id, err := idArg(cmd, args[0], "revision id")
				if err != nil {
					return err
				}
				in := map[string]any{"kind": "restore", "revision": id, "side": side}
				if note != "" {
					in["note"] = note
				}
				return r.stage(cmd.Context(), in)
			},
		}
		c.Flags().StringVar(&note, "note", "", "note kept with the change (at most 200 characters)")
		return c
	}
	rollback := restore("rollback", "Stage the revision's file as it was after that revision (roll back to this version)", "after")
	undo := restore("undo", "Stage the revision's file as it was before that revision (undo this change)", "before")
	return group(r.env, "revisions", "Policy file revisions: list, roll back, undo", list, rollback, undo)
}

// ---- audit ----

type auditView struct {
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Role   string    `json:"role,omitempty"`
	Source string    `json:"source"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

func (r *remote) auditCommand() *cobra.Command {
	var output, actor, action string
	var limit int
	c := &cobra.Command{
		Use:   "audit",
		Short: "The admin audit log, newest first: logins, changes, exports, refusals",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(cmd, output, "table", "jsonl"); err != nil {
				return err
			}
			if limit < 1 || limit > 5000 {
				fmt.Fprintln(cmd.ErrOrStderr(), "--limit: 1 to 5000")
				return ErrUsage
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if actor != "" {
				q.Set("actor", actor)
			}
			if action != "" {
				q.Set("action", action)
			}
			var out struct {
				Entries []auditView `json:"entries"`
			}
			if err := c.call(cmd.Context(), epAudit, nil, q, nil, &out); err != nil {
				return err
			}
			if output == "jsonl" {
				return jsonLines(r.env.Stdout, out.Entries)
			}
			rows := make([][]string, 0, len(out.Entries))
			for _, e := range out.Entries {
				rows = append(rows, []string{timeCell(e.Time), e.Actor, e.Role, e.Source, e.Action, e.Target, e.Detail})
			}
			return table(r.env.Stdout, []string{"TIME", "ACTOR", "ROLE", "SOURCE", "ACTION", "TARGET", "DETAIL"}, rows)
		},
	}
	outputFlag(c, &output, "table", "jsonl")
	c.Flags().StringVar(&actor, "actor", "", "only this account's entries")
	c.Flags().StringVar(&action, "action", "", "only this action (login, login_failed, change_staged, changes_applied, export, ...)")
	c.Flags().IntVar(&limit, "limit", 50, "at most this many (up to 5000)")
	return c
}
