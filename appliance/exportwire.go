package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// The activity exporters (jsonl, syslog, kafka) run under an exporterSet: a
// reload builds the set the configuration file now names and swaps it in,
// exporter by exporter. One whose section (activity.jsonl, syslog, kafka)
// did not change keeps running; one that changed or went away is stopped
// (its context ends, it closes its connection or file) before its
// successor starts. Nothing queued is lost in the swap: an exporter reads
// the store after its named cursor, which moves only once the collector
// acknowledged, so the successor starts from the first event its
// predecessor had not delivered (at-least-once, as after a restart).

// exporterStopWait bounds how long a swap waits for a stopped exporter
// before its successor starts anyway (both then read from the same
// cursor: events may be sent twice, none is skipped).
const exporterStopWait = 15 * time.Second

type exporterRun struct {
	key    string // the section's settings, to see whether a reload changed them
	run    func(context.Context) error
	cancel context.CancelFunc
	done   chan struct{}
}

type exporterSet struct {
	log *slog.Logger
	mu  sync.Mutex
	ctx context.Context // Run's; nil before start
	m   map[string]*exporterRun
	wg  sync.WaitGroup
}

// exporterKeys describe each configured exporter's section.
func exporterKeys(cfg *Config) map[string]string {
	out := map[string]string{}
	if cfg.Activity.JSONL.Path != "" {
		out["jsonl"] = fmt.Sprintf("%#v", cfg.Activity.JSONL)
	}
	if cfg.Activity.Syslog.Addr != "" {
		out["syslog"] = fmt.Sprintf("%#v", cfg.Activity.Syslog)
	}
	if len(cfg.Activity.Kafka.Brokers) > 0 {
		out["kafka"] = fmt.Sprintf("%#v", cfg.Activity.Kafka)
	}
	return out
}

// newExporterSet is the set cfg configures, not running.
func (a *Appliance) newExporterSet(cfg *Config) (*exporterSet, error) {
	runs, err := activityExporters(cfg, a.activity.store)
	if err != nil {
		return nil, err
	}
	keys := exporterKeys(cfg)
	s := &exporterSet{log: a.log, m: map[string]*exporterRun{}}
	for name, run := range runs {
		s.m[name] = &exporterRun{key: keys[name], run: run}
	}
	return s, nil
}

// names are the exporters configured, sorted.
func (s *exporterSet) names() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.m))
}

// start runs every exporter until ctx ends.
func (s *exporterSet) start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx = ctx
	for name, e := range s.m {
		s.launch(name, e)
	}
}

// launch runs e (s.mu held).
func (s *exporterSet) launch(name string, e *exporterRun) {
	ctx, cancel := context.WithCancel(s.ctx)
	e.cancel, e.done = cancel, make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(e.done)
		if err := e.run(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("activity export", "sink", name, "err", err)
		}
	}()
}

// stop ends e and waits for it (s.mu held).
func (s *exporterSet) stop(name string, e *exporterRun) {
	if e.cancel == nil {
		return
	}
	e.cancel()
	select {
	case <-e.done:
	case <-time.After(exporterStopWait):
		s.log.Warn("activity exporter still stopping: its successor starts from the same cursor", "sink", name, "waited", exporterStopWait)
	}
}

// swap takes next's exporters: unchanged ones keep running, changed ones
// are restarted with next's settings, removed ones stop, new ones start.
// It reports the names it stopped and started.
func (s *exporterSet) swap(next *exporterSet) (stopped, started []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(s.m)) {
		old := s.m[name]
		if n, ok := next.m[name]; ok && n.key == old.key {
			continue
		}
		s.stop(name, old)
		delete(s.m, name)
		stopped = append(stopped, name)
	}
	for _, name := range slices.Sorted(maps.Keys(next.m)) {
		if _, ok := s.m[name]; ok {
			continue
		}
		e := next.m[name]
		s.m[name] = e
		if s.ctx != nil {
			s.launch(name, e)
		}
		started = append(started, name)
	}
	return stopped, started
}

// wait returns once every exporter has returned (after Run's context
// ended).
func (s *exporterSet) wait() { s.wg.Wait() }
