package appliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy"
)

// errActivityUnavailable is why an audit-strict appliance refuses a session.
var errActivityUnavailable = errors.New("activity store cannot accept events")

// HoldRule is activity.hold_responses: which responses (audit-strict only)
// end only once their event is on disk.
type HoldRule string

const (
	// HoldActivities (the default) holds the responses of activities
	// (proxy.Record.IsActivity: a matched policy, monitor, block, protect,
	// an error, a file transfer, a login, a control report). Plain traffic,
	// allowed with no policy matched, is not held: its event is committed
	// within the store's linger (holdWindow) of the response's end, so a
	// crash loses at most the plain events of that window.
	HoldActivities HoldRule = "activities"
	// HoldAll holds every response (one group commit per response's end).
	HoldAll HoldRule = "all"
	// HoldNone holds none: events are committed within holdWindow.
	HoldNone HoldRule = "none"
)

// holdWindow is the store's linger: the bound on how long an event that no
// response waits for stays in memory before its group commit starts.
const holdWindow = 20 * time.Millisecond

// validate accepts the three rules and, as the key was a bool before the
// rules existed, true and false for all and none (viper hands a YAML bool
// over as "1" or "0"); it normalises the value to its rule.
func (h *HoldRule) validate(bad func(key, format string, a ...any)) {
	switch strings.ToLower(string(*h)) {
	case "activities":
		*h = HoldActivities
	case "all", "true", "1":
		*h = HoldAll
	case "none", "false", "0":
		*h = HoldNone
	default:
		bad("activity.hold_responses", "%q is not one of activities, all, none", string(*h))
	}
}

// holds reports whether responses are held at all under h.
func (h HoldRule) holds() bool { return h == HoldActivities || h == HoldAll }

// activityRecorder turns the proxy's records into activity events. In
// audit-strict mode it refuses new sessions while the store is failing or
// its queue is full, so nothing is served that could not be recorded.
type activityRecorder struct {
	store  *activity.Store
	strict bool
	// all: RecordDurable waits for every record, not only activities.
	all bool
	// appOf names the catalog app of a host (the running policies'); nil
	// leaves events without an app.
	appOf func(host string) string
	// whys keeps compactWhy's results: a network's clients repeat a few
	// hundred explanations, and each event would build its own copy.
	whys compactWhys
}

// compactWhys is compactWhy with its results kept, up to maxCompactWhys
// (then it starts again).
type compactWhys struct {
	mu sync.Mutex
	m  map[whyKey]string
}

type whyKey struct{ why, ja4 string }

const maxCompactWhys = 1024

func (c *compactWhys) get(why, ja4 string) string {
	k := whyKey{why, ja4}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[k]; ok {
		return s
	}
	s := compactWhy(why, ja4)
	if c.m == nil || len(c.m) >= maxCompactWhys {
		c.m = make(map[whyKey]string)
	}
	c.m[k] = s
	return s
}

var _ proxy.Recorder = (*activityRecorder)(nil)

func openActivity(cfg *Config) (*activityRecorder, error) {
	path := cfg.Activity.Path
	if path == "" {
		path = filepath.Join(cfg.StateDir, "activity.db")
	}
	mode := activity.AuditStrict
	if cfg.Activity.Mode == "best-effort" {
		mode = activity.BestEffort
	}
	// Events nobody waits on linger up to holdWindow to form bigger groups
	// (less CPU and fewer page writes per event); a durable waiter (a held
	// response) ends the linger.
	st, err := activity.Open(path, activity.Options{Durability: mode, MaxAge: cfg.Activity.MaxAge, MaxBytes: cfg.Activity.MaxBytes,
		FlushInterval: holdWindow})
	if err != nil {
		return nil, fmt.Errorf("activity: %w", err)
	}
	return &activityRecorder{store: st, strict: mode == activity.AuditStrict, all: cfg.Activity.Hold == HoldAll}, nil
}

func (r *activityRecorder) Admit() error {
	if !r.strict {
		return nil
	}
	st := r.store.Stats()
	if !st.Healthy || st.QueueDepth >= st.QueueCapacity {
		return errActivityUnavailable
	}
	return nil
}

func (r *activityRecorder) Record(rec proxy.Record) error {
	return r.store.Emit(r.eventOf(rec))
}

// RecordDurable emits the record's event and returns a wait for its group
// commit: the proxy holds the end of the response on it (audit-strict).
// Under HoldActivities a record of plain traffic is emitted like Record and
// the wait is nil: that response is not held.
func (r *activityRecorder) RecordDurable(rec proxy.Record) (func() error, error) {
	if !r.all && !rec.IsActivity() {
		return nil, r.store.Emit(r.eventOf(rec))
	}
	t, err := r.store.EmitDurable(r.eventOf(rec))
	if err != nil {
		return nil, err
	}
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return r.store.WaitDurable(ctx, t)
	}, nil
}

var _ proxy.DurableRecorder = (*activityRecorder)(nil)

func (r *activityRecorder) eventOf(rec proxy.Record) activity.Event {
	ev := activity.Event{
		Time:      rec.Time,
		Mode:      activity.Mode(rec.Mode.String()),
		SourceIP:  rec.Client.Addr(),
		User:      rec.User,
		Groups:    rec.Groups,
		ClientApp: rec.ClientKind.Client.String(),
		ClientWhy: r.whys.get(rec.ClientKind.Why, rec.JA4),
		JA4:       rec.JA4,
		Host:      rec.Host,
		Method:    rec.Method,
		Path:      rec.Path,
		Action:    rec.Decision,
		Reason:    rec.Reason,
		BytesUp:   rec.BytesIn,
		BytesDown: rec.BytesOut,
		SessionID: rec.RequestID,
	}
	ev.DeviceTags = rec.DeviceTags
	if rec.Action != policy.ActionUnset {
		// Session enforcement decided: its typed outcome, never a string
		// parsed back.
		ev.Activity, ev.Policies = rec.Activity, rec.Policies
		if len(ev.Policies) == 0 && rec.Policy != "" {
			ev.Policies = []string{rec.Policy}
		}
		if rec.File != nil {
			ev.FileName, ev.FileSize, ev.FileSHA256 = rec.File.Name, rec.File.Size, rec.File.SHA256
			ev.FileType, ev.FileLabel = rec.File.MIME, rec.File.Label
		}
		for _, d := range rec.Detectors {
			ev.Detectors = append(ev.Detectors, activity.Detection{ID: d.ID, Count: d.Count, Samples: d.Samples})
		}
	} else if id, ok := strings.CutPrefix(rec.Reason, "policy "); ok {
		// Access decisions (connection records) still name their policy in
		// the reason.
		id, _, _ = strings.Cut(id, ":")
		ev.Policies = []string{id}
	}
	if rec.App != "" {
		ev.App = rec.App
	}
	if r.appOf != nil && ev.App == "" && rec.Host != "" {
		ev.App = r.appOf(rec.Host)
	}
	return ev
}

func (r *activityRecorder) Close() error { return r.store.Close() }

// activityCollector exports the store's counters at scrape time.
type activityCollector struct {
	store        *activity.Store
	events, lag  *prometheus.Desc
	depth, sound *prometheus.Desc
	// The writer's and retention's counters: an operator reads events per
	// fsync from commits, a failing disk from write errors, and retention
	// outrunning an exporter from pruned_unsent.
	commits, writeErrors, capacity, lastSize *prometheus.Desc
	pruned, prunedUnsent, pruneErrors        *prometheus.Desc
}

var _ prometheus.Collector = (*activityCollector)(nil)

func newActivityCollector(s *activity.Store) *activityCollector {
	return &activityCollector{
		store:  s,
		events: prometheus.NewDesc("portcullis_activity_events_total", "Activity events by outcome.", []string{"outcome"}, nil),
		lag:    prometheus.NewDesc("portcullis_activity_commit_lag_seconds", "Time from the oldest event of the last group to its commit.", nil, nil),
		depth:  prometheus.NewDesc("portcullis_activity_queue_depth", "Events waiting for the store writer.", nil, nil),
		sound:  prometheus.NewDesc("portcullis_activity_store_healthy", "1 when the last commit succeeded.", nil, nil),
		commits: prometheus.NewDesc("portcullis_activity_commits_total",
			"Group commits of the activity store (one fsync each); events_total{outcome=\"written\"} over this is the events per fsync.", nil, nil),
		writeErrors:  prometheus.NewDesc("portcullis_activity_write_errors_total", "Failed group commits (each is retried).", nil, nil),
		capacity:     prometheus.NewDesc("portcullis_activity_queue_capacity", "Events the store writer's queue holds at most.", nil, nil),
		lastSize:     prometheus.NewDesc("portcullis_activity_last_commit_events", "Events in the last group committed.", nil, nil),
		pruned:       prometheus.NewDesc("portcullis_activity_pruned_total", "Events deleted by retention.", nil, nil),
		prunedUnsent: prometheus.NewDesc("portcullis_activity_pruned_unsent_total", "Events retention deleted before some exporter had sent them.", nil, nil),
		pruneErrors:  prometheus.NewDesc("portcullis_activity_prune_errors_total", "Retention passes that failed.", nil, nil),
	}
}

func (c *activityCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.events
	ch <- c.lag
	ch <- c.depth
	ch <- c.sound
	for _, d := range []*prometheus.Desc{c.commits, c.writeErrors, c.capacity, c.lastSize, c.pruned, c.prunedUnsent, c.pruneErrors} {
		ch <- d
	}
}

func (c *activityCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.store.Stats()
	for outcome, v := range map[string]uint64{"queued": st.Queued, "written": st.Written, "dropped": st.Dropped, "refused": st.Refused, "lost": st.Lost} {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(v), outcome)
	}
	ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, st.LastCommitLag.Seconds())
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(st.QueueDepth))
	ch <- prometheus.MustNewConstMetric(c.sound, prometheus.GaugeValue, gaugeOf(st.Healthy))
	ch <- prometheus.MustNewConstMetric(c.commits, prometheus.CounterValue, float64(st.Commits))
	ch <- prometheus.MustNewConstMetric(c.writeErrors, prometheus.CounterValue, float64(st.WriteErrors))
	ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(st.QueueCapacity))
	ch <- prometheus.MustNewConstMetric(c.lastSize, prometheus.GaugeValue, float64(st.LastCommitSize))
	ch <- prometheus.MustNewConstMetric(c.pruned, prometheus.CounterValue, float64(st.Pruned))
	ch <- prometheus.MustNewConstMetric(c.prunedUnsent, prometheus.CounterValue, float64(st.PrunedUndelivered))
	ch <- prometheus.MustNewConstMetric(c.pruneErrors, prometheus.CounterValue, float64(st.PruneErrors))
}

func gaugeOf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// activityExporters builds the configured sinks. Each has its own cursor in
// the store, so a slow or absent collector never holds back another sink.
func activityExporters(cfg *Config, st *activity.Store) (map[string]func(context.Context) error, error) {
	out := map[string]func(context.Context) error{}
	if j := cfg.Activity.JSONL; j.Path != "" {
		exp := &activity.JSONLines{Store: st, Path: j.Path, MaxBytes: j.MaxBytes, Keep: j.Keep}
		out["jsonl"] = exp.Run
	}
	if sc := cfg.Activity.Syslog; sc.Addr != "" {
		exp := &activity.Syslog{Store: st, Network: sc.Network, Addr: sc.Addr, Format: sc.Format}
		if sc.Network == "tls" {
			roots, err := rootsWith("activity.syslog.roots", sc.Roots)
			if err != nil {
				return nil, err
			}
			host, _, _ := strings.Cut(sc.Addr, ":")
			exp.TLS = &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12}
		}
		out["syslog"] = func(ctx context.Context) error {
			defer exp.Close()
			return exp.Run(ctx)
		}
	}
	if kc := cfg.Activity.Kafka; len(kc.Brokers) > 0 {
		kcfg := activity.KafkaConfig{Brokers: kc.Brokers, Topic: kc.Topic, ClientID: "portcullis", KeyBy: kc.KeyBy}
		if kc.TLS {
			roots, err := rootsWith("activity.kafka.roots", kc.Roots)
			if err != nil {
				return nil, err
			}
			kcfg.TLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		}
		if kc.SASL.Mechanism != "" {
			pw, err := os.ReadFile(kc.SASL.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("activity.kafka.sasl.password_file: %w", err)
			}
			kcfg.SASL = &activity.KafkaSASL{Mechanism: kc.SASL.Mechanism, User: kc.SASL.User, Password: strings.TrimSpace(string(pw))}
		}
		if err := kcfg.Validate(); err != nil {
			return nil, fmt.Errorf("activity.kafka: %w", err)
		}
		out["kafka"] = func(ctx context.Context) error {
			k, err := st.StartKafka(ctx, kcfg)
			if err != nil {
				return err
			}
			<-ctx.Done()
			return k.Close()
		}
	}
	return out, nil
}

// compactWhy is a classification's explanation without what the event
// already holds (its JA4) and the data file's source notes: "curl (exact);
// ua curl/7 agrees" rather than the whole sentence, for every event.
func compactWhy(why, ja4 string) string {
	// "ja4 <ja4> = " cut without building it (this runs for every event).
	if rest, ok := strings.CutPrefix(why, "ja4 "); ok {
		if rest, ok = strings.CutPrefix(rest, ja4); ok {
			if rest, ok = strings.CutPrefix(rest, " = "); ok {
				why = rest
			}
		}
	}
	for {
		i := strings.Index(why, "; source: ")
		if i < 0 {
			return why
		}
		// The note ends at the parenthesis that closes the one it is in;
		// sources have parentheses of their own.
		depth, j := 1, i+len("; source: ")
		for ; j < len(why) && depth > 0; j++ {
			switch why[j] {
			case '(':
				depth++
			case ')':
				depth--
			}
		}
		if depth > 0 {
			return why[:i]
		}
		why = why[:i] + why[j-1:]
	}
}
