package appliance

import (
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

	"github.com/portcullis-gw/portcullis/appliance/console"
)

// remoteCommand is `portcullis remote ...`: the console's JSON API on the
// command line, for operators' scripts and terminals, with the console's
// rules (sessions, roles, the pending-changes tray, the audit log). The
// answers are decoded into the console's own types.
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

// withClient is a RunE that runs with the session's client.
func (r *remote) withClient(run func(cmd *cobra.Command, c *remoteClient, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := r.client()
		if err != nil {
			return err
		}
		return run(cmd, c, args)
	}
}

// listing is a command that prints what it reads in one of formats
// (--output, the first the default).
func (r *remote) listing(use, short string, formats []string, run func(cmd *cobra.Command, c *remoteClient, output string) error) *cobra.Command {
	var output string
	cmd := &cobra.Command{Use: use, Short: short, Args: noArgs}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !slices.Contains(formats, output) {
			fmt.Fprintf(cmd.ErrOrStderr(), "--output %q: use %s\n", output, strings.Join(formats, " or "))
			return ErrUsage
		}
		return r.withClient(func(cmd *cobra.Command, c *remoteClient, _ []string) error { return run(cmd, c, output) })(cmd, args)
	}
	cmd.Flags().StringVarP(&output, "output", "o", formats[0], strings.Join(formats, " or "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// idArgs checks that there are n ids (n < 0: at least one), each a
// positive number; what names them in the usage error.
func idArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if n >= 0 && len(args) != n || n < 0 && len(args) == 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "give %s\nRun '%s --help' for usage.\n", what, cmd.CommandPath())
			return ErrUsage
		}
		for _, a := range args {
			if id, err := strconv.Atoi(a); err != nil || id < 1 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%q: an id is a positive number\n", a)
				return ErrUsage
			}
		}
		return nil
	}
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
	// The session this one replaces ends too, rather than idling on.
	if old, err := r.client(); err == nil {
		_ = old.call(cmd.Context(), epLogout, nil, nil, nil, nil)
	}
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
			if rawURL == "" || cfgPath != "" {
				return "", "", err
			}
			cfg = nil // another appliance's URL: no local configuration needed
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
		certs, err := certificatesOnly(b)
		if err != nil {
			return "", "", fmt.Errorf("--ca %s: %w", caPath, err)
		}
		return base, certs, nil
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
	certs, err := certificatesOnly(b)
	if err != nil {
		return "", "", fmt.Errorf("the appliance CA %s: %w", local, err)
	}
	return base, certs, nil
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

func (r *remote) statusCommand() *cobra.Command {
	c := r.listing("status", "The session, the appliance's health, the last hour's activity and what waits in the tray",
		[]string{"table", "json"}, func(cmd *cobra.Command, c *remoteClient, output string) error {
			ctx := cmd.Context()
			var sess struct {
				User string `json:"user"`
				Role string `json:"role"`
			}
			var dash console.Dashboard
			if err := c.call(ctx, epSession, nil, nil, nil, &sess); err != nil {
				return err
			}
			if err := c.call(ctx, epDashboard, nil, url.Values{"range": {"1h"}}, nil, &dash); err != nil {
				return err
			}
			tv, err := c.tray(ctx)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(r.env.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(map[string]any{"console": c.base, "user": sess.User, "role": sess.Role, "store": dash.Store,
					"appliance": dash.Appliance, "last_hour": map[string]int{"total": dash.Total, "blocked": dash.Blocked, "monitored": dash.Monitor},
					"pending_changes": len(tv.Changes), "tray_version": tv.Version, "savepoint": tv.Savepoint}); err != nil {
					return err
				}
			} else {
				printStatus(r.env.Stdout, c.base, sess.User, sess.Role, &dash, tv)
			}
			if !dash.Store.Healthy {
				return fmt.Errorf("%w: the activity store is not committing events", errUnhealthy)
			}
			return nil
		})
	c.Long = `Show the session, what the console reports of the appliance (datapath,
exporters, the activity store's health and losses), the last hour's event
counts and the pending changes, with a risky change waiting for confirmation.

Exit status: 0 healthy, 1 when the activity store is not committing events.`
	return c
}

func printStatus(w io.Writer, base, user, role string, d *console.Dashboard, tv *console.TrayView) {
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

// table writes rows under a header, columns aligned, every cell cleaned.
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

// printLines writes text line by line, each cleaned.
func printLines(w io.Writer, text string) {
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fmt.Fprintln(w, clean(l))
	}
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
