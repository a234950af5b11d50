package appliance

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// activitySearch implements `portcullis activity search`: the activity
// store's query API on the command line, one JSON event per line, newest
// first, with the next page's token on stderr.
func activitySearch(cfg *Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("portcullis activity search", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var q activity.Query
	since := fs.Duration("since", 0, "only events newer than this (e.g. 1h)")
	fs.StringVar(&q.User, "user", "", "user")
	fs.StringVar(&q.App, "app", "", "app id")
	fs.StringVar(&q.Action, "action", "", "allow, monitor, block, bypass, error")
	fs.StringVar(&q.Activity, "activity", "", "activity id")
	fs.StringVar(&q.Policy, "policy", "", "policy id among the matches")
	fs.StringVar(&q.DeviceTag, "device-tag", "", "device tag")
	fs.StringVar(&q.ClientApp, "client-app", "", "browser or mobile_desktop")
	fs.StringVar(&q.Text, "text", "", "substring of host, path or file name")
	fs.IntVar(&q.Limit, "limit", 50, "events per page (at most 1000)")
	fs.StringVar(&q.After, "after", "", "page token printed by the previous search")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *since > 0 {
		q.From = time.Now().Add(-*since)
	}
	path := cfg.Activity.Path
	if path == "" {
		path = filepath.Join(cfg.StateDir, "activity.db")
	}
	st, err := activity.Open(path, activity.Options{})
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
