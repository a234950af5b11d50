package activity

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka is tested against kfake, franz-go's in-process cluster: it speaks
// the real Kafka protocol (produce, fetch, idempotent producer ids, SASL,
// TLS) on loopback sockets and persists its log to a directory, so a
// cluster can be stopped and started again on the same port and data.

const kafkaTopic = "portcullis.activity"

// kafkaLab is a one-broker kfake cluster that can be restarted on the same
// port with the same data directory.
type kafkaLab struct {
	t          *testing.T
	dir        string
	port       int
	partitions int32
	extra      []kfake.Opt
	cluster    *kfake.Cluster
}

func startKafkaLab(t *testing.T, partitions int32, extra ...kfake.Opt) *kafkaLab {
	t.Helper()
	l := &kafkaLab{t: t, dir: t.TempDir(), partitions: partitions, extra: extra}
	l.start()
	t.Cleanup(l.stop)
	return l
}

func (l *kafkaLab) start() {
	l.t.Helper()
	opts := append([]kfake.Opt{
		kfake.NumBrokers(1), kfake.DataDir(l.dir), kfake.SeedTopics(l.partitions, kafkaTopic),
	}, l.extra...)
	if l.port != 0 {
		opts = append(opts, kfake.Ports(l.port))
	}
	var err error
	for range 50 { // the port of a stopped cluster may take a moment to free
		if l.cluster, err = kfake.NewCluster(opts...); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		l.t.Fatalf("start kfake: %v", err)
	}
	if l.port == 0 {
		_, p, _ := net.SplitHostPort(l.addr())
		l.port, _ = strconv.Atoi(p)
	}
}

func (l *kafkaLab) addr() string { return l.cluster.ListenAddrs()[0] }

// stop shuts the cluster down (persisting its log); stopping twice is fine.
func (l *kafkaLab) stop() {
	if l.cluster != nil {
		l.cluster.Close()
		l.cluster = nil
	}
}

func testKafkaConfig(l *kafkaLab) KafkaConfig {
	return KafkaConfig{
		Brokers: []string{"127.0.0.1:" + strconv.Itoa(l.port)}, Topic: kafkaTopic,
		BatchMax: 100, Poll: 5 * time.Millisecond, ProduceTimeout: time.Second,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, StopTimeout: 5 * time.Second,
	}
}

func startTestKafka(t *testing.T, st *Store, cfg KafkaConfig) *KafkaExporter {
	t.Helper()
	k, err := st.StartKafka(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// waitCursor waits until the exporter's cursor reaches seq.
func waitCursor(t *testing.T, st *Store, sink string, seq int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := st.Cursor(sink)
		if err != nil {
			t.Fatal(err)
		}
		if c >= seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cursor %s at %d after %s, want %d", sink, c, within, seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// consumeAll reads the topic from the start until it has seen n distinct
// event ids and every partition holding records is read to its high
// watermark, so duplicates are counted too.
func consumeAll(t *testing.T, addr string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(kafkaTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var recs []*kgo.Record
	ids := map[string]bool{}
	type progress struct{ next, hwm int64 }
	parts := map[int32]*progress{}
	caughtUp := func() bool {
		for _, p := range parts {
			if p.next < p.hwm {
				return false
			}
		}
		return true
	}
	for len(ids) < n || !caughtUp() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records, %d distinct of %d events, before the timeout", len(recs), len(ids), n)
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			pr := parts[p.Partition]
			if pr == nil {
				pr = &progress{}
				parts[p.Partition] = pr
			}
			pr.hwm = max(pr.hwm, p.HighWatermark)
			for _, r := range p.Records {
				recs = append(recs, r)
				ids[eventIDHeader(t, r)] = true
				pr.next = r.Offset + 1
			}
		})
	}
	return recs
}

func eventIDHeader(t *testing.T, r *kgo.Record) string {
	t.Helper()
	var id string
	for _, h := range r.Headers {
		if h.Key == KafkaHeaderEventID {
			if id != "" {
				t.Fatalf("record at offset %d has two event id headers", r.Offset)
			}
			id = string(h.Value)
		}
	}
	if id == "" {
		t.Fatalf("record at offset %d has no %s header", r.Offset, KafkaHeaderEventID)
	}
	return id
}

// checkDelivery compares what the topic holds with the store: the first
// copy of every event, in topic order, is exactly the stored events in
// store order with the JSON-lines encoding, the event id in the header and
// the expected key; a repeat is byte-identical to its first copy. It
// returns the number of repeats.
func checkDelivery(t *testing.T, st *Store, recs []*kgo.Record, keyBy string) (dups int) {
	t.Helper()
	want := allStored(t, st)
	first := map[string]*kgo.Record{}
	next := 0
	for _, r := range recs {
		id := eventIDHeader(t, r)
		if f, ok := first[id]; ok {
			if !bytes.Equal(f.Value, r.Value) || !bytes.Equal(f.Key, r.Key) {
				t.Fatalf("repeat of event %s differs from its first copy", id)
			}
			dups++
			continue
		}
		first[id] = r
		if next >= len(want) {
			t.Fatalf("record for event %s beyond the %d stored events", id, len(want))
		}
		ev := &want[next]
		next++
		if id != ev.ID.String() {
			t.Fatalf("record %d carries event %s, want %s (seq %d): out of order or lost", next-1, id, ev.ID, ev.Seq)
		}
		line, _ := json.Marshal(ev)
		if !bytes.Equal(r.Value, line) {
			t.Fatalf("event %s value\n got %s\nwant %s", id, r.Value, line)
		}
		wantKey := ev.ID.String()
		if keyBy == KafkaKeySession && ev.SessionID != "" {
			wantKey = ev.SessionID
		}
		if string(r.Key) != wantKey {
			t.Fatalf("event %s key %q, want %q", id, r.Key, wantKey)
		}
		if !r.Timestamp.Equal(ev.Time.Truncate(time.Millisecond)) {
			t.Fatalf("event %s timestamp %v, want %v", id, r.Timestamp, ev.Time)
		}
	}
	if next != len(want) {
		t.Fatalf("%d of %d stored events delivered", next, len(want))
	}
	return dups
}

// allStored pages through every stored event with a cursor of its own.
func allStored(t *testing.T, st *Store) []Event {
	t.Helper()
	sink := "test-reference-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var all []Event
	for {
		page, err := st.ReadAfter(sink, maxReadAfter)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		if err := st.Advance(sink, page[len(page)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKafkaExportDeliversEveryEventInOrder(t *testing.T) {
	lab := startKafkaLab(t, 1)
	st, _ := openTest(t, Options{})
	const n = 1000
	emitN(t, st, 0, n-10)
	for range 10 { // events outside a session are keyed by their id
		if err := st.Emit(Event{Host: "nosession.example", Action: "block"}); err != nil {
			t.Fatal(err)
		}
	}
	waitWritten(t, st, n)
	k := startTestKafka(t, st, testKafkaConfig(lab))
	waitCursor(t, st, "kafka", n, 10*time.Second)

	recs := consumeAll(t, lab.addr(), n)
	if dups := checkDelivery(t, st, recs, KafkaKeySession); dups != 0 || len(recs) != n {
		t.Fatalf("%d records with %d repeats, want exactly %d", len(recs), dups, n)
	}
	s := k.Status()
	if !s.Healthy() || s.Delivered != n || s.Cursor != n || s.Batches != n/100 || s.LastError != "" {
		t.Fatalf("status %+v", s)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// On a multi-partition topic each session's events share a partition and
// keep their order there; keyed by event id they spread over partitions.
func TestKafkaKeysPartitionBySessionOrEvent(t *testing.T) {
	for _, keyBy := range []string{KafkaKeySession, KafkaKeyEvent} {
		t.Run(keyBy, func(t *testing.T) {
			lab := startKafkaLab(t, 4)
			st, _ := openTest(t, Options{})
			const n = 440
			emitN(t, st, 0, n)
			waitWritten(t, st, n)
			cfg := testKafkaConfig(lab)
			cfg.KeyBy = keyBy
			startTestKafka(t, st, cfg)
			waitCursor(t, st, "kafka", n, 10*time.Second)
			recs := consumeAll(t, lab.addr(), n)

			partsOf := map[string]map[int32]bool{}
			lastSeq := map[int32]int64{}
			for _, r := range recs {
				var ev Event
				if err := json.Unmarshal(r.Value, &ev); err != nil {
					t.Fatal(err)
				}
				if ev.Seq <= lastSeq[r.Partition] {
					t.Fatalf("partition %d: seq %d after %d", r.Partition, ev.Seq, lastSeq[r.Partition])
				}
				lastSeq[r.Partition] = ev.Seq
				if partsOf[ev.SessionID] == nil {
					partsOf[ev.SessionID] = map[int32]bool{}
				}
				partsOf[ev.SessionID][r.Partition] = true
				if want := map[string]string{KafkaKeySession: ev.SessionID, KafkaKeyEvent: ev.ID.String()}[keyBy]; string(r.Key) != want {
					t.Fatalf("key %q, want %q", r.Key, want)
				}
			}
			if len(recs) != n || len(lastSeq) < 2 {
				t.Fatalf("%d records over %d partitions", len(recs), len(lastSeq))
			}
			for sess, parts := range partsOf {
				if keyBy == KafkaKeySession && len(parts) != 1 {
					t.Fatalf("session %s spread over partitions %v", sess, parts)
				}
				if keyBy == KafkaKeyEvent && len(parts) == 1 {
					t.Fatalf("session %s (40 events keyed by id) all on one partition", sess)
				}
			}
		})
	}
}

// emitter emits events at a steady pace until stopped.
type emitter struct {
	st      *Store
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	emitted int
	err     error
}

func startEmitter(st *Store, from int, every time.Duration) *emitter {
	e := &emitter{st: st, stop: make(chan struct{}), emitted: from}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-e.stop:
				return
			case <-tick.C:
			}
			e.mu.Lock()
			if err := st.Emit(sampleEvent(e.emitted)); err != nil {
				e.err = err
				e.mu.Unlock()
				return
			}
			e.emitted++
			e.mu.Unlock()
		}
	}()
	return e
}

// halt stops emitting and returns how many events were emitted in all.
func (e *emitter) halt(t *testing.T) int {
	t.Helper()
	close(e.stop)
	e.wg.Wait()
	if e.err != nil {
		t.Fatal(e.err)
	}
	return e.emitted
}

// testKafkaOutage stops the whole cluster mid-stream for outage while events
// keep coming, starts it again on the same port and data, and checks that
// every event arrives in order with repeats only of the same event.
func testKafkaOutage(t *testing.T, outage time.Duration) {
	lab := startKafkaLab(t, 1)
	st, _ := openTest(t, Options{})
	k := startTestKafka(t, st, testKafkaConfig(lab))

	em := startEmitter(st, 0, 2*time.Millisecond)
	waitCursor(t, st, "kafka", 100, 10*time.Second)
	lab.stop()
	down := time.Now()

	// While the cluster is down the cursor stays at what was acknowledged
	// and the status says why.
	time.Sleep(outage / 2)
	cursorDown, _ := st.Cursor("kafka")
	time.Sleep(outage - outage/2)
	if c, _ := st.Cursor("kafka"); c != cursorDown {
		t.Fatalf("cursor moved from %d to %d with no broker up", cursorDown, c)
	}
	s := k.Status()
	if s.Healthy() || s.LastError == "" || s.Cursor != cursorDown {
		t.Fatalf("status during the outage: %+v", s)
	}
	t.Logf("after %s down: status %+v", time.Since(down).Round(time.Millisecond), s)

	lab.start()
	up := time.Now()
	time.Sleep(100 * time.Millisecond)
	n := em.halt(t)
	waitWritten(t, st, uint64(n))
	waitCursor(t, st, "kafka", int64(n), 30*time.Second)
	t.Logf("outage %s mid-stream: %d events, %d behind the cursor at the stop, all acknowledged %s after the restart",
		outage, n, n-int(cursorDown), time.Since(up).Round(time.Millisecond))
	if s := k.Status(); !s.Healthy() || s.LastError != "" || s.Cursor != int64(n) {
		t.Fatalf("status after recovery: %+v", s)
	}

	// A second outage starts while the exporter is idle, so the broker
	// connection dies between batches rather than under one.
	lab.stop()
	em = startEmitter(st, n, 2*time.Millisecond)
	time.Sleep(outage / 2)
	if s := k.Status(); s.Healthy() || s.LastError == "" || s.Cursor != int64(n) {
		t.Fatalf("status during the idle outage: %+v", s)
	}
	lab.start()
	up = time.Now()
	n2 := em.halt(t)
	waitWritten(t, st, uint64(n2))
	waitCursor(t, st, "kafka", int64(n2), 30*time.Second)
	t.Logf("idle outage: %d more events, acknowledged %s after the restart; status %+v",
		n2-n, time.Since(up).Round(time.Millisecond), k.Status())

	recs := consumeAll(t, lab.addr(), n2)
	dups := checkDelivery(t, st, recs, KafkaKeySession)
	t.Logf("%d events in %d records: %d repeats (same event id and bytes)", n2, len(recs), dups)
}

func TestKafkaExportSurvivesBrokerRestart(t *testing.T) { testKafkaOutage(t, 3*time.Second) }

// TestKafkaCollectorOutageSoak is the specified 60-second collector outage;
// it runs under PORTCULLIS_SOAK=1 (make soak) as it takes a minute.
func TestKafkaCollectorOutageSoak(t *testing.T) {
	if os.Getenv("PORTCULLIS_SOAK") != "1" {
		t.Skip("60 s outage: set PORTCULLIS_SOAK=1 (make soak)")
	}
	testKafkaOutage(t, 60*time.Second)
}

func TestKafkaExportResumesAfterStoreReopen(t *testing.T) {
	lab := startKafkaLab(t, 1)
	path := filepath.Join(t.TempDir(), "activity.db")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	emitN(t, st, 0, 300)
	waitWritten(t, st, 300)
	k, err := st.StartKafka(context.Background(), testKafkaConfig(lab))
	if err != nil {
		t.Fatal(err)
	}
	waitCursor(t, st, "kafka", 120, 10*time.Second)
	// Close delivers the rest of what is stored before it returns.
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if c, _ := st.Cursor("kafka"); c != 300 {
		t.Fatalf("cursor %d after Close, want 300 (drained)", c)
	}
	emitN(t, st, 300, 350) // stored while no exporter runs
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	emitN(t, st, 350, 500)
	waitWritten(t, st, 150)
	k = startTestKafka(t, st, testKafkaConfig(lab))
	if s := k.Status(); s.Cursor != 300 {
		t.Fatalf("restarted exporter starts at %d, want the stored cursor 300", s.Cursor)
	}
	waitCursor(t, st, "kafka", 500, 10*time.Second)
	recs := consumeAll(t, lab.addr(), 500)
	if dups := checkDelivery(t, st, recs, KafkaKeySession); dups != 0 || len(recs) != 500 {
		t.Fatalf("%d records with %d repeats after a clean restart, want exactly 500", len(recs), dups)
	}
}

func TestKafkaTLSAndSASL(t *testing.T) {
	pool, cert := testPKI(t)
	otherPool, _ := testPKI(t)
	lab := startKafkaLab(t, 1,
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser("PLAIN", "exporter", "s3cret"),
		kfake.Superuser("SCRAM-SHA-256", "scrammer", "pw256"))
	st, _ := openTest(t, Options{})
	emitN(t, st, 0, 50)
	waitWritten(t, st, 50)

	refused := func(name string, cfg KafkaConfig, wantErr string) {
		t.Helper()
		cfg.Sink = "refused-" + name
		k := startTestKafka(t, st, cfg)
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(k.Status().LastError, wantErr) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %+v, want an error containing %q", name, k.Status(), wantErr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if c, _ := st.Cursor(cfg.Sink); c != 0 {
			t.Fatalf("%s: cursor moved to %d", name, c)
		}
		t.Logf("%s: %s", name, k.Status().LastError)
		_ = k.Close()
	}
	base := testKafkaConfig(lab)

	untrusted := base
	untrusted.TLS = &tls.Config{RootCAs: otherPool}
	untrusted.SASL = &KafkaSASL{Mechanism: "PLAIN", User: "exporter", Password: "s3cret"}
	refused("unknown-CA", untrusted, "certificate signed by unknown authority")

	badPass := base
	badPass.TLS = &tls.Config{RootCAs: pool}
	badPass.SASL = &KafkaSASL{Mechanism: "SCRAM-SHA-256", User: "scrammer", Password: "wrong"}
	refused("bad-password", badPass, "connect to broker")

	for _, auth := range []*KafkaSASL{
		{Mechanism: "PLAIN", User: "exporter", Password: "s3cret"},
		{Mechanism: "SCRAM-SHA-256", User: "scrammer", Password: "pw256"},
	} {
		cfg := base
		cfg.Sink = "kafka-" + auth.Mechanism
		cfg.TLS = &tls.Config{RootCAs: pool}
		cfg.SASL = auth
		k := startTestKafka(t, st, cfg)
		waitCursor(t, st, cfg.Sink, 50, 10*time.Second)
		if s := k.Status(); !s.Healthy() || s.Delivered != 50 {
			t.Fatalf("%s: status %+v", auth.Mechanism, s)
		}
		_ = k.Close()
	}
}

func TestKafkaConfigErrors(t *testing.T) {
	st, _ := openTest(t, Options{})
	ok := KafkaConfig{Brokers: []string{"127.0.0.1:9092"}, Topic: "t"}
	for name, mutate := range map[string]func(*KafkaConfig){
		"no brokers":      func(c *KafkaConfig) { c.Brokers = nil },
		"empty broker":    func(c *KafkaConfig) { c.Brokers = []string{" "} },
		"no topic":        func(c *KafkaConfig) { c.Topic = "" },
		"bad topic":       func(c *KafkaConfig) { c.Topic = "a/b" },
		"skip verify":     func(c *KafkaConfig) { c.TLS = &tls.Config{InsecureSkipVerify: true} },
		"plain cleartext": func(c *KafkaConfig) { c.SASL = &KafkaSASL{Mechanism: "PLAIN", User: "u", Password: "p"} },
		"mechanism":       func(c *KafkaConfig) { c.SASL = &KafkaSASL{Mechanism: "GSSAPI", User: "u"} },
		"no user":         func(c *KafkaConfig) { c.SASL = &KafkaSASL{Mechanism: "SCRAM-SHA-512"} },
		"key":             func(c *KafkaConfig) { c.KeyBy = "user" },
		"batch":           func(c *KafkaConfig) { c.BatchMax = maxReadAfter + 1 },
		"sink":            func(c *KafkaConfig) { c.Sink = "" }, // defaulted: not an error
	} {
		cfg := ok
		mutate(&cfg)
		k, err := st.StartKafka(context.Background(), cfg)
		if name == "sink" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else {
				_ = k.Close()
			}
			continue
		}
		if err == nil {
			_ = k.Close()
			t.Errorf("%s: started", name)
		} else if !strings.HasPrefix(err.Error(), "kafka export: ") {
			t.Errorf("%s: error %q does not say where", name, err)
		}
	}
}

// Close returns within StopTimeout even while a batch waits on a dead
// cluster, and the undelivered events stay behind the cursor.
func TestKafkaCloseDuringOutageIsBounded(t *testing.T) {
	lab := startKafkaLab(t, 1)
	st, _ := openTest(t, Options{})
	cfg := testKafkaConfig(lab)
	cfg.ProduceTimeout = 30 * time.Second
	cfg.StopTimeout = 300 * time.Millisecond
	lab.stop()
	emitN(t, st, 0, 20)
	waitWritten(t, st, 20)
	k, err := st.StartKafka(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	err = k.Close()
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %s with StopTimeout 300ms", took)
	}
	if err == nil {
		t.Fatal("Close reported no error with 20 events undelivered")
	}
	if c, _ := st.Cursor("kafka"); c != 0 {
		t.Fatalf("cursor %d with no broker up", c)
	}
	t.Logf("close during outage: %v", err)
}

// A batch the cluster refuses outright (here: the topic does not exist yet)
// fails, leaves the cursor alone and is produced again from the cursor once
// the cause is fixed.
func TestKafkaFailedBatchIsRetriedFromTheCursor(t *testing.T) {
	lab := startKafkaLab(t, 1)
	st, _ := openTest(t, Options{})
	emitN(t, st, 0, 30)
	waitWritten(t, st, 30)
	cfg := testKafkaConfig(lab)
	cfg.Topic = "created.later"
	k := startTestKafka(t, st, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for k.Status().FailedBatches < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no failed batch to a missing topic: %+v", k.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := k.Status()
	t.Logf("failed after %s: %s", time.Since(deadline.Add(-10*time.Second)).Round(time.Millisecond), s.LastError)
	if s.Healthy() || s.Cursor != 0 || !strings.Contains(s.LastError, "created.later") {
		t.Fatalf("status with the topic missing: %+v", s)
	}
	if c, _ := st.Cursor("kafka"); c != 0 {
		t.Fatalf("cursor %d with the topic missing", c)
	}

	admin, err := kgo.NewClient(kgo.SeedBrokers(lab.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	topic := kmsg.NewCreateTopicsRequestTopic()
	topic.Topic, topic.NumPartitions, topic.ReplicationFactor = cfg.Topic, 1, 1
	req.Topics = append(req.Topics, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, admin)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic: %v %+v", err, resp)
	}
	waitCursor(t, st, "kafka", 30, 10*time.Second)
	if s := k.Status(); !s.Healthy() || s.Delivered != 30 || s.LastError != "" {
		t.Fatalf("status after the topic appeared: %+v", s)
	}
	t.Logf("%d failed attempts before the topic existed", s.FailedBatches)
}
