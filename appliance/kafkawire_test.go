package appliance

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// TestKafkaExportFromConfig: activity.kafka in the appliance config starts
// an exporter that delivers the store's events to the topic (kfake, the
// in-process Kafka cluster of franz-go).
func TestKafkaExportFromConfig(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "pc-activity"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Activity.Kafka = KafkaConfig{Brokers: cluster.ListenAddrs(), Topic: "pc-activity", KeyBy: "session"}
	st, err := activity.Open(filepath.Join(t.TempDir(), "a.db"), activity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	exps, err := activityExporters(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	run, ok := exps["kafka"]
	if !ok {
		t.Fatalf("no kafka exporter started: %v", exps)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	for i := range 20 {
		if err := st.Emit(activity.Event{Host: "origin.lab", Path: "/k", Method: "GET", SessionID: "s", BytesDown: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	cl, pctx := kafkaConsumer(t, cluster, "pc-activity")
	var got int
	for got < 20 && pctx.Err() == nil {
		fs := cl.PollFetches(pctx)
		fs.EachRecord(func(r *kgo.Record) {
			if len(r.Headers) == 0 || r.Headers[0].Key != "event_id" || string(r.Key) != "s" {
				t.Errorf("record without event_id header or session key: %+v", r)
			}
			got++
		})
	}
	if got != 20 {
		t.Fatalf("%d of 20 events reached the topic", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("exporter stop: %v", err)
	}
	// A bad configuration is refused with the key that is wrong.
	cfg.Activity.Kafka = KafkaConfig{Brokers: []string{"127.0.0.1:1"}, Topic: ""}
	if _, err := activityExporters(cfg, st); err == nil {
		t.Error("a Kafka exporter without a topic was accepted")
	}
}

// kafkaConsumer reads topic of cluster from its start, for at most 20 s
// (the context).
func kafkaConsumer(t *testing.T, cluster *kfake.Cluster, topic string) (*kgo.Client, context.Context) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return cl, ctx
}
