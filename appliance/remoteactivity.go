package appliance

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portcullis-gw/portcullis/appliance/console"
)

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
		help := f.help + " (repeat: any of them)"
		if f.param == "q" {
			help = f.help + " (once)"
		}
		es.vals[f.param] = fs.StringArray(f.flag, nil, help)
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
	// The console searches one text, and excludes one.
	for _, p := range []string{"q", "not_q"} {
		if len(q[p]) > 1 {
			fmt.Fprintln(cmd.ErrOrStderr(), "--text and --not text=...: give each at most once")
			return nil, ErrUsage
		}
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

func (r *remote) activityCommand() *cobra.Command {
	var after string
	var limit int
	var es *eventSearch
	search := r.listing("search [filters]", "Search activity as the console's activity page does (table or JSON lines, newest first)",
		[]string{"table", "jsonl"}, func(cmd *cobra.Command, c *remoteClient, output string) error {
			return r.search(cmd, c, es, limit, after, output)
		})
	search.Long = `Search the activity events with the console's filters: a filter given more
than once matches any of its values, different filters all apply, --not
excludes. When more events match than --limit, the next page's token is
printed on stderr ("more: --after TOKEN"); export streams every match.`
	es = addEventFilters(search)
	search.Flags().IntVar(&limit, "limit", 50, "events per page (at most 1000)")
	search.Flags().StringVar(&after, "after", "", "page token printed by the previous search")

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

func (r *remote) search(cmd *cobra.Command, c *remoteClient, es *eventSearch, limit int, after, output string) error {
	q, err := es.query(cmd)
	if err != nil {
		return err
	}
	q.Set("limit", strconv.Itoa(limit))
	if after != "" {
		q.Set("after", after)
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
			var e console.EventJSON
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

// ---- audit ----

func (r *remote) auditCommand() *cobra.Command {
	var actor, action string
	var limit int
	c := r.listing("audit", "The admin audit log, newest first: logins, changes, exports, refusals", []string{"table", "jsonl"},
		func(cmd *cobra.Command, c *remoteClient, output string) error {
			if limit < 1 || limit > 5000 {
				fmt.Fprintln(cmd.ErrOrStderr(), "--limit: 1 to 5000")
				return ErrUsage
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if actor != "" {
				q.Set("actor", actor)
			}
			if action != "" {
				q.Set("action", action)
			}
			var out struct {
				Entries []console.AuditEntry `json:"entries"`
			}
			if err := c.call(cmd.Context(), epAudit, nil, q, nil, &out); err != nil {
				return err
			}
			if output == "jsonl" {
				return jsonLines(r.env.Stdout, out.Entries)
			}
			rows := make([][]string, 0, len(out.Entries))
			for _, e := range out.Entries {
				rows = append(rows, []string{timeCell(e.Time), e.Actor, string(e.Role), e.Source, e.Action, e.Target, e.Detail})
			}
			return table(r.env.Stdout, []string{"TIME", "ACTOR", "ROLE", "SOURCE", "ACTION", "TARGET", "DETAIL"}, rows)
		})
	c.Flags().StringVar(&actor, "actor", "", "only this account's entries")
	c.Flags().StringVar(&action, "action", "", "only this action (login, login_failed, change_staged, changes_applied, export, ...)")
	c.Flags().IntVar(&limit, "limit", 50, "at most this many (up to 5000)")
	return c
}
