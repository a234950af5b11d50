package appliance

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

func activityCommand(env Env) *cobra.Command {
	var cfgPath string
	var q activity.Query
	var since time.Duration
	search := &cobra.Command{
		DisableFlagsInUseLine: true,
		Use:                   "search [--config FILE] [--user U] [--app A] [--action X] [--policy P] [--text T] [--since 1h] [--limit N] [--after TOKEN]",
		Short:                 "Search the activity log (JSON lines, newest first)",
		Long: `Search the activity log: one JSON event per line, newest first. When more
events match than --limit, the next page's token is printed on stderr
("more: --after TOKEN").`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			if since > 0 {
				q.From = time.Now().Add(-since)
			}
			return activitySearch(cfg, q, env.Stdout, env.Stderr)
		},
	}
	configFlag(search, &cfgPath)
	fs := search.Flags()
	fs.DurationVar(&since, "since", 0, "only events newer than this (e.g. 1h)")
	fs.StringVar(&q.User, "user", "", "user")
	fs.StringVar(&q.App, "app", "", "app id")
	fs.StringVar(&q.Action, "action", "", "allow, monitor, block, bypass, error")
	fs.StringVar(&q.Activity, "activity", "", "activity id")
	fs.StringVar(&q.Policy, "policy", "", "policy id among the matches")
	fs.StringVar(&q.DeviceTag, "device-tag", "", "device tag")
	fs.StringVar(&q.ClientApp, "client-app", "", "browser or mobile_desktop")
	fs.StringVar(&q.Text, "text", "", "substring of host, path, file name or user")
	fs.IntVar(&q.Limit, "limit", 50, "events per page (at most 1000)")
	fs.StringVar(&q.After, "after", "", "page token printed by the previous search")
	_ = search.RegisterFlagCompletionFunc("action", cobra.FixedCompletions(
		[]string{"allow", "monitor", "block", "bypass", "error"}, cobra.ShellCompDirectiveNoFileComp))
	_ = search.RegisterFlagCompletionFunc("client-app", cobra.FixedCompletions(
		[]string{"browser", "mobile_desktop"}, cobra.ShellCompDirectiveNoFileComp))
	return group(env, "activity", "The activity log", search)
}

// activityPath is where the activity store of cfg lives.
func activityPath(cfg *Config) string {
	if cfg.Activity.Path != "" {
		return cfg.Activity.Path
	}
	return filepath.Join(cfg.StateDir, "activity.db")
}

// activitySearch implements `portcullis activity search`: the activity
// store's query API on the command line, one JSON event per line, newest
// first, with the next page's token on stderr.
func activitySearch(cfg *Config, q activity.Query, stdout, stderr io.Writer) error {
	// Read-only: the daemon owns the store (its writer, pruner and alert
	// summaries); a second owner beside it would compete for the lock.
	st, err := activity.OpenReader(activityPath(cfg))
	if err != nil {
		return fmt.Errorf("activity: %w", err)
	}
	defer st.Close()
	page, err := st.Search(q)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, ev := range page.Events {
		if err := enc.Encode(ev); err != nil {
			return err
		}
	}
	if page.Next != "" {
		fmt.Fprintf(stderr, "more: --after %s\n", page.Next)
	}
	return nil
}
