package appliance

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// A reload's exporter swap: the Kafka exporter aimed at brokers that are
// not there is replaced by one aimed at a running cluster (kfake, franz-go's
// in-process Kafka), which receives every event stored meanwhile, none
// lost; the JSON lines exporter, whose section did not change, keeps
// running through the swap and misses nothing either.
func TestExporterSwapKeepsQueuedEvents(t *testing.T) {
	dir := t.TempDir()
	st, err := activity.Open(filepath.Join(dir, "a.db"), activity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &Appliance{log: slog.New(slog.NewTextHandler(io.Discard, nil)), activity: &activityRecorder{store: st}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	jsonl := filepath.Join(dir, "events.jsonl")
	cfg.Activity.JSONL.Path = jsonl
	cfg.Activity.Kafka = KafkaConfig{Brokers: []string{gone}, Topic: "pc-activity"}
	set, err := a.newExporterSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	set.start(ctx)
	defer func() { cancel(); set.wait() }()
	emit := func(from, n int) {
		for i := range n {
			if err := st.Emit(activity.Event{Host: "origin.lab", Path: "/k", Method: "GET", SessionID: "s", BytesDown: int64(from + i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	lines := func() int { b, _ := os.ReadFile(jsonl); return bytes.Count(b, []byte("\n")) }
	emit(0, 20)
	waitFor(t, "20 events in the JSON lines file", 10*time.Second, func() bool { return lines() == 20 })
	if cur, _ := st.Cursor("kafka"); cur != 0 {
		t.Fatalf("the Kafka cursor moved with no broker: %d", cur)
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "pc-activity"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	next := *cfg
	next.Activity.Kafka.Brokers = cluster.ListenAddrs()
	ns, err := a.newExporterSet(&next)
	if err != nil {
		t.Fatal(err)
	}
	jsonlBefore := set.m["jsonl"]
	t0 := time.Now()
	stopped, started := set.swap(ns)
	// The old exporter drains toward its brokers for up to its StopTimeout
	// (10 s; here they are gone, so all of it) before its successor starts.
	t.Logf("swap took %v", time.Since(t0))
	if !slices.Equal(stopped, []string{"kafka"}) || !slices.Equal(started, []string{"kafka"}) || set.m["jsonl"] != jsonlBefore {
		t.Fatalf("swap stopped %v, started %v; the JSON lines exporter kept: %v", stopped, started, set.m["jsonl"] == jsonlBefore)
	}
	emit(20, 5)
	cl, pctx := kafkaConsumer(t, cluster, "pc-activity")
	seen := map[string]bool{}
	for len(seen) < 25 && pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "event_id" {
					seen[string(h.Value)] = true
				}
			}
		})
	}
	if len(seen) != 25 {
		t.Fatalf("%d of 25 events reached the new cluster", len(seen))
	}
	waitFor(t, "25 events in the JSON lines file", 10*time.Second, func() bool { return lines() == 25 })
	if got := set.names(); !slices.Equal(got, []string{"jsonl", "kafka"}) {
		t.Errorf("names %v", got)
	}
	// Kafka taken out of the configuration: stopped, nothing started.
	next.Activity.Kafka = KafkaConfig{}
	ns, err = a.newExporterSet(&next)
	if err != nil {
		t.Fatal(err)
	}
	if stopped, started := set.swap(ns); !slices.Equal(stopped, []string{"kafka"}) || len(started) != 0 || !slices.Equal(set.names(), []string{"jsonl"}) {
		t.Errorf("kafka removed: stopped %v, started %v, running %v", stopped, started, set.names())
	}
}
