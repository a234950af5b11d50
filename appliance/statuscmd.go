package appliance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"
)

// errUnhealthy is status's verdict on a daemon that runs but is not well
// (exit 1); errNotRunning is a daemon that does not answer (exit 3, as LSB
// init scripts report "program is not running").
var (
	errUnhealthy  = errors.New("unhealthy")
	errNotRunning = errors.New("not running")
)

func statusCommand(env Env) *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the running appliance's datapath, listeners, activity store and exporters",
		Long: `Show what the running appliance reports on its management endpoint
(management.listen: /healthz and /metrics) and what is on this machine: the
pinned datapath, the listeners, the activity store and its exporters.

Exit status: 0 healthy, 1 running but unhealthy (each reason is printed),
3 not running.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			return showStatus(ctx, cfg, env.Stdout)
		},
	}
	configFlag(c, &cfgPath)
	return c
}

// daemonView is what the management endpoint said; nil families when the
// daemon did not answer.
type daemonView struct {
	healthz  string
	families map[string]*dto.MetricFamily
}

func scrapeDaemon(ctx context.Context, addr string) (*daemonView, error) {
	client := &http.Client{Timeout: 3 * time.Second}
	get := func(path string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			return nil, err
		}
		return client.Do(req)
	}
	resp, err := get("/healthz")
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	v := &daemonView{healthz: strings.TrimSpace(string(body))}
	if resp.StatusCode != http.StatusOK {
		v.healthz = resp.Status + " " + v.healthz
	}
	resp, err = get("/metrics")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	v.families, err = p.TextToMetricFamilies(resp.Body)
	return v, err
}

// metric returns the value of the sample of name whose labels include the
// given pairs, and whether there is one.
func (v *daemonView) metric(name string, labels ...string) (float64, bool) {
	if v == nil || v.families == nil {
		return 0, false
	}
	mf := v.families[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// label returns the value of label key on the first sample of name whose
// value is 1 (info-style gauges such as attach_mode{mode}).
func (v *daemonView) label(name, key string) string {
	if v == nil || v.families == nil || v.families[name] == nil {
		return ""
	}
	for _, m := range v.families[name].Metric {
		if m.Gauge != nil && m.Gauge.GetValue() == 1 {
			for _, lp := range m.Label {
				if lp.GetName() == key {
					return lp.GetValue()
				}
			}
		}
	}
	return ""
}

func showStatus(ctx context.Context, cfg *Config, w io.Writer) error {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	row := func(k, format string, a ...any) {
		if k != "" {
			k += ":"
		}
		fmt.Fprintf(w, "%-11s %s\n", k, fmt.Sprintf(format, a...))
	}

	d, scrapeErr := scrapeDaemon(ctx, cfg.Management.Listen)
	running := d != nil
	switch {
	case !running:
		row("daemon", "not running (nothing answers on %s: %v)", cfg.Management.Listen, scrapeErr)
	case d.healthz != "ok":
		row("daemon", "running, /healthz on %s says %q", cfg.Management.Listen, d.healthz)
		bad("/healthz is not ok")
	case scrapeErr != nil:
		row("daemon", "running, /healthz ok, /metrics unreadable: %v", scrapeErr)
		bad("/metrics unreadable")
	default:
		row("daemon", "running (management %s, /healthz ok)", cfg.Management.Listen)
	}

	// Datapath: the pins say whether a program is attached, running or not;
	// the metrics say whether the proxy's listeners are in its sockmap.
	dp := cfg.Datapath
	pinned, mode := pinnedDatapath(dp.PinDir)
	failMode := "closed: steered traffic is refused"
	if dp.FailOpen {
		failMode = "open: steered traffic is forwarded uninspected"
	}
	switch {
	case !cfg.Transparent.Enabled || !dp.Enabled:
		if pinned {
			row("datapath", "disabled in the configuration, but still pinned at %s (%s); remove it with 'portcullis datapath detach'", dp.PinDir, mode)
		} else {
			row("datapath", "disabled")
		}
	case running:
		if m := d.label("portcullis_datapath_attach_mode", "mode"); m != "" {
			mode = m
		}
		v4, ok4 := d.metric("portcullis_datapath_listener_present", "family", "ipv4")
		v6, ok6 := d.metric("portcullis_datapath_listener_present", "family", "ipv6")
		switch {
		case !pinned && mode == "":
			row("datapath", "not attached (no pins at %s)", dp.PinDir)
			bad("datapath not attached")
		case !ok4 && !ok6:
			row("datapath", "attached on %s (%s); listener state not reported", dp.Interface, orUnknown(mode))
		default:
			row("datapath", "attached on %s (%s), listeners in sockmap: ipv4 %s, ipv6 %s; fail %s",
				dp.Interface, orUnknown(mode), yesNo(ok4 && v4 == 1), yesNo(ok6 && v6 == 1), failMode)
			if !ok4 || v4 != 1 {
				bad("no IPv4 proxy listener in the datapath: steered traffic gets the fail mode")
			}
		}
	default:
		if pinned {
			row("datapath", "still attached on %s (%s) with the daemon down: fail %s", dp.Interface, mode, failMode)
		} else {
			row("datapath", "not attached (no pins at %s)", dp.PinDir)
		}
	}

	var ls []string
	if cfg.Transparent.Enabled {
		ls = append(ls, "transparent "+cfg.Transparent.ListenV4+" "+cfg.Transparent.ListenV6)
	}
	if cfg.Explicit.Enabled {
		ls = append(ls, "explicit "+cfg.Explicit.Listen)
	}
	if cfg.Suffix.Domain != "" {
		ls = append(ls, "suffix "+cfg.Suffix.Listen+" (*."+strings.Trim(cfg.Suffix.Domain, ".")+")")
	}
	ls = append(ls, "management "+cfg.Management.Listen)
	row("listeners", "%s", strings.Join(ls, "; "))
	if running {
		if n, ok := d.metric("portcullis_proxy_connections_total", "outcome", "accepted"); ok {
			row("", "%.0f connections accepted", n)
		}
	}

	path := activityPath(cfg)
	st := readActivityFile(ctx, path)
	switch {
	case st.err != nil && errors.Is(st.err, os.ErrNotExist):
		row("activity", "%s: not created yet", path)
	case st.err != nil:
		row("activity", "%s: %v", path, st.err)
		if running {
			bad("activity store unreadable")
		}
	default:
		row("activity", "%s, %s, about %d events stored (%s)", path, humanBytes(st.bytes), st.events, cfg.Activity.Mode)
	}
	if running {
		healthy, ok := d.metric("portcullis_activity_store_healthy")
		depth, _ := d.metric("portcullis_activity_queue_depth")
		written, _ := d.metric("portcullis_activity_events_total", "outcome", "written")
		dropped, _ := d.metric("portcullis_activity_events_total", "outcome", "dropped")
		refused, _ := d.metric("portcullis_activity_events_total", "outcome", "refused")
		state := "healthy"
		if ok && healthy != 1 {
			state = "NOT committing"
			bad("activity store is not committing events")
		}
		row("", "%s, %.0f written since start, %.0f queued, %.0f dropped, %.0f refused", state, written, depth, dropped, refused)
	}

	exporters := configuredExporters(cfg)
	if len(exporters) == 0 {
		row("exporters", "none")
	}
	for i, e := range exporters {
		k := ""
		if i == 0 {
			k = "exporters"
		}
		behind := "delivery position unknown"
		if seq, ok := st.cursors[e.sink]; ok && st.err == nil {
			behind = fmt.Sprintf("%d events behind", max(st.lastSeq-seq, 0))
		} else if st.err == nil {
			behind = fmt.Sprintf("nothing delivered yet, %d events waiting", st.events)
		}
		row(k, "%s → %s: %s", e.sink, e.target, behind)
	}

	switch {
	case !running:
		fmt.Fprintln(w, "health:     NOT RUNNING")
		return errNotRunning
	case len(problems) > 0:
		fmt.Fprintln(w, "health:     UNHEALTHY")
		for _, p := range problems {
			fmt.Fprintln(w, "  - "+p)
		}
		return fmt.Errorf("%w: %s", errUnhealthy, strings.Join(problems, "; "))
	}
	fmt.Fprintln(w, "health:     OK")
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "mode unknown"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// pinnedDatapath reports whether pinDir holds a datapath and its mode, from
// the agent's attach record (a symlink whose target starts with the mode).
func pinnedDatapath(pinDir string) (bool, string) {
	if pinDir == "" {
		pinDir = "/sys/fs/bpf/portcullis"
	}
	if _, err := os.Stat(pinDir); err != nil {
		return false, ""
	}
	if rec, err := os.Readlink(filepath.Join(pinDir, "attach")); err == nil {
		mode, _, _ := strings.Cut(rec, " ")
		return true, mode
	}
	if _, err := os.Lstat(filepath.Join(pinDir, "link")); err == nil {
		return true, "tcx"
	}
	return true, ""
}

type exporterConf struct{ sink, target string }

func configuredExporters(cfg *Config) []exporterConf {
	var out []exporterConf
	a := cfg.Activity
	if a.JSONL.Path != "" {
		out = append(out, exporterConf{"jsonl", a.JSONL.Path})
	}
	if a.Syslog.Addr != "" {
		out = append(out, exporterConf{"syslog", a.Syslog.Network + "://" + a.Syslog.Addr + " (" + a.Syslog.Format + ")"})
	}
	if len(a.Kafka.Brokers) > 0 {
		out = append(out, exporterConf{"kafka", strings.Join(a.Kafka.Brokers, ",") + " topic " + a.Kafka.Topic})
	}
	return out
}

// activityFile is what status reads from the store, read-only and beside the
// running writer (WAL).
type activityFile struct {
	bytes   int64
	events  int64
	lastSeq int64
	cursors map[string]int64
	err     error
}

// readActivityFile reads the store's size, event range and the exporters'
// cursors without opening it as a Store (which would start a writer and
// migrate an older file): status must change nothing. The queries follow the
// store's schema (appliance/activity/schema.go).
func readActivityFile(ctx context.Context, path string) (f activityFile) {
	fi, err := os.Stat(path)
	if err != nil {
		f.err = err
		return f
	}
	f.bytes = fi.Size()
	if wal, err := os.Stat(path + "-wal"); err == nil {
		f.bytes += wal.Size()
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_busy_timeout=2000&_query_only=1")
	if err != nil {
		f.err = err
		return f
	}
	defer db.Close()
	var lo, hi sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT min(seq), max(seq) FROM events").Scan(&lo, &hi); err != nil {
		f.err = err
		return f
	}
	if hi.Valid {
		f.events, f.lastSeq = hi.Int64-lo.Int64+1, hi.Int64
	}
	rows, err := db.QueryContext(ctx, "SELECT name, seq FROM sink_cursor")
	if err != nil {
		f.err = err
		return f
	}
	defer rows.Close()
	f.cursors = map[string]int64{}
	for rows.Next() {
		var name string
		var seq int64
		if err := rows.Scan(&name, &seq); err == nil {
			f.cursors[name] = seq
		}
	}
	return f
}

func humanBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v := float64(n)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
